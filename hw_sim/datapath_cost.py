"""Datapath-exact costs of cutpoint segments: what the fp32 unit really outputs.

A table built from cutpoints (``nli.table.table_from_cutpoints``: every LUT entry is
RNE16(f) at its real point, below = lut[0], above = lut[-1]) outputs, on the grid
points of one macro interval ``[x_j, x_k)`` with ``B`` bins, values that depend only on
``x_j``, ``x_k``, ``B``, the interval's ``B + 1`` LUT entries and
``mul = RNE32(B / (x_k - x_j))``. So a segment has an exact cost: evaluate the unit on
its points, here with the very kernels of :mod:`hw_sim.unit` (``_locate_fp32`` and
``_interp_fp32``; one implementation of numerics §3), against the reference RNE16(f(x)).

Ownership (numerics §3 steps 2-3): interval I owns ``c_I <= x < c_{I+1}``; inputs below
``c_0`` output ``below = lut[0]`` (the left clamp of cutpoint ``c_0``), inputs at or
above ``c_K`` output ``above = lut[-1]`` (the right clamp). A cutpoint's own output is
its LUT value, RNE16(f(c)): correctly rounded. The segment costs, the two clamps and the
DP of :mod:`hw_sim.datapath_solve` therefore partition the domain's grid exactly as
``nli table report`` (:func:`hw_sim.report.error_report`) does.

Objectives (codes 0, 1, 2; :data:`nli.objective.DATAPATH_OBJECTIVES`):

* ``ulp``: sum over points of the ulp distance ``|ord(y) - ord(RNE16(f(x)))|``;
* ``cr``: number of points whose output is not RNE16(f(x)) (``ord`` differs);
* ``cr+maxulp``: that number first, then the largest ulp distance, as one int64 key
  ``count << 16 | max`` (a distance is at most 2 * 0x7c00 < 2^16). Keys combine by
  adding the counts and taking the larger max; the combination is monotone in the
  key's (lexicographic) order, so the DP stays exact.

A cap ``max_ulp`` (optional, any objective) makes every table with an output more than that
many ulp off infeasible: ``cr`` with ``max_ulp=M`` is the fewest not-correctly-rounded outputs
among tables within M ulp everywhere (the smallest feasible M, found by trying M = 0, 1, ...,
then gives max ulp first and CR second, lexicographically). It also cuts a segment at its
first point beyond the cap, which makes small caps fast.

Every cost is a non-negative integer (an int64); :data:`NO_COST` marks an infeasible or
cut-off segment. ``mul`` is ``float32(B / d)`` of the float64 quotient: the exact quotient
rounded to 53 bits, then to 24, which equals the single RNE32 of the exact quotient
(double rounding is innocuous when 53 >= 2 * 24 + 2; tested against
``nli.table.expected_mul`` through the tables the DP builds).

Only precision fp32 is modelled here (``solve_datapath`` refuses fp16).
"""

from __future__ import annotations

import numba
from numba import prange
import numpy as np

from nli.functions import evaluate_scalar
from nli.objective import DATAPATH_OBJECTIVES

from .fp import f16_to_f32, rne16_f64
from .unit import _interp_fp32, _locate_fp32

NO_COST = np.int64(1) << 62  # larger than any cost; marks infeasible / cut-off
KEY_SHIFT = 16  # cr+maxulp key: count << KEY_SHIFT | max ulp
_KEY_MASK = (1 << KEY_SHIFT) - 1


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


# ----------------------------------------------------------------------------- kernels
@numba.njit(cache=True, nogil=True)
def _ord16(b):
    """FP16 bits -> position on the number line (-0 and +0 -> 0), as hw_sim.report.ordered."""
    b = np.int64(b) & 0xFFFF
    m = b & 0x7FFF
    return -m if b & 0x8000 else m


