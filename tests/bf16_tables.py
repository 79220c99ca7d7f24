"""Small bf16 tables for the composite-op and engine tests (numerics §13).

Built with :func:`nli.table_from_cutpoints` (LUT = RNE_bf16 of the function at each point), so
they need no solve: reduced reciprocal / rsqrt tables with a cutpoint at every BF16 value of
[1, 2] / [1, 4] (exact at every input reduced mode looks up), and direct exp / reciprocal /
rsqrt / silu tables on geometric cutpoints covering BF16's range.
"""

from __future__ import annotations

import functools

import numpy as np

import nli
from nli.grid import f64_to_bf16_bits


def _cuts(values) -> np.ndarray:
    """Increasing float64 values -> their distinct BF16 patterns, in order."""
    bits = f64_to_bf16_bits(np.asarray(values, dtype=np.float64))
    _, idx = np.unique(nli.grid.bf16_bits_to_f64(bits), return_index=True)
    return bits[np.sort(idx)]


def _table(function, cut_values, bins_each, **meta):
    c = _cuts(cut_values)
    return nli.table_from_cutpoints(function, c, [bins_each] * (c.size - 1), dtype="bf16", **meta)


@functools.lru_cache(maxsize=None)
def bf16_op_tables() -> dict:
    """name -> bf16 Table: exp (direct), reciprocal / rsqrt (direct and reduced), silu."""
    t = {}
    every = np.arange(0x3F80, 0x4081, dtype=np.uint32).astype(np.uint16)  # BF16 values 1..4
    t["recip_reduced"] = nli.table_from_cutpoints(
        "reciprocal", every[every <= 0x4000], [1] * 128, dtype="bf16"
    )
    t["rsqrt_reduced"] = nli.table_from_cutpoints("rsqrt", every, [1] * 256, dtype="bf16")
    neg = -np.geomspace(300.0, 2.0**-12, 80)
    t["exp"] = _table("exp", np.concatenate([neg, [0.0]]), 8)
    t["recip_direct"] = _table("reciprocal", np.geomspace(2.0**-110, 2.0**126, 160), 16)
    t["rsqrt_direct"] = _table("rsqrt", np.geomspace(2.0**-110, 2.0**127, 160), 16)
    pos = np.geomspace(2.0**-10, 3e4, 60)
    t["silu"] = _table("silu", np.concatenate([-pos[::-1], [0.0], pos]), 8)
    return t


def bf16_engine_tables(reciprocal_mode: str) -> dict:
    """{function: bf16 Table} for engine.substitute with dtype='bf16' in ``reciprocal_mode``."""
    t = bf16_op_tables()
    suffix = "reduced" if reciprocal_mode == "reduced" else "direct"
    return {
        "silu": t["silu"],
        "exp": t["exp"],
        "reciprocal": t[f"recip_{suffix}"],
        "rsqrt": t[f"rsqrt_{suffix}"],
    }
