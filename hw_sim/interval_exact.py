"""Exact interval quantities of a table for Numba kernels: its ``mul`` and the bf16 bounds.

``rne32_quotient`` is ``mul = RNE32(B / (c1 - c0))`` rounded once from the exact quotient, as
``nli.table.expected_mul`` computes it with fractions; ``reaches`` decides ``|b - a| >= limit``
for the exact difference (numerics §13's width and LUT-difference rules). Both hold for FP16
and BF16 cutpoints, whose float64 difference need not be exact (BF16 spans 2^-133 .. 2^128).
Arguments use :func:`hw_sim.fp.two_sum` and exact float64 products; no hardware rounding is
relied on beyond IEEE float64 ``+ - * /`` and the float64 -> float32 conversion (RNE, gradual
underflow: no fastmath, no FTZ/DAZ).
"""

from __future__ import annotations

import numba
import numpy as np

from nli.bitcast import f32_as_i32, i32_as_f32

from .fp import two_sum


@numba.njit(cache=True, nogil=True)
def reaches(a, b, limit):
    """|b - a| >= limit for the exact difference of float64 a, b. TwoSum gives it as s + err
    exactly; s = RN64(b - a) is monotone in the exact value and ``limit`` is a float64, so
    |s| > limit and |s| < limit decide, and at |s| = limit the exact value reaches it unless
    err points back towards 0."""
    s, err = two_sum(b, -a)
    return abs(s) > limit or (abs(s) == limit and s * err >= 0.0)


@numba.njit(cache=True, nogil=True)
def _beyond(B, mid, c0, c1):
    """Sign of B / (c1 - c0) - mid (+1, 0, -1) for c0 < c1, exactly: the sign of B - mid D with
    D = c1 - c0. ``mid`` (a float32 midpoint: at most 25 significant bits) times a cutpoint (at
    most 11: FP16 or BF16) has at most 36 bits, inside float64's normal range (2^-150 2^-133 ..
    2^128 2^128), so p1 and p0 are exact; TwoSum makes s + err = -mid D exactly; and s is
    within a factor 2 of -B (mid is within 2 ulp32 of the quotient, see rne32_quotient), so
    B + s is exact (Sterbenz). B - mid D = (B + s) + err: compared exactly."""
    p1 = mid * c1
    p0 = mid * c0
    s, err = two_sum(p0, -p1)
    a = np.float64(B) + s
    if a > -err:
        return 1
    return -1 if a < -err else 0


@numba.njit(cache=True, nogil=True)
def rne32_quotient(B, c0, c1):
    """mul = RNE32(B / (c1 - c0)) of the exact quotient, as ``nli.table.expected_mul``, for an
    integer 1 <= B < 2^16 and cutpoints c0 < c1 (FP16 or BF16 values as float64) with
    B / (c1 - c0) <= 2^127 and c1 - c0 < 2^128 (the bf16 segment rules).

    m = RNE32(RN64(B / RN64(c1 - c0))) is within 2^-51 relative plus half an ulp32 of the
    exact q, so q lies strictly between m's float32 neighbours and RNE32(q) is m or one of
    them; the two midpoints next to m (exact in float64) decide which, by exact comparisons
    (:func:`_beyond`; ties to even, although q = B / D cannot be a midpoint when B < 2^16). Double
    rounding alone is not proven here: a BF16 width need not be a float64 (2^127 + 2^-133),
    and for a width of up to 53 significant bits no simple bound keeps q more than 2^-53
    (relative) from every midpoint."""
    m = np.float32(np.float64(B) / (c1 - c0))
    bits = f32_as_i32(m)
    mf = np.float64(m)
    up = _beyond(B, (mf + np.float64(i32_as_f32(np.int32(bits + 1)))) * 0.5, c0, c1)
    if up > 0 or (up == 0 and bits & 1):
        return i32_as_f32(np.int32(bits + 1))
    down = _beyond(B, (mf + np.float64(i32_as_f32(np.int32(bits - 1)))) * 0.5, c0, c1)
    if down < 0 or (down == 0 and bits & 1):
        return i32_as_f32(np.int32(bits - 1))
    return m


# numba cache stamp: 2f42c321b28878d9 (nli/kernel_stamps.py)