@numba.njit(cache=True, nogil=True)
def _point(o, r, obj):
    """The cost of one output of ordinal o against the reference ordinal r."""
    d = abs(o - r)
    if obj == 0:
        return d
    if obj == 1:
        return np.int64(d != 0)
    return (np.int64(d != 0) << KEY_SHIFT) | d


@numba.njit(cache=True, nogil=True)
def _combine(a, c, obj):
    """a (+) c: sum, or for the key (counts added, max of the maxima)."""
    if obj != 2:
        return a + c
    return (((a >> KEY_SHIFT) + (c >> KEY_SHIFT)) << KEY_SHIFT) | max(a & _KEY_MASK, c & _KEY_MASK)


@numba.njit(cache=True, nogil=True)
def _edge(c0, d, e, B, fn_id):
    """LUT entry e of a B-bin interval from c0 of width d: FP16 bits of RNE16(f(point)), the
    point computed as ``Table.points`` does: c0 + e * d / B in float64."""
    return rne16_f64(evaluate_scalar(fn_id, c0 + np.float64(e) * d / B))


@numba.njit(cache=True, nogil=True)
def _output(i, x64, lutc, c0, d, B, fn_id, cut32, bins1, base1, mul1, y, have):
    """The unit's output ordinal at grid point i of the segment set up in the scratch arrays
    (LUT entries computed on first use), or NO_COST if an entry it needs is not finite."""
    g, t = _locate_fp32(np.float32(x64[i]), cut32, bins1, base1, mul1)
    for e in (g, g + 1):
        if not have[e]:
            b = _edge(c0, d, e, B, fn_id)
            if b & 0x7C00 == 0x7C00:
                return NO_COST
            y[e] = f16_to_f32(b)
            have[e] = True
    return _ord16(_interp_fp32(y[g], y[g + 1], t))


