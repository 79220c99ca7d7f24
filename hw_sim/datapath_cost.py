"""Datapath-exact costs of cutpoint segments: what the fp32 unit really outputs.

A table built from cutpoints (``nli.table.table_from_cutpoints``: every LUT entry is
RNE16(f) at its real point, below = lut[0], above = lut[-1]) outputs, on the grid
points of one macro interval ``[x_j, x_k)`` with ``B`` bins, values that depend only on
``x_j``, ``x_k``, ``B``, the interval's ``B + 1`` LUT entries and
``mul = RNE32(B / (x_k - x_j))``. So a segment has an exact cost: evaluate the unit on
its points, here with the very kernels of :mod:`hw_sim.unit` (``_locate_fp32`` and
``_interp_fp32``; one implementation of numerics §3), against the reference RNE16(f(x)).

BF16 tables (numerics §13, ``dtype='bf16'``) are costed the same way with BF16 read for FP16:
the BF16 grid, LUT entries and reference RNE_bf16(f), the unit's step 10
``RNE_bf16(RNE32(y0 + p))`` (``hw_sim.unit._interp_fp32_bf16``, what ``_unit_bf16`` runs) and
ulps on BF16 encodings (``ord(+inf) = 0x7f80``). A segment is feasible only if the table it
makes is valid and the solver's rule holds (numerics §13): width at least ``B 2^-127`` and below
FP32's overflow threshold, every neighbouring LUT difference below it too.

Ownership (numerics §3 steps 2-3): interval I owns ``c_I <= x < c_{I+1}``; inputs below
``c_0`` output ``below = lut[0]`` (the left clamp of cutpoint ``c_0``), inputs at or
above ``c_K`` output ``above = lut[-1]`` (the right clamp). A cutpoint's own output is
its LUT value, RNE16(f(c)) (``Table.points`` puts an interval's end entries at its cutpoints
exactly): correctly rounded. The segment costs, the two clamps and the
DP of :mod:`hw_sim.datapath_solve` therefore partition the domain's grid exactly as
``nli table report`` (:func:`hw_sim.report.error_report`) does.

Objectives (codes 0, 1, 2; :data:`nli.objective.DATAPATH_OBJECTIVES`):

* ``ulp``: sum over points of the ulp distance ``|ord(y) - ord(RNE16(f(x)))|``;
* ``cr``: number of points whose output is not RNE16(f(x)) (``ord`` differs);
* ``cr+maxulp``: that number first, then the largest ulp distance, as one int64 key
  ``count << 16 | max`` (a distance is at most 2 * 0x7c00, BF16 2 * 0x7f80 = 0xff00, both
  < 2^16). Keys combine by adding the counts and taking the larger max; the combination is
  monotone in the key's (lexicographic) order, so the DP stays exact.

A cap ``max_ulp`` (optional, any objective) makes every table with an output more than that
many ulp off infeasible: ``cr`` with ``max_ulp=M`` is the fewest not-correctly-rounded outputs
among tables within M ulp everywhere (the smallest feasible M, found by trying M = 0, 1, ...,
then gives max ulp first and CR second, lexicographically). It also cuts a segment at its
first point beyond the cap, which makes small caps fast.

Every cost is a non-negative integer (an int64); :data:`NO_COST` marks an infeasible or
cut-off segment. ``mul`` is the table's ``RNE32(B / (x_k - x_j))`` of the exact quotient
(:func:`hw_sim.interval_exact.rne32_quotient`: a float64 estimate corrected by exact midpoint
tests; tested against ``nli.table.expected_mul``), not ``float32(B / d)``: for BF16 cutpoints
the float64 width d need not be exact.

Only precision fp32 is modelled here (``solve_datapath`` refuses fp16).

Layout: the per-segment kernels (unit outputs, LUT entries, segment sums, the cost encoding)
live in :mod:`hw_sim.datapath_segment`; here are the clamp, DP-layer and path kernels and
the public wrappers that validate their arguments. The kernels are ``cache=True``: Numba's
cache of this module's kernels does not notice edits to ``datapath_segment.py``, so after
editing it delete this module's cache files (``hw_sim/__pycache__/datapath_cost.*.nb*``).
"""

