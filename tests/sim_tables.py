"""Tables and oracle plumbing shared by the hw_sim tests.

``standin_tables()`` builds small tables that exercise the datapath's corners
(the whole FP16 range in one macro interval, ``below`` = 0, single-level
layouts, cutpoints at +0 and LUT entries of -0). ``shipped_tables()`` lists
the default tables that exist under nli/tables/. ``OraclePool`` evaluates the
Fraction oracle of tests/naive.py over all 65,536 inputs once per table, on
two spawned processes (Numba's OpenMP threads make fork unsafe).
"""

from __future__ import annotations

import multiprocessing as mp

from naive import nv_unit_all
import numpy as np

import nli
from nli.defaults import default_table_path

PAPER_BINS = [1] + [32] * 8 + [1]
ALL_INPUTS = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)


def _cuts(values) -> np.ndarray:
    return np.asarray(values, dtype=np.float16).view(np.uint16)


def standin_tables() -> dict:
    """name -> fp32 Table, built with nli.table_from_cutpoints (and a few edits)."""
    t = {}
    t["silu_wide"] = nli.table_from_cutpoints(
        "silu", _cuts([-65504, -20, -8, -4, -2, 0, 2, 4, 8, 20, 65504]), PAPER_BINS
    )
    exp = nli.table_from_cutpoints(
        "exp", _cuts([-17, -12, -9, -7, -5, -3.5, -2.5, -1.5, -0.75, -0.25, 0]), PAPER_BINS
    )
    t["exp_below0"] = exp.with_lut(exp.lut, below=0)
    t["recip_reduced"] = nli.table_from_cutpoints(
        "reciprocal", _cuts(np.linspace(1, 2, 11)), [32] * 10, domain=["3c00", "4000"]
    )
    t["recip_direct"] = nli.table_from_cutpoints(
        "reciprocal", _cuts(np.geomspace(2**-15, 65504, 11)), PAPER_BINS
    )
    t["rsqrt_single"] = nli.table_from_cutpoints(
        "rsqrt", _cuts(np.geomspace(1, 4, 17)), [1] * 16, domain=["3c00", "4400"]
    )
    t["rsqrt_direct"] = nli.table_from_cutpoints(
        "rsqrt", _cuts(np.geomspace(2**-24, 65504, 11)), PAPER_BINS
    )
    z = nli.table_from_cutpoints("tanh", _cuts([-8, -1, 0, 1, 8]), [4, 4, 4, 4])
    lut = z.lut.copy()
    lut[[3, 4, 5, 8, 9]] = [0x8000, 0x8000, 0x0000, 0x8000, 0x0001]  # zeros of both signs around 0
    t["zero_signs"] = z.with_lut(lut, below=0x8000, above=0x0000)
    return t


def shipped_tables() -> list[tuple[str, str]]:
    """(function, mode) of every default table whose file exists."""
    return [(f, m) for f, m in nli.default_table_names() if default_table_path(f, m).exists()]


class OraclePool:
    """Fraction-oracle outputs for all 65,536 inputs, computed once per table object."""

    def __init__(self, processes: int = 2):
        self._pool = mp.get_context("spawn").Pool(processes)
        self._cache: dict[int, tuple[object, np.ndarray]] = {}
        self._chunks = processes * 4

    def outputs(self, table) -> np.ndarray:
        """uint16[65536]: the oracle's output bits for every input encoding."""
        hit = self._cache.get(id(table))
        if hit is None:
            parts = np.array_split(ALL_INPUTS, self._chunks)
            got = self._pool.starmap(nv_unit_all, [(table, p) for p in parts])
            hit = (table, np.concatenate(got))  # keep the table alive so its id stays unique
            self._cache[id(table)] = hit
        return hit[1]

    def close(self):
        self._pool.terminate()
        self._pool.join()


def op_tables(source: str) -> dict:
    """Tables for the composite ops: ``source`` 'standin' or 'shipped'.

    Returns {('exp'|'reciprocal'|'rsqrt', 'direct'|'reduced'): Table}; the exp
    table is the same for both modes. Raises LookupError if a shipped one is missing.
    """
    if source == "standin":
        s = standin_tables()
        return {
            ("exp", "direct"): s["exp_below0"],
            ("exp", "reduced"): s["exp_below0"],
            ("reciprocal", "direct"): s["recip_direct"],
            ("reciprocal", "reduced"): s["recip_reduced"],
            ("rsqrt", "direct"): s["rsqrt_direct"],
            ("rsqrt", "reduced"): s["rsqrt_single"],
        }
    have = set(shipped_tables())
    need = [
        ("exp", "direct"),
        ("reciprocal", "direct"),
        ("reciprocal", "reduced"),
        ("rsqrt", "direct"),
        ("rsqrt", "reduced"),
    ]
    missing = [k for k in need if k not in have]
    if missing:
        raise LookupError(f"no shipped tables for {missing}")
    out = {k: nli.default_table(*k) for k in need}
    out[("exp", "reduced")] = out[("exp", "direct")]
    return out