@numba.njit(cache=True, nogil=True)
def _segment(j, k, B, x64, refo, lutc, fn_id, obj, cap, start, limit, scratch):
    """start (+) the cost of the unit's outputs on grid points j..k-1 for the macro interval
    [x_j, x_k) with B bins, or NO_COST once that reaches ``limit``, a point is more than
    ``cap`` ulp off, or a LUT entry is not finite. scratch: (cut32 float32[2], bins int64[1],
    base int64[1], mul32 float32[1], y float32[B+1], have bool[B+1])."""
    cut32, bins1, base1, mul1, y, have = scratch
    c0 = x64[j]
    d = x64[k] - c0  # exact: a difference of two FP16 values
    cut32[0] = np.float32(c0)
    cut32[1] = np.float32(x64[k])
    bins1[0] = B
    base1[0] = 0
    mul1[0] = np.float32(np.float64(B) / d)  # = RNE32(B / d), see the module docstring
    have[:] = False
    y[0] = f16_to_f32(lutc[j])
    y[B] = f16_to_f32(lutc[k])
    have[0] = True
    have[B] = True
    if cap < NO_COST:  # probe bin midpoints first (the chord's worst): most pairs fail there
        for q in (B // 2, B // 4, (3 * B) // 4):
            i = j + ((k - j) * (2 * q + 1)) // (2 * B)
            o = _output(i, x64, lutc, c0, d, B, fn_id, cut32, bins1, base1, mul1, y, have)
            if o == NO_COST or abs(o - refo[i]) > cap:
                return NO_COST
    acc = start
    for i in range(j, k):
        o = _output(i, x64, lutc, c0, d, B, fn_id, cut32, bins1, base1, mul1, y, have)
        if o == NO_COST or abs(o - refo[i]) > cap:
            return NO_COST
        acc = _combine(acc, _point(o, refo[i], obj), obj)
        if acc >= limit:
            return NO_COST
    for e in range(1, B):  # the table needs every entry finite, used or not
        if not have[e] and _edge(c0, d, e, B, fn_id) & 0x7C00 == 0x7C00:
            return NO_COST
    return acc


@numba.njit(cache=True, nogil=True)
def _scratch(B):
    return (
        np.empty(2, np.float32),
        np.empty(1, np.int64),
        np.empty(1, np.int64),
        np.empty(1, np.float32),
        np.empty(B + 1, np.float32),
        np.empty(B + 1, np.bool_),
    )


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
def _layer(D, B, x64, refo, lutc, fn_id, obj, cap, ok, bound, T, out, arg):
    """One DP layer: out[k] = min over j < k of D[j] (+) segment(j, k, B), for every k with
    ok[k], below ``bound`` (NO_COST otherwise); arg[k] = the minimizing j (-1 if none).
    Threads are strided over k (later k try more j); each k tries j from k - 1 down (short,
    cheap segments first tighten the limit), skips j with D[j] at the limit already, and
    every segment stops counting once it reaches the limit. Exact: costs are >= 0 and the
    combination is monotone."""
    n = D.size
    for t in prange(T):
        scratch = _scratch(B)
        for k in range(n - 1 - t, -1, -T):
            best = bound
            bj = -1
            if ok[k]:
                for j in range(k - 1, -1, -1):
                    if D[j] >= best:
                        continue
                    c = _segment(j, k, B, x64, refo, lutc, fn_id, obj, cap, D[j], best, scratch)
                    if c < best:
                        best = c
                        bj = j
            out[k] = best if bj >= 0 else NO_COST
            arg[k] = bj


@numba.njit(cache=True, nogil=True)
def _path_cost(idx, bins, x64, refo, lutc, fn_id, obj, cap, L, R):
    """Total cost of one cutpoint path (grid indices idx[K+1]), NO_COST if infeasible."""
    acc = L[idx[0]]
    if acc >= NO_COST:
        return NO_COST
    for m in range(bins.size):
        acc = _segment(
            idx[m], idx[m + 1], bins[m], x64, refo, lutc, fn_id, obj, cap, acc, NO_COST,
            _scratch(bins[m]),
        )  # fmt: skip
        if acc >= NO_COST:
            return NO_COST
    if R[idx[-1]] >= NO_COST:
        return NO_COST
    return _combine(acc, R[idx[-1]], obj)


@numba.njit(cache=True, nogil=True)
def _unit_ordinals(idx, bins, x64, lutc, fn_id, out):
    """out[i]: ordinal of the output the DP assumes at grid point i for the table with
    cutpoints x[idx] (clamps below idx[0] and from idx[-1] on, segments by ``_output``);
    NO_COST where a LUT entry it needs is not finite."""
    for i in range(idx[0]):
        out[i] = _ord16(lutc[idx[0]])
    for i in range(idx[-1], x64.size):
        out[i] = _ord16(lutc[idx[-1]])
    for m in range(bins.size):
        B = bins[m]
        cut32, bins1, base1, mul1, y, have = _scratch(B)
        j, k = idx[m], idx[m + 1]
        c0 = x64[j]
        d = x64[k] - c0
        cut32[0] = np.float32(c0)
        cut32[1] = np.float32(x64[k])
        bins1[0] = B
        base1[0] = 0
        mul1[0] = np.float32(np.float64(B) / d)
        have[:] = False
        y[0] = f16_to_f32(lutc[j])
        y[B] = f16_to_f32(lutc[k])
        have[0] = True
        have[B] = True
        for i in range(j, k):
            out[i] = _output(i, x64, lutc, c0, d, B, fn_id, cut32, bins1, base1, mul1, y, have)


# ----------------------------------------------------------------------------- wrappers
def _cap(max_ulp) -> np.int64:
    """A ``max_ulp`` cap (None: none) for the kernels."""
    if max_ulp is None:
        return NO_COST
    if int(max_ulp) != max_ulp or max_ulp < 0:
        raise ValueError(f"max_ulp: must be an integer >= 0, got {max_ulp!r}")
    return np.int64(max_ulp)


def _check_grid(x64, refo, lutc):
    x64 = np.asarray(x64)
    if x64.dtype != np.float64 or x64.ndim != 1 or x64.size < 2:
        raise ValueError("x64: expected float64[N], N >= 2 (FP16 grid values, ascending)")
    if not np.all(np.diff(x64) > 0):
        raise ValueError("x64: grid values must be strictly ascending")
    refo, lutc = np.asarray(refo), np.asarray(lutc)
    if refo.dtype != np.int64 or refo.shape != x64.shape:
        raise ValueError(f"refo: expected int64[{x64.size}] reference ordinals")
    if lutc.dtype != np.uint16 or lutc.shape != x64.shape:
        raise ValueError(f"lutc: expected uint16[{x64.size}] RNE16(f) bits at the grid points")


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
    x64, refo, lutc, fn_id: int, obj: int, j: int, k: int, B: int, max_ulp=None
) -> int:
    """Cost of one macro interval [x_j, x_k) with B bins (NO_COST if a LUT entry overflows or
    a point is more than ``max_ulp`` off)."""
    _check_grid(x64, refo, lutc)
    if not (0 <= j < k < x64.size) or B < 1 or obj not in (0, 1, 2):
        raise ValueError(f"segment: need 0 <= j < k < {x64.size}, B >= 1, obj 0..2")
    s = _scratch(int(B))
    cap = _cap(max_ulp)
    return int(_segment(j, k, int(B), x64, refo, lutc, fn_id, obj, cap, np.int64(0), NO_COST, s))


