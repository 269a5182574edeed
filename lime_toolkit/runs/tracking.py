"""Experiment tracking through Accelerate's trackers (``train --log-with tensorboard``).

:func:`parse_log_with` checks the names against the trackers Accelerate supports and that each is
installed (else one line naming the pip package); :class:`AccelerateTracking` is a training
monitor that hands every step's loss terms and every validation's metrics to
``Accelerator.log``, next to ``train_log.jsonl`` (which stays the record the report reads). The
trackers write under ``<out>/tracking/`` (TensorBoard: event files there); under a multi-process
launch Accelerate logs on the main process only.
"""
from __future__ import annotations

from pathlib import Path

from lime_toolkit.errors import UserError

#: Accelerate's tracker name -> the pip package that provides it.
PACKAGES = {"tensorboard": "tensorboard", "wandb": "wandb", "trackio": "trackio", "aim": "aim",
            "comet_ml": "comet-ml", "mlflow": "mlflow", "clearml": "clearml", "dvclive": "dvclive",
            "swanlab": "swanlab"}
TRACKING_DIR = "tracking"


def parse_log_with(value: str | None) -> list[str]:
    """``"tensorboard,wandb"`` -> the names; ``"all"``: every tracker installed. Unknown names and
    trackers that are not installed are one-line errors (before anything is loaded)."""
    if value is None or not str(value).strip():
        return []
    names = [n.strip().lower() for n in str(value).split(",") if n.strip()]
    from accelerate import tracking

    if "all" in names:
        found = [str(t) for t in tracking.get_available_trackers()]
        if not found:
            raise UserError("--log-with all: no tracker is installed; install one, e.g. "
                            "pip install 'lime-toolkit[tracking]' (tensorboard)")
        return found
    for name in names:
        if name not in PACKAGES:
            raise UserError(f"--log-with: unknown tracker '{name}'; Accelerate supports: "
                            f"{', '.join(PACKAGES)} (or all)")
        if not getattr(tracking, f"is_{name}_available")():
            hint = " or pip install 'lime-toolkit[tracking]'" if name == "tensorboard" else ""
            raise UserError(f"--log-with {name}: the tracker is not installed; pip install {PACKAGES[name]}{hint}")
    return list(dict.fromkeys(names))


def flat_config(config: dict, prefix: str = "") -> dict:
    """The run configuration as one level of ``a.b`` keys with scalar values (what trackers
    accept as hyper-parameters); lists become strings."""
    out = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flat_config(value, name + "."))
        elif value is None or isinstance(value, (bool, int, float, str)):
            out[name] = "null" if value is None else value
        else:
            out[name] = str(value)
    return out


class AccelerateTracking:
    """A training monitor that logs through ``accelerate.Accelerator(log_with=...)``: ``train/<term>``
    and ``train/steps_per_s`` at every step, ``val/<metric>`` at every validation. Call
    :meth:`close` at the end (``Accelerator.end_training``)."""

    def __init__(self, log_with: list[str], out_dir, config: dict, project: str | None = None):
        self.log_with, self.out_dir, self.config = log_with, Path(out_dir), config
        self.project = project or self.out_dir.name
        self.accelerator = None

    def _log(self, values: dict, step: int) -> None:
        if self.accelerator is None:  # at the first event: the run directory holds its configuration by then
            from accelerate import Accelerator

            self.accelerator = Accelerator(log_with=self.log_with, project_dir=str(self.out_dir / TRACKING_DIR))
            self.accelerator.init_trackers(self.project, config=flat_config(self.config))
        self.accelerator.log(values, step=int(step))

    def on_step(self, step, terms, steps_per_s):
        self._log({**{f"train/{k}": float(v) for k, v in terms.items()}, "train/steps_per_s": float(steps_per_s)},
                  step)

    def on_validation(self, step, metrics, improved):
        self._log({f"val/{k}": float(metrics[k]) for k in ("acc", "con", "succ", "succ_per_edit") if k in metrics},
                  step)

    def on_edit(self):
        pass

    def close(self) -> None:
        if self.accelerator is not None:
            self.accelerator.end_training()
