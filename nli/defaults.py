"""The default tables shipped as package data under ``nli/tables/``.

``default_table(name, mode)`` needs no solve. ``mode`` is ``"direct"`` (the
function's legal FP16 domain) or, for reciprocal and rsqrt, ``"reduced"``
(the mantissa range of numerics §5).
"""

from __future__ import annotations

from pathlib import Path

from .formats import MODES
from .functions import get_function
from .table import Table, TableError, load_table

TABLE_DIR = Path(__file__).resolve().parent / "tables"


def default_table_path(name: str, mode: str = "direct") -> Path:
    """Path of the shipped table for ``name`` in ``mode``."""
    f = get_function(name)
    if mode not in MODES:
        raise ValueError(f"mode: must be one of {MODES}, got {mode!r}")
    if mode not in f.domains:
        raise ValueError(f"{name} has no {mode!r} mode (it has: {', '.join(f.domains)})")
    return TABLE_DIR / (f"{name}.json" if mode == "direct" else f"{name}_{mode}.json")


def default_table(name: str, mode: str = "direct") -> Table:
    """Load the shipped default table for ``name`` in ``mode``."""
    path = default_table_path(name, mode)
    if not path.exists():
        raise TableError(f"no shipped table at {path}; build it with `nli table build {name}`")
    return load_table(path)


def default_table_names() -> list[tuple[str, str]]:
    """Every (function, mode) pair that has a shipped default table."""
    from .functions import FUNCTIONS

    return [(n, m) for n, f in FUNCTIONS.items() for m in MODES if m in f.domains]