from __future__ import annotations

import numba
from numba import prange
import numpy as np

from nli.formats import BF16_MIN_WIDTH_PER_BIN, DTYPES
from nli.objective import DATAPATH_OBJECTIVES

from .datapath_segment import (
    _KEY_MASK,
    KEY_SHIFT,
    NO_COST,
    _combine,
    _ord16,
    _output,
    _point,
    _scratch,
    _segment,
    _setup,
)

__all__ = [
    "KEY_SHIFT",
    "NO_COST",
    "clamp_costs",
    "decode_cost",
    "layer",
    "objective_index",
    "path_cost",
    "segment_cost",
    "unit_ordinals",
]


def objective_index(objective: str) -> int:
    """'ulp' | 'cr' | 'cr+maxulp' -> 0 | 1 | 2, with an error naming the choices."""
    if objective not in DATAPATH_OBJECTIVES:
        raise ValueError(
            f"objective: must be one of {', '.join(DATAPATH_OBJECTIVES)}, got {objective!r}"
        )
    return DATAPATH_OBJECTIVES.index(objective)


def decode_cost(key: int, objective: str) -> dict:
    """An int64 cost of ``objective`` -> {'not_cr': n} / {'ulp_sum': s} / both parts."""
    key = int(key)
    if objective == "cr+maxulp":
        return {"not_cr": key >> KEY_SHIFT, "max_ulp": key & _KEY_MASK}
    return {"ulp_sum": key} if objective == "ulp" else {"not_cr": key}


# ----------------------------------------------------------------------------- DP kernels
@numba.njit(cache=True, nogil=True, parallel=True)
def _clamps(refo, lutc, ok, obj, cap, right, out):
    """out[k]: cost of the constant output lutc[k] on the points left of k (or, ``right``, at
    and right of k); NO_COST where not ok[k]."""
    n = refo.size
    for k in prange(n):
        if not ok[k]:
            out[k] = NO_COST
            continue
        o = _ord16(lutc[k])
        acc = np.int64(0)
        lo, hi = (k, n) if right else (0, k)
        for i in range(lo, hi):
            if abs(o - refo[i]) > cap:
                acc = NO_COST
                break
            acc = _combine(acc, _point(o, refo[i], obj), obj)
        out[k] = acc


@numba.njit(cache=True, nogil=True, parallel=True)
def _layer(D, B, x64, refo, lutc, fn_id, bf16, obj, cap, ok, bound, T, out, arg):
    """One DP layer: out[k] = min over j < k of D[j] (+) segment(j, k, B), for every k with
    ok[k], below ``bound`` (NO_COST otherwise); arg[k] = the minimizing j (-1 if none).
    Threads are strided over k (later k try more j); each k tries j from k - 1 down (short,
    cheap segments first tighten the limit), skips j with D[j] at the limit already (and, for
    bf16, j too close to k: x_k - x_j < B 2^-127, the same test as _width_ok), and every
    segment stops counting once it reaches the limit. Exact: costs are >= 0 and the
    combination is monotone."""
    n = D.size
    minw = B * BF16_MIN_WIDTH_PER_BIN if bf16 else 0.0
    for t in prange(T):
        scratch = _scratch(B)
        for k in range(n - 1 - t, -1, -T):
            best = bound
            bj = -1
            if ok[k]:
                for j in range(k - 1, -1, -1):
                    if D[j] >= best or x64[k] - x64[j] < minw:
                        continue
                    c = _segment(
                        j, k, B, x64, refo, lutc, fn_id, bf16, obj, cap, D[j], best, scratch
                    )
                    if c < best:
                        best = c
                        bj = j
            out[k] = best if bj >= 0 else NO_COST
            arg[k] = bj


