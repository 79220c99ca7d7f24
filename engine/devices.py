"""Torch devices named on the command line: ``cpu``, ``cuda``, ``cuda:N``, ``mps``.

:func:`resolve_device` turns the name into a ``torch.device`` that exists on this machine, or
raises a ValueError naming the problem (the CLI prints it as one line, exit code 2).
"""

from __future__ import annotations

import torch

DEVICE_TYPES = ("cpu", "cuda", "mps")


def _count(kind: str) -> int:
    """Number of usable devices of ``kind`` on this machine."""
    if kind == "cpu":
        return 1
    if kind == "cuda":
        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    if kind == "mps":
        mps = getattr(torch.backends, "mps", None)
        return 1 if mps is not None and mps.is_available() else 0
    return 0


def resolve_device(name: str) -> torch.device:
    """``"cpu" | "cuda" | "cuda:N" | "mps"`` -> the torch.device; ValueError if the name is
    malformed or no such device exists here."""
    try:
        dev = torch.device(str(name).strip())
    except (RuntimeError, ValueError):
        raise ValueError(
            f"device {name!r} is not a device name: expected one of {', '.join(DEVICE_TYPES)} "
            f"or cuda:N"
        ) from None
    if dev.type not in DEVICE_TYPES:
        raise ValueError(
            f"device {name!r}: unsupported type {dev.type!r}; expected one of "
            f"{', '.join(DEVICE_TYPES)} or cuda:N"
        )
    n = _count(dev.type)
    if n == 0:
        raise ValueError(f"device {name!r} does not exist on this machine (no {dev.type} device)")
    if dev.index is not None and dev.index >= n:
        raise ValueError(
            f"device {name!r} does not exist on this machine ({n} {dev.type} device"
            f"{'' if n == 1 else 's'}: index 0..{n - 1})"
        )
    return dev