def layer(
    D, B: int, x64, refo, lutc, fn_id: int, obj: int, ok, bound: int, threads: int, max_ulp=None
):
    """One DP layer (see ``_layer``) -> (out int64[N], arg int64[N])."""
    _check_grid(x64, refo, lutc)
    D = np.ascontiguousarray(D, dtype=np.int64)
    ok = np.ascontiguousarray(ok, dtype=np.bool_)
    if D.shape != x64.shape or ok.shape != x64.shape or B < 1 or threads < 1:
        raise ValueError("layer: D int64[N], ok bool[N], B >= 1, threads >= 1")
    out = np.empty(x64.size, np.int64)
    arg = np.empty(x64.size, np.int64)
    cap = _cap(max_ulp)
    _layer(D, int(B), x64, refo, lutc, fn_id, obj, cap, ok, np.int64(bound), threads, out, arg)
    return out, arg


def path_cost(idx, bins, x64, refo, lutc, fn_id: int, obj: int, L, R, max_ulp=None) -> int:
    """Total cost of cutpoints at grid indices idx (int64[K+1]) with bins (int64[K])."""
    _check_grid(x64, refo, lutc)
    idx = np.ascontiguousarray(idx, dtype=np.int64)
    bins = np.ascontiguousarray(bins, dtype=np.int64)
    if idx.size != bins.size + 1 or not np.all(np.diff(idx) > 0):
        raise ValueError("idx: K+1 strictly increasing grid indices for K bins")
    return int(_path_cost(idx, bins, x64, refo, lutc, fn_id, obj, _cap(max_ulp), L, R))


def unit_ordinals(idx, bins, x64, lutc, fn_id: int) -> np.ndarray:
    """int64[N]: the output ordinals the DP's costs assume at every grid point for the table
    with cutpoints at grid indices idx and ``bins`` (for tests against hw_sim.unit)."""
    x64 = np.asarray(x64)
    refo = np.zeros(x64.size, np.int64)
    _check_grid(x64, refo, lutc)
    idx = np.ascontiguousarray(idx, dtype=np.int64)
    bins = np.ascontiguousarray(bins, dtype=np.int64)
    if idx.size != bins.size + 1 or not np.all(np.diff(idx) > 0):
        raise ValueError("idx: K+1 strictly increasing grid indices for K bins")
    out = np.empty(x64.size, np.int64)
    _unit_ordinals(idx, bins, x64, lutc, fn_id, out)
    return out