@numba.njit(cache=True, nogil=True)
def _path_cost(idx, bins, x64, refo, lutc, fn_id, bf16, obj, cap, L, R):
    """Total cost of one cutpoint path (grid indices idx[K+1]), NO_COST if infeasible."""
    acc = L[idx[0]]
    if acc >= NO_COST:
        return NO_COST
    for m in range(bins.size):
        acc = _segment(
            idx[m], idx[m + 1], bins[m], x64, refo, lutc, fn_id, bf16, obj, cap, acc, NO_COST,
            _scratch(bins[m]),
        )  # fmt: skip
        if acc >= NO_COST:
            return NO_COST
    if R[idx[-1]] >= NO_COST:
        return NO_COST
    return _combine(acc, R[idx[-1]], obj)


@numba.njit(cache=True, nogil=True)
def _unit_ordinals(idx, bins, x64, lutc, fn_id, bf16, out):
    """out[i]: ordinal of the output the DP assumes at grid point i for the table with
    cutpoints x[idx] (clamps below idx[0] and from idx[-1] on, segments by ``_output``);
    NO_COST where a LUT entry it needs is not finite."""
    for i in range(idx[0]):
        out[i] = _ord16(lutc[idx[0]])
    for i in range(idx[-1], x64.size):
        out[i] = _ord16(lutc[idx[-1]])
    for m in range(bins.size):
        B = bins[m]
        scratch = _scratch(B)
        j, k = idx[m], idx[m + 1]
        c0, d = _setup(j, k, B, x64, lutc, bf16, scratch)
        cut32, bins1, base1, mul1, y, have = scratch
        for i in range(j, k):
            out[i] = _output(i, x64, c0, d, B, fn_id, bf16, cut32, bins1, base1, mul1, y, have)


# ----------------------------------------------------------------------------- wrappers
def _cap(max_ulp) -> np.int64:
    """A ``max_ulp`` cap (None: none) for the kernels."""
    if max_ulp is None:
        return NO_COST
    if int(max_ulp) != max_ulp or max_ulp < 0:
        raise ValueError(f"max_ulp: must be an integer >= 0, got {max_ulp!r}")
    return np.int64(max_ulp)


def _is_bf16(dtype: str) -> bool:
    if dtype not in DTYPES:
        raise ValueError(f"dtype: must be one of {', '.join(DTYPES)}, got {dtype!r}")
    return dtype == "bf16"


def _check_grid(x64, refo, lutc):
    x64 = np.asarray(x64)
    if x64.dtype != np.float64 or x64.ndim != 1 or x64.size < 2:
        raise ValueError("x64: expected float64[N], N >= 2 (FP16 or BF16 grid values, ascending)")
    if not np.all(np.diff(x64) > 0):
        raise ValueError("x64: grid values must be strictly ascending")
    refo, lutc = np.asarray(refo), np.asarray(lutc)
    if refo.dtype != np.int64 or refo.shape != x64.shape:
        raise ValueError(f"refo: expected int64[{x64.size}] reference ordinals")
    if lutc.dtype != np.uint16 or lutc.shape != x64.shape:
        raise ValueError(
            f"lutc: expected uint16[{x64.size}] RNE16 (RNE_bf16) of f bits at the grid points"
        )


def clamp_costs(x64, refo, lutc, ok, obj: int, right: bool, max_ulp=None) -> np.ndarray:
    """int64[N]: cost of the left (or right) clamp at each grid index (NO_COST where not ok,
    or where a point is more than ``max_ulp`` off)."""
    _check_grid(x64, refo, lutc)
    ok = np.ascontiguousarray(ok, dtype=np.bool_)
    if ok.shape != x64.shape or obj not in (0, 1, 2):
        raise ValueError("ok: expected bool[N]; obj: 0, 1 or 2")
    out = np.empty(x64.size, np.int64)
    _clamps(refo, lutc, ok, int(obj), _cap(max_ulp), bool(right), out)
    return out


