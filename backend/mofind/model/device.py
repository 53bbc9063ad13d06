"""`--device auto|cpu|cuda[:N]` for serve, index and train: one place that turns it into a torch device name."""

from __future__ import annotations

DEVICE_CHOICES_HELP = "auto (CUDA when available, else CPU), cpu, cuda or cuda:N"


class DeviceUnavailableError(ValueError):
    """CUDA was asked for on a machine (or a torch build) without it."""


def resolve_device(name: str | None) -> str:
    """'auto' -> 'cuda' when torch sees a GPU, else 'cpu'; 'cuda' without one is a clear error, not a crash later.

    >>> resolve_device("cpu")
    'cpu'
    """
    import torch

    name = (name or "auto").strip().lower()
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return name
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise DeviceUnavailableError(f"--device {name}: torch sees no CUDA device on this machine "
                                         f"(torch {torch.__version__}); use --device cpu or auto")
        index = int(name.split(":", 1)[1]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise DeviceUnavailableError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s)")
        return name
    raise DeviceUnavailableError(f"--device {name!r}: use {DEVICE_CHOICES_HELP}")
