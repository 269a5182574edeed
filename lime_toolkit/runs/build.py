"""A run from its configuration: the dataset, the base model, the editor and the masks assembled into
a :class:`~lime_toolkit.run.Run`; and a run reopened from its directory.

Importing this module is cheap: torch, transformers and the editing machinery are imported inside
the functions that need a model, so that ``data describe`` (:func:`open_dataset`) and the checks
made before a model is loaded (unknown component names, languages, the run directory) answer
without them."""
from __future__ import annotations

from pathlib import Path

from lime_toolkit.config import save_config
from lime_toolkit.dataset_api import Dataset, DatasetOptions
from lime_toolkit.devices import resolve_device
from lime_toolkit.errors import UserError
from lime_toolkit.plugin_manager import PluginManager, get_plugin_manager
from lime_toolkit.run import Run
from lime_toolkit.sampler import LanguageRoles


def default_out(config: dict) -> Path:
    langs = str(config["train"]["langs"]).replace(",", "+")
    return Path("runs") / f"{config['dataset']}-{config['editor']}-{config['masks']}-{langs}-s{config['seed']}"


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
    from lime_toolkit.config import check_options, suggest

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

    from lime_toolkit.architectures import editable_parameters
    from lime_toolkit.editing import EditingSystem
    from lime_toolkit.editor_api import EditorSetup
    from lime_toolkit.mask_api import MaskSetup
    from lime_toolkit.models import load_model

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


def open_run(run_dir, overrides: dict | None = None, checkpoint: str = "best") -> Run:
    """Rebuild a finished (or interrupted) run from its directory and load its ``checkpoint``
    ("best", falling back to "last"; "init" for the untrained editor)."""
    from lime_toolkit.checkpoint import load_checkpoint
    from lime_toolkit.runs.rundir import read_run_config
    from lime_toolkit.training import load_best

    run_dir = Path(run_dir)
    config = read_run_config(run_dir, overrides)
    run = build_run(config, out=run_dir)
    if checkpoint == "init":
        init = run_dir / "checkpoints" / "init"
        if run.system.editor.trainable and not init.exists():
            raise UserError(f"'{run_dir}' has no init checkpoint; train it first")
        if init.exists():
            load_checkpoint(init, run.system)
    elif run.system.editor.trainable:
        if not load_best(run):
            raise UserError(f"'{run_dir}' has no checkpoint yet; train it first")
    return run
