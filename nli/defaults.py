"""The default tables shipped as package data under ``nli/tables/``.

``default_table(name, mode)`` needs no solve. ``mode`` is ``"direct"`` (the
function's legal FP16 domain) or, for reciprocal and rsqrt, ``"reduced"``
(the mantissa range of numerics §5).

bf16 tables (numerics §13) sit beside them with a ``_bf16`` suffix: ``<name>_bf16.json``
(direct) and ``<name>_<mode>_bf16.json``; ``default_table(name, mode, "bf16")`` loads one.
Only the functions of ``BF16_DEFAULT_TABLES`` ship a bf16 table.
"""

from __future__ import annotations

from pathlib import Path

from .fingerprint import table_fingerprint
from .formats import DTYPES, MODES
from .functions import get_function
from .table import Table, TableError, load_table

TABLE_DIR = Path(__file__).resolve().parent / "tables"

BF16_DEFAULT_TABLES = (
    ("silu", "direct"),
    ("gelu", "direct"),
    ("gelu_tanh", "direct"),
    ("exp", "direct"),
    ("sigmoid", "direct"),
    ("tanh", "direct"),
    ("softplus", "direct"),
    ("reciprocal", "reduced"),
    ("rsqrt", "reduced"),
)
"""(function, mode) of every shipped bf16 table (benchmarks/build_tables.py --dtype bf16)."""

_LOADED: dict[str, str] = {}  # file stem -> fingerprint of each shipped table loaded so far


def default_table_path(name: str, mode: str = "direct", dtype: str = "fp16") -> Path:
    """Path of the shipped table for ``name`` in ``mode`` (``dtype`` fp16 or bf16)."""
    f = get_function(name)
    if mode not in MODES:
        raise ValueError(f"mode: must be one of {MODES}, got {mode!r}")
    if dtype not in DTYPES:
        raise ValueError(f"dtype: must be one of {DTYPES}, got {dtype!r}")
    if mode not in f.domains:
        raise ValueError(f"{name} has no {mode!r} mode (it has: {', '.join(f.domains)})")
    stem = name if mode == "direct" else f"{name}_{mode}"
    return TABLE_DIR / (f"{stem}.json" if dtype == "fp16" else f"{stem}_{dtype}.json")


def default_table(name: str, mode: str = "direct", dtype: str = "fp16") -> Table:
    """Load the shipped default table for ``name`` in ``mode`` (``dtype`` fp16 or bf16)."""
    path = default_table_path(name, mode, dtype)
    if not path.exists():
        how = "" if dtype == "fp16" else f" --dtype {dtype}"
        raise TableError(f"no shipped table at {path}; build it with `nli table build {name}{how}`")
    t = load_table(path)
    if t.dtype != dtype:
        raise TableError(f"{path}: a {t.dtype} table where a {dtype} one belongs")
    _LOADED[path.stem] = table_fingerprint(t)
    return t


def loaded_default_tables() -> dict[str, str]:
    """{file stem: fingerprint} of every shipped table :func:`default_table` has loaded in this
    process so far, sorted by stem: what a benchmark records beside the numbers it measured."""
    return dict(sorted(_LOADED.items()))


def shipped_fingerprints() -> dict[str, str]:
    """{file stem: fingerprint} of every shipped table on disk today (fp16 and bf16)."""
    out = {}
    for dtype in DTYPES:
        for name, mode in default_table_names(dtype):
            path = default_table_path(name, mode, dtype)
            if path.exists():
                out[path.stem] = table_fingerprint(load_table(path))
    return dict(sorted(out.items()))


def default_table_names(dtype: str = "fp16") -> list[tuple[str, str]]:
    """Every (function, mode) pair that has a shipped default table of ``dtype``."""
    from .functions import FUNCTIONS

    if dtype not in DTYPES:
        raise ValueError(f"dtype: must be one of {DTYPES}, got {dtype!r}")
    if dtype == "bf16":
        return list(BF16_DEFAULT_TABLES)
    return [(n, m) for n, f in FUNCTIONS.items() for m in MODES if m in f.domains]