def segment_cost(
    x64, refo, lutc, fn_id: int, obj: int, j: int, k: int, B: int, max_ulp=None, dtype="fp16"
) -> int:
    """Cost of one macro interval [x_j, x_k) with B bins (NO_COST if a LUT entry overflows,
    a point is more than ``max_ulp`` off, or a bf16 rule of ``_segment`` fails)."""
    bf16 = _is_bf16(dtype)
    _check_grid(x64, refo, lutc)
    if not (0 <= j < k < x64.size) or B < 1 or obj not in (0, 1, 2):
        raise ValueError(f"segment: need 0 <= j < k < {x64.size}, B >= 1, obj 0..2")
    s = _scratch(int(B))
    cap = _cap(max_ulp)
    return int(
        _segment(j, k, int(B), x64, refo, lutc, fn_id, bf16, obj, cap, np.int64(0), NO_COST, s)
    )


def layer(
    D,
    B: int,
    x64,
    refo,
    lutc,
    fn_id: int,
    obj: int,
    ok,
    bound: int,
    threads: int,
    max_ulp=None,
    dtype="fp16",
):
    """One DP layer (see ``_layer``) -> (out int64[N], arg int64[N])."""
    bf16 = _is_bf16(dtype)
    _check_grid(x64, refo, lutc)
    D = np.ascontiguousarray(D, dtype=np.int64)
    ok = np.ascontiguousarray(ok, dtype=np.bool_)
    if D.shape != x64.shape or ok.shape != x64.shape or B < 1 or threads < 1:
        raise ValueError("layer: D int64[N], ok bool[N], B >= 1, threads >= 1")
    out = np.empty(x64.size, np.int64)
    arg = np.empty(x64.size, np.int64)
    cap = _cap(max_ulp)
    bound = np.int64(bound)
    _layer(D, int(B), x64, refo, lutc, fn_id, bf16, obj, cap, ok, bound, threads, out, arg)
    return out, arg


def path_cost(
    idx, bins, x64, refo, lutc, fn_id: int, obj: int, L, R, max_ulp=None, dtype="fp16"
) -> int:
    """Total cost of cutpoints at grid indices idx (int64[K+1]) with bins (int64[K])."""
    bf16 = _is_bf16(dtype)
    _check_grid(x64, refo, lutc)
    idx = np.ascontiguousarray(idx, dtype=np.int64)
    bins = np.ascontiguousarray(bins, dtype=np.int64)
    if idx.size != bins.size + 1 or not np.all(np.diff(idx) > 0):
        raise ValueError("idx: K+1 strictly increasing grid indices for K bins")
    return int(_path_cost(idx, bins, x64, refo, lutc, fn_id, bf16, obj, _cap(max_ulp), L, R))


def unit_ordinals(idx, bins, x64, lutc, fn_id: int, dtype="fp16") -> np.ndarray:
    """int64[N]: the output ordinals the DP's costs assume at every grid point for the table
    with cutpoints at grid indices idx and ``bins`` (for tests against hw_sim.unit)."""
    bf16 = _is_bf16(dtype)
    x64 = np.asarray(x64)
    refo = np.zeros(x64.size, np.int64)
    _check_grid(x64, refo, lutc)
    idx = np.ascontiguousarray(idx, dtype=np.int64)
    bins = np.ascontiguousarray(bins, dtype=np.int64)
    if idx.size != bins.size + 1 or not np.all(np.diff(idx) > 0):
        raise ValueError("idx: K+1 strictly increasing grid indices for K bins")
    out = np.empty(x64.size, np.int64)
    _unit_ordinals(idx, bins, x64, lutc, fn_id, bf16, out)
    return out


# numba cache stamp: ee8419cace160324 (nli/kernel_stamps.py)
