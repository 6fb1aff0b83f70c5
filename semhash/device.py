"""Choosing the torch device, in one place: ``auto`` (CUDA when present), ``cpu`` or ``cuda``.

Each command or service entry (``index_paths``, ``retrain_index``, ``evaluate``, ``Searcher``,
``find_existing``) calls :func:`resolve_device` once on the user's choice and passes the resolved string
(``"cpu"``, ``"cuda"``, ``"cuda:1"``) down; the layers below (:func:`semhash.embed.load_encoder`,
training, encoding) take it as it is and never resolve again.

``auto`` on a Linux machine without a GPU driver answers ``cpu`` without importing torch (1.1 s of an
incremental ``semhash index`` on the 2-core CPU, whose embedding and codes need no torch): torch sees a CUDA
(or ROCm) GPU only through its driver, whose device files (:data:`GPU_DRIVER_FILES`) are then present.
"""

from __future__ import annotations

import sys
from pathlib import Path

from semhash.errors import DeviceError, UsageError

DEVICE_CHOICES = ("auto", "cpu", "cuda")
#: What an NVIDIA (``/proc/driver/nvidia``, ``/dev/nvidiactl``) or AMD ROCm (``/dev/kfd``) driver puts on Linux.
GPU_DRIVER_FILES = (Path("/proc/driver/nvidia"), Path("/dev/nvidiactl"), Path("/dev/kfd"))


def no_gpu_driver(files: tuple[Path, ...] = GPU_DRIVER_FILES) -> bool:
    """Whether this is Linux with no GPU driver loaded (so torch can see no CUDA device), known without torch."""
    return sys.platform.startswith("linux") and not any(path.exists() for path in files)


def is_resolved(device: str) -> bool:
    """Whether ``device`` is a concrete torch device string (``cpu``, ``cuda``, ``cuda:N``), not a choice."""
    return device in ("cpu", "cuda") or device.startswith("cuda:")


def resolve_device(choice: str = "auto") -> str:
    """Return ``"cpu"`` or ``"cuda"`` for a user's choice; ``cuda`` without a GPU is an error."""
    choice = (choice or "auto").lower()
    if choice not in DEVICE_CHOICES and not choice.startswith("cuda:"):
        raise UsageError(f"--device must be one of {', '.join(DEVICE_CHOICES)}, not {choice!r}")
    if choice == "cpu" or (choice == "auto" and "torch" not in sys.modules and no_gpu_driver()):
        return "cpu"
    import torch

    has_cuda = torch.cuda.is_available()
    if choice == "auto":
        return "cuda" if has_cuda else "cpu"
    if not has_cuda:
        raise DeviceError("--device cuda was asked for but torch sees no CUDA GPU: use --device auto or cpu")
    return choice
