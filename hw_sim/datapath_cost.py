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
"""

from __future__ import annotations

import numba
from numba import prange
import numpy as np

from nli.formats import BF16_MIN_WIDTH_PER_BIN, DTYPES, FP16_OVERFLOW, FP32
from nli.functions import evaluate_scalar
from nli.objective import DATAPATH_OBJECTIVES

from .fp import bf16_to_f32, f16_to_f32, rne16_f64
from .fp_bf16 import rne_bf16_f64
from .interval_exact import reaches, rne32_quotient
from .unit import _interp_fp32, _interp_fp32_bf16, _locate_fp32

NO_COST = np.int64(1) << 62  # larger than any cost; marks infeasible / cut-off
_F32_OVERFLOW = FP32.overflow  # (2 - 2^-24) 2^127: bf16 widths and LUT differences stay below
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
    """FP16 or BF16 bits -> position on the number line (-0 and +0 -> 0), as
    hw_sim.report.ordered (both formats: sign bit 0x8000, magnitude ordered as an integer)."""
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
def _decode(b, bf16):
    """FP16 or BF16 bits -> the float32 they encode (both exact)."""
    return bf16_to_f32(b) if bf16 else f16_to_f32(b)


@numba.njit(cache=True, nogil=True)
def _not_finite(b, bf16):
    """Exponent field all ones: inf or NaN (FP16 0x7c00, BF16 0x7f80)."""
    e = 0x7F80 if bf16 else 0x7C00
    return (np.int64(b) & e) == e


@numba.njit(cache=True, nogil=True)
def _width_ok(c0, c1, B, bf16):
    """A bf16 interval of B bins is at least B 2^-127 wide (so mul <= 2^127 is finite) and
    narrower than FP32's overflow threshold (step 4 finite), numerics §13. The float64 width
    decides the first exactly: BF16 values are multiples of 2^-133, so a width below 2^-80 is
    an integer below 2^53 times 2^-133 (exact in float64) and one at or above 2^-80 has a
    float64 width at or above 2^-80 > B 2^-127 too. FP16 intervals meet both."""
    if not bf16:
        return True
    return c1 - c0 >= B * BF16_MIN_WIDTH_PER_BIN and not reaches(c0, c1, _F32_OVERFLOW)


@numba.njit(cache=True, nogil=True)
def _edge(c0, d, e, B, fn_id, bf16):
    """LUT entry e (0 < e < B) of a B-bin interval from c0 of float64 width d: bits of
    RNE16(f(point)) (RNE_bf16 for bf16), the point computed as ``Table.points`` does:
    c0 + e * d / B in float64."""
    v = evaluate_scalar(fn_id, c0 + np.float64(e) * d / B)
    return rne_bf16_f64(v) if bf16 else rne16_f64(v)


@numba.njit(cache=True, nogil=True)
def _setup(j, k, B, x64, lutc, bf16, scratch):
    """Fill the scratch arrays for the macro interval [x_j, x_k) with B bins (its two end
    entries are the cutpoints' RNE(f), Table.points); returns (c0, float64 width)."""
    cut32, bins1, base1, mul1, y, have = scratch
    c0 = x64[j]
    d = x64[k] - c0  # as Table.points computes it (exact for FP16, maybe rounded for BF16)
    cut32[0] = np.float32(c0)  # exact: an FP16 / BF16 value
    cut32[1] = np.float32(x64[k])
    bins1[0] = B
    base1[0] = 0
    mul1[0] = rne32_quotient(B, c0, x64[k])
    have[:] = False
    y[0] = _decode(lutc[j], bf16)
    y[B] = _decode(lutc[k], bf16)
    have[0] = True
    have[B] = True
    return c0, d


@numba.njit(cache=True, nogil=True)
def _output(i, x64, c0, d, B, fn_id, bf16, cut32, bins1, base1, mul1, y, have):
    """The unit's output ordinal at grid point i of the segment set up in the scratch arrays
    (LUT entries computed on first use), or NO_COST if an entry it needs is not finite."""
    g, t = _locate_fp32(np.float32(x64[i]), cut32, bins1, base1, mul1)
    for e in (g, g + 1):
        if not have[e]:
            b = _edge(c0, d, e, B, fn_id, bf16)
            if _not_finite(b, bf16):
                return NO_COST
            y[e] = _decode(b, bf16)
            have[e] = True
    if bf16:
        return _ord16(_interp_fp32_bf16(y[g], y[g + 1], t))
    return _ord16(_interp_fp32(y[g], y[g + 1], t))


@numba.njit(cache=True, nogil=True)
def _segment(j, k, B, x64, refo, lutc, fn_id, bf16, obj, cap, start, limit, scratch):
    """start (+) the cost of the unit's outputs on grid points j..k-1 for the macro interval
    [x_j, x_k) with B bins, or NO_COST once that reaches ``limit``, a point is more than
    ``cap`` ulp off, a LUT entry is not finite or a neighbouring difference of them reaches
    the step 8 register's overflow threshold (the table would be invalid), or a bf16 interval
    breaks a rule of _width_ok. scratch:
    (cut32 float32[2], bins int64[1], base int64[1], mul32 float32[1], y float32[B+1],
    have bool[B+1])."""
    if not _width_ok(x64[j], x64[k], B, bf16):
        return NO_COST
    c0, d = _setup(j, k, B, x64, lutc, bf16, scratch)
    cut32, bins1, base1, mul1, y, have = (
        scratch  # passed one by one: a *scratch call is 2.5x slower
    )
    if cap < NO_COST:  # probe bin midpoints first (the chord's worst): most pairs fail there
        for q in (B // 2, B // 4, (3 * B) // 4):
            i = j + ((k - j) * (2 * q + 1)) // (2 * B)
            o = _output(i, x64, c0, d, B, fn_id, bf16, cut32, bins1, base1, mul1, y, have)
            if o == NO_COST or abs(o - refo[i]) > cap:
                return NO_COST
    acc = start
    for i in range(j, k):
        o = _output(i, x64, c0, d, B, fn_id, bf16, cut32, bins1, base1, mul1, y, have)
        if o == NO_COST or abs(o - refo[i]) > cap:
            return NO_COST
        acc = _combine(acc, _point(o, refo[i], obj), obj)
        if acc >= limit:
            return NO_COST
    for e in range(1, B):  # the table needs every entry finite, used or not
        if not have[e]:
            b = _edge(c0, d, e, B, fn_id, bf16)
            if _not_finite(b, bf16):
                return NO_COST
            y[e] = _decode(b, bf16)
    dmax = _F32_OVERFLOW if bf16 else FP16_OVERFLOW  # step 8 finite (numerics §2, §13)
    for e in range(B):
        if reaches(np.float64(y[e]), np.float64(y[e + 1]), dmax):
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
