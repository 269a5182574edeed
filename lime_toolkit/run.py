"""Assemble a run from its configuration: dataset, base model, editor, masks, run directory.

Importing this module is cheap: torch, transformers and the editing machinery are imported inside
the functions that need a model, so that ``data describe`` (:func:`open_dataset`) and the checks
made before a model is loaded (unknown component names, languages, the run directory) answer
without them.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .config import save_config
from .data import SPLITS, EditCase, Example
from .dataset_api import Dataset, DatasetOptions
from .errors import UserError
from .plugin_manager import PluginManager, get_plugin_manager
from .sampler import LanguageRoles

if TYPE_CHECKING:
    import torch

    from .editing import EditingSystem


@dataclass
class Run:
    """Everything one training or evaluation run works with."""

    config: dict
    dataset: Dataset
    model: torch.nn.Module
    tokenizer: object
    system: EditingSystem
    out: Path
    device: torch.device

    @property
    def task(self) -> str:
        return self.dataset.task

    def roles(self, spec) -> LanguageRoles:
        return LanguageRoles.parse(spec, self.dataset.languages)

    def cases(self, split: str) -> list[EditCase]:
        if split not in SPLITS:
            raise UserError(f"unknown split '{split}'; choose one of {', '.join(SPLITS)}")
        return self.dataset.edit_cases(split, predict=self.predictor())

    def pool(self, split: str) -> dict[str, list[Example]]:
        return self.dataset.locality_pool(split)

    def predictor(self):
        import torch

        from .encoding import encode_examples
        from .models import decode_predictions, position_logits

        def predict(examples):
            out = []
            for i in range(0, len(examples), 64):
                batch = encode_examples(self.tokenizer, examples[i:i + 64], self.task).to(self.device)
                with torch.no_grad():
                    pred = position_logits(self.model, batch).argmax(-1)
                out += decode_predictions(self.tokenizer, batch, pred.cpu())
            return out

        return predict


def default_out(config: dict) -> Path:
    langs = str(config["train"]["langs"]).replace(",", "+")
    return Path("runs") / f"{config['dataset']}-{config['editor']}-{config['masks']}-{langs}-s{config['seed']}"


def process_state(device_spec: str | None = None):
    """Accelerate's state of this process (its rank among the launched processes), fixed by the
    first call. The processes talk over gloo on the CPU: with ``--device cpu``, with
    ``ACCELERATE_USE_CPU`` set, or without a GPU (``torchrun`` or ``accelerate launch --multi_gpu``
    starts them; see docs/cli.md)."""
    import os

    import torch
    from accelerate import PartialState

    cpu = (device_spec == "cpu" or os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes")
           or not torch.cuda.is_available())
    return PartialState(cpu=cpu)


def lone_launch_note(environ=None) -> str | None:
    """A note when ``accelerate launch --cpu --num_processes N`` (N > 1) started this one process
    only (Accelerate's simple launcher sets the rendezvous address but spawns nothing without MPI);
    None otherwise."""
    import os

    env = os.environ if environ is None else environ
    if (env.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes") and "MASTER_ADDR" in env
            and "WORLD_SIZE" not in env and "PMI_SIZE" not in env and "OMPI_COMM_WORLD_SIZE" not in env):
        return ("accelerate launch --cpu started a single process (without MPI it spawns none); for several "
                "CPU processes use accelerate launch --multi_gpu --num_processes N ... --device cpu")
    return None


def resolve_device(spec: str) -> torch.device:
    """``auto``: this process's device under Accelerate (its GPU when launched with
    ``accelerate launch``, else the first GPU, else the CPU)."""
    import torch

    state = process_state(spec)  # the first call decides between gloo on CPUs and the GPUs' backend
    if spec == "auto":
        return state.device
    if spec.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UserError(f"device '{spec}' was asked for but CUDA is not available; use --device cpu")
        index = int(spec.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise UserError(f"device '{spec}' does not exist: {torch.cuda.device_count()} CUDA device(s) are visible "
                            f"(cuda:0 to cuda:{torch.cuda.device_count() - 1}); pass another --device")
    elif spec == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise UserError("device 'mps' was asked for but is not available; use --device cpu")
    try:
        return torch.device(spec)
    except RuntimeError:
        raise UserError(f"device '{spec}' is not a device; use auto, cpu, cuda or cuda:N") from None


def open_dataset(config: dict, pm: PluginManager | None = None) -> Dataset:
    pm = pm or get_plugin_manager()
    cls = pm.datasets.get(config["dataset"]).obj
    options = DatasetOptions(
        data_dir=Path(config["data_dir"]).expanduser() if config.get("data_dir") else None,
        languages=list(config["languages"]) if config.get("languages") else None,
        limit=config.get("limit"),
        seed=int(config["seed"]),
        extra=dict(config.get("dataset_options") or {}),
    )
    return cls(options)


def component_options(config: dict, section: str, kind: str) -> dict:
    """Options for the chosen component: the section's plain keys, overridden by its sub-mapping
    named after the component (``editor_options: {mend: {rank: 64}}``); other components'
    sub-mappings are ignored."""
    options = dict(config.get(section) or {})
    own = options.get(config[kind])
    plain = {k: v for k, v in options.items() if not isinstance(v, dict)}
    return {**plain, **own} if isinstance(own, dict) else plain


def check_component_options(config: dict, pm: PluginManager) -> None:
    """Check ``editor_options`` and ``mask_options`` against the ``option_specs`` the installed
    components declare: the chosen component's plain keys and every component's own sub-mapping
    (unknown keys there too); a sub-mapping named like no component but close to one is a typo."""
    from .config import check_options, suggest

    for section, kind, registry in (("editor_options", "editor", pm.editors), ("mask_options", "masks", pm.masks)):
        options = config.get(section) or {}
        names = registry.names()
        chosen = config.get(kind)
        plain = {k: v for k, v in options.items() if not isinstance(v, dict)}
        if chosen in registry:
            specs = getattr(registry.get(chosen).obj, "option_specs", None)
            if specs is not None:
                check_options(plain, specs, section, chosen)
        for name, sub in options.items():
            if not isinstance(sub, dict):
                continue
            if name not in registry:
                hint = suggest(name, names)
                if hint:
                    raise UserError(f"{section}.{name}: there is no {registry.kind} '{name}'{hint}")
                continue
            specs = getattr(registry.get(name).obj, "option_specs", None)
            if specs is not None:
                check_options(sub, specs, section, name, strict=True)


def build_run(config: dict, pm: PluginManager | None = None, out: Path | None = None, log=print) -> Run:
    """Resolve every component named in ``config`` and prepare the run directory."""
    pm = pm or get_plugin_manager()
    # Unknown names fail first, then the dataset and its languages, before any implementation (and
    # with it torch) is imported; checking the components' options (their option_specs) imports
    # their classes.
    editor_component = pm.editors.get(config["editor"])
    mask_component = pm.masks.get(config["masks"]) if config.get("masks") else None
    pm.datasets.get(config["dataset"])
    dataset = open_dataset(config, pm)
    for key in ("train.langs", "eval.edit_langs", "eval.eval_langs"):
        section, name = key.split(".")
        spec = (config.get(section) or {}).get(name)
        if spec is None:  # a partial configuration (build_run called from code)
            continue
        try:  # before the model is loaded
            LanguageRoles.parse(spec, dataset.languages)
        except UserError as exc:
            raise UserError(f"{key}: {exc}") from None
    check_component_options(config, pm)  # imports the components' classes: after the cheaper checks
    editor_cls = editor_component.obj
    mask_cls = mask_component.obj if mask_component is not None else None
    import torch  # from here on a model is needed

    from .architectures import editable_parameters
    from .editing import EditingSystem
    from .editor_api import EditorSetup
    from .mask_api import MaskSetup
    from .models import load_model

    device = resolve_device(str(config.get("device", "auto")))
    model_name = config.get("model") or dataset.default_model()
    attn = "eager" if getattr(editor_cls, "second_order", False) else None
    model, tokenizer = load_model(str(model_name), dataset.task, dataset.num_labels, attn_implementation=attn)
    dataset.bind_tokenizer(tokenizer)
    model.to(device)
    edit = config["edit"]
    names = editable_parameters(model, edit["params"], int(edit["last_n_layers"]), edit.get("layers"))
    weights = dict(model.named_parameters())
    shapes = {n: tuple(weights[n].shape) for n in names}
    torch.manual_seed(int(config["seed"]))  # editor and mask initialisation
    editor = editor_cls(EditorSetup(model, shapes, dataset.languages, component_options(config, "editor_options", "editor")))
    masks = None
    if mask_cls is not None:
        if editor.supports_masks:
            masks = mask_cls(MaskSetup(shapes, dataset.languages, component_options(config, "mask_options", "masks")))
        elif not getattr(mask_cls, "is_identity", False):
            raise UserError(f"editor '{config['editor']}' implements the whole edit stage and cannot use "
                            f"masks '{config['masks']}'; use a mask strategy that changes nothing (--masks none)")
    system = EditingSystem(model, names, editor, masks).to(device)
    system.loss_power = float(edit.get("loss_power", 0.0))
    out = Path(out or config.get("out") or default_out(config))
    config = {**config, "model": str(model_name), "out": str(out)}
    return Run(config, dataset, model, tokenizer, system, out, device)


def save_run_config(run: Run) -> None:
    run.out.mkdir(parents=True, exist_ok=True)
    save_config(run.config, run.out / "config.yaml")
