"""Training curves: ``<out>/train_log.jsonl``, one JSON object per line.

Two kinds of line, told apart by ``"event"``::

    {"event": "step", "step": 12, "time": 1718000000.1, "steps_per_s": 2.7,
     "loss": 0.41, "rel": 2.3, "loc": 0.18, "mask": 0.0}
    {"event": "validation", "step": 50, "time": ..., "improved": true,
     "acc": 0.8, "con": 0.95, "succ": 0.87, "succ_per_edit": 0.85}

:class:`JsonlLogger` is a training monitor that writes them; :func:`logged_monitor` wraps the
monitor a command passes to training so that both receive every event. On resume the log keeps the
lines up to the step the run resumes from and appends after them (lines of steps that were logged
after the last checkpoint are dropped, since training repeats those steps).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

LOG_NAME = "train_log.jsonl"
VAL_KEYS = ("acc", "con", "succ", "succ_per_edit", "edits")


def read_train_log(path) -> list[dict]:
    """The records of a ``train_log.jsonl`` (a file or a run directory); [] when there is none.
    A torn last line (a process killed mid-write) is skipped; any other damaged line is an error
    naming it."""
    from lime_toolkit.errors import UserError

    path = Path(path)
    if path.is_dir():
        path = path / LOG_NAME
    if not path.is_file():
        return []
    fix = "delete that line or the file (it only feeds the training curves), or use another --out"
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise UserError(f"training log '{path}' is damaged (not UTF-8 text); {fix}") from None
    records = []
    for number, line in enumerate(lines, 1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines):
                continue
            raise UserError(f"training log '{path}' is damaged at line {number} (not JSON); {fix}") from None
        if not isinstance(record, dict):
            raise UserError(f"training log '{path}' is damaged at line {number} (not a JSON object); {fix}")
        records.append(record)
    return records


class JsonlLogger:
    """A training monitor that appends one JSON line per optimiser step and per validation.

    ``resume_step``: keep only the existing lines with ``step <= resume_step`` (the run continues
    from that checkpoint); ``None`` or 0 starts a fresh log.
    """

    def __init__(self, path, resume_step: int | None = None):
        from lime_toolkit.files import write_text_atomic

        self.path = Path(path)
        kept = [r for r in read_train_log(self.path) if r.get("step", 0) <= resume_step] if resume_step else []
        write_text_atomic(self.path, "".join(json.dumps(record) + "\n" for record in kept))

    def _write(self, record: dict) -> None:
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record, default=float) + "\n")

    def on_step(self, step, terms, steps_per_s):
        self._write({"event": "step", "step": int(step), "time": round(time.time(), 3),
                     "steps_per_s": float(steps_per_s), **{k: float(v) for k, v in terms.items()}})

    def on_validation(self, step, metrics, improved):
        values = {k: metrics[k] for k in VAL_KEYS if k in metrics}
        self._write({"event": "validation", "step": int(step), "time": round(time.time(), 3),
                     "improved": bool(improved), **values})

    def on_edit(self):
        pass


class Tee:
    """A monitor that forwards every event to each of ``monitors`` in order."""

    def __init__(self, *monitors):
        self.monitors = monitors

    def on_step(self, step, terms, steps_per_s):
        for m in self.monitors:
            m.on_step(step, terms, steps_per_s)

    def on_validation(self, step, metrics, improved):
        for m in self.monitors:
            m.on_validation(step, metrics, improved)

    def on_edit(self):
        for m in self.monitors:
            m.on_edit()


def logged_monitor(out_dir, monitor):
    """``monitor`` teed with a :class:`JsonlLogger` on ``<out_dir>/train_log.jsonl``, resuming
    from the step of ``<out_dir>/checkpoints/last`` when it exists. Under a multi-process launch
    only the main process writes the log."""
    out_dir = Path(out_dir)
    try:
        from lime_toolkit.devices import process_state

        if not process_state().is_main_process:
            return monitor
    except ImportError:  # pragma: no cover - accelerate is a dependency
        pass
    last = out_dir / "checkpoints" / "last"
    resume = None
    if last.exists():
        from lime_toolkit.checkpoint import verify

        resume = int(verify(last).get("step", 0))  # a damaged checkpoint stops here, before the log is touched
    return Tee(monitor, JsonlLogger(out_dir / LOG_NAME, resume_step=resume))
