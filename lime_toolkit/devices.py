"""Where a run computes: the device from ``--device``, and the process group when it was launched
with several processes (torchrun, accelerate launch)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from lime_toolkit.errors import UserError

if TYPE_CHECKING:
    import torch



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
