"""Per-segment kernels of the datapath-exact objectives (:mod:`hw_sim.datapath_cost`).

The cost of one macro interval ``[x_j, x_k)`` with ``B`` bins: set up the unit's registers for
it (``_setup``: cutpoints, ``mul = RNE32(B / (x_k - x_j))``, end entries), compute its LUT
entries on first use (``_edge``), run the unit's own locate/interpolate kernels of
:mod:`hw_sim.unit` at each grid point (``_output``), and sum the per-point costs (``_point``,
``_combine``) against the reference ordinals (``_segment``), stopping at a limit or a
``max_ulp`` cap and refusing segments that make an invalid table (a non-finite LUT entry, a
neighbouring LUT difference that reaches the step 8 overflow threshold, a bf16 interval that
breaks ``_width_ok``). FP16 and BF16 (``bf16``) share every kernel.

The cost encoding is here too: :data:`NO_COST` (infeasible or cut off) and the ``cr+maxulp``
key ``count << KEY_SHIFT | max ulp``. The semantics (objectives, ownership, feasibility) are
documented in :mod:`hw_sim.datapath_cost`, whose DP kernels and public wrappers call these.
"""

from __future__ import annotations

import numba
import numpy as np

from nli.formats import BF16_MIN_WIDTH_PER_BIN, FP16_OVERFLOW, FP32
from nli.functions import evaluate_scalar

from .fp import bf16_to_f32, f16_to_f32, rne16_f64
from .fp_bf16 import rne_bf16_f64
from .interval_exact import reaches, rne32_quotient
from .unit import _interp_fp32, _interp_fp32_bf16, _locate_fp32

NO_COST = np.int64(1) << 62  # larger than any cost; marks infeasible / cut-off
_F32_OVERFLOW = FP32.overflow  # (2 - 2^-24) 2^127: bf16 widths and LUT differences stay below
KEY_SHIFT = 16  # cr+maxulp key: count << KEY_SHIFT | max ulp
_KEY_MASK = (1 << KEY_SHIFT) - 1


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


# numba cache stamp: f29b785092fbd7ae (nli/kernel_stamps.py)
