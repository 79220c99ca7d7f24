"""Small stand-in tables for the engine tests (built with nli.table_from_cutpoints, no solve).

Not accurate tables: they exercise the datapath (paper layout, below = 0 for
exp, reduced and direct reciprocal/rsqrt) so the tests need no shipped table.
"""

from __future__ import annotations

import numpy as np

import nli

PAPER_BINS = [1] + [32] * 8 + [1]


def _cuts(values) -> np.ndarray:
    return np.asarray(values, dtype=np.float16).view(np.uint16)


def engine_tables(mode: str = "reduced") -> dict:
    """{function: Table} for silu, exp, reciprocal and rsqrt; reciprocal/rsqrt in ``mode``."""
    t = {
        "silu": nli.table_from_cutpoints(
            "silu", _cuts([-65504, -20, -8, -4, -2, 0, 2, 4, 8, 20, 65504]), PAPER_BINS
        )
    }
    exp = nli.table_from_cutpoints(
        "exp", _cuts([-17, -12, -9, -7, -5, -3.5, -2.5, -1.5, -0.75, -0.25, 0]), PAPER_BINS
    )
    t["exp"] = exp.with_lut(exp.lut, below=0)
    if mode == "reduced":
        t["reciprocal"] = nli.table_from_cutpoints(
            "reciprocal", _cuts(np.linspace(1, 2, 11)), [32] * 10
        )
        t["rsqrt"] = nli.table_from_cutpoints("rsqrt", _cuts(np.geomspace(1, 4, 11)), [32] * 10)
    else:
        t["reciprocal"] = nli.table_from_cutpoints(
            "reciprocal", _cuts(np.geomspace(2**-15, 65504, 11)), PAPER_BINS
        )
        t["rsqrt"] = nli.table_from_cutpoints(
            "rsqrt", _cuts(np.geomspace(2**-24, 65504, 11)), PAPER_BINS
        )
    return t
