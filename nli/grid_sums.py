"""Sums of a line's relative error over ranges of grid points, from the grid's prefix arrays.

For a line ``a0 + s (x - t0)`` over grid points ``x_i`` with values ``f_i`` and weights ``w_i``
(:class:`nli.objective.GridArrays`), the error at point i is ``g_i / w_i`` with
``g = f - line``. Sums of ``|g_i| / w_i`` over an index range come from double-double prefix
sums of ``1/w``, ``f/w`` and ``x/w``:
``sum g/w = sum f/w - a0 sum 1/w - s (sum x/w - t0 sum 1/w)``.
Where the sign of g is constant, ``sum |g|/w = |sum g/w|``: this holds for a
chord of f over an interval inside one convexity region (f convex or concave
there). Otherwise each convexity run of the range is split at the minimum of
``sigma g`` (binary search on f's monotone divided differences) and at its two
zero crossings (binary search), leaving at most three constant-sign pieces.

The double-double prefix sums keep about 106 bits: where 1/w spans a huge range (a bf16 domain
reaching f's underflow, 1/w = 2^126) the sums lose accuracy on the ranges after those points;
the maximum (:func:`_line_max`) reads every term directly and does not.
"""

from __future__ import annotations

import numba
import numpy as np

# each O(1) sum of g/w in a lower bound is lowered by this times the magnitude of its terms:
# 32 float64 ulps, far above the few roundings of the double-double prefix-sum differences
LB_NOISE = 32 * 2.0**-53


@numba.njit(cache=True, inline="always")
def _two_sum(a, b):
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


@numba.njit(cache=True)
def _prefix_dd(v):
    """float64[N] -> float64[2, N+1]: double-double prefix sums (hi, lo), P[:, 0] = 0."""
    out = np.zeros((2, v.size + 1))
    hi = 0.0
    lo = 0.0
    for i in range(v.size):
        s, e = _two_sum(hi, v[i])
        lo += e
        hi, lo = _two_sum(s, lo)
        out[0, i + 1] = hi
        out[1, i + 1] = lo
    return out


# Kernels take the packed arrays of GridArrays explicitly (A; I, passed as RID: int64[N] run id;
# R: int64[2, runs] run end index, run sign; infl), and the per-segment ones are compiled without
# the Numba runtime (_nrt=False: they allocate nothing): otherwise every array use in branchy
# code gets atomic reference-count updates, which cost several times the O(1) segment sums
# themselves (measured).
# A: float64[10, N+1] rows x, f, 1/w, dd, then prefix (hi, lo) of 1/w, f/w, x/w.
X_, F_, IW_, DD_, P_ = 0, 1, 2, 3, 4


@numba.njit(cache=True, inline="always")
def _rsum(A, q, lo, hi):
    """sum of prefix quantity q (0: 1/w, 1: f/w, 2: x/w) over lo..hi (inclusive), rounded once."""
    r = P_ + 2 * q
    s, e = _two_sum(A[r, hi + 1], -A[r, lo])
    return s + (e + (A[r + 1, hi + 1] - A[r + 1, lo]))


@numba.njit(cache=True, inline="always")
def _signed_sum(A, lo, hi, a0, s, t0):
    """sum_{i=lo..hi} (f_i - a0 - s (x_i - t0)) / w_i."""
    if hi < lo:
        return 0.0
    r1 = _rsum(A, 0, lo, hi)
    return (_rsum(A, 1, lo, hi) - a0 * r1) - s * (_rsum(A, 2, lo, hi) - t0 * r1)


@numba.njit(cache=True, inline="always")
def _g(A, i, a0, s, t0):
    return A[F_, i] - (a0 + s * (A[X_, i] - t0))


@numba.njit(cache=True, _nrt=False)
def _piece_abs_sum(A, lo, hi, sigma, a0, s, t0):
    """sum |g|/w over lo..hi, where h = sigma * g is convex (one convexity run)."""
    # argmin of h: first i with h_{i+1} - h_i >= 0, i.e. sigma (dd_i - s) >= 0
    a, b = lo, hi
    while a < b:
        mid = (a + b) // 2
        if sigma * (A[DD_, mid] - s) >= 0.0:
            b = mid
        else:
            a = mid + 1
    m = a
    # on lo..m, h is non-increasing: first i with h_i <= 0
    a, b = lo, m + 1
    while a < b:
        mid = (a + b) // 2
        if sigma * _g(A, mid, a0, s, t0) <= 0.0:
            b = mid
        else:
            a = mid + 1
    z1 = a
    # on m..hi, h is non-decreasing: first i with h_i > 0
    a, b = m, hi + 1
    while a < b:
        mid = (a + b) // 2
        if sigma * _g(A, mid, a0, s, t0) > 0.0:
            b = mid
        else:
            a = mid + 1
    z2 = max(a, z1)
    return (
        abs(_signed_sum(A, lo, z1 - 1, a0, s, t0))
        + abs(_signed_sum(A, z1, z2 - 1, a0, s, t0))
        + abs(_signed_sum(A, z2, hi, a0, s, t0))
    )


@numba.njit(cache=True, inline="always")
def _same_region(infl, tl, th):
    """True when no inflection point lies strictly inside (tl, th)."""
    for i in range(infl.size):
        if tl < infl[i] < th:
            return False
    return True


@numba.njit(cache=True, inline="always")
def _runs_lb(A, RID, R, lo, hi, a0, s, t0):
    """sum over the convexity runs of lo..hi of |sum g/w|: an O(1)-per-run lower bound on
    sum |g|/w (triangle inequality), equal to it wherever g keeps one sign in each run."""
    lb = 0.0
    a = lo
    r = RID[lo]
    while a <= hi:
        e = min(hi, R[0, r])
        lb += abs(_signed_sum(A, a, e, a0, s, t0))
        a = e + 1
        r += 1
    return lb


@numba.njit(cache=True, inline="always")
def _runs_lb_safe(A, RID, R, lo, hi, a0, s, t0):
    """:func:`_runs_lb` less a bound on the float error of every sum of g/w over sub-ranges of
    lo..hi (|f|/w <= 1, |x|/w <= max(|x_lo|, |x_hi|)/w): never above the computed exact sum
    of :func:`_runs_abs_sum`, whose pieces are such sub-range sums."""
    xm = max(abs(A[X_, lo]), abs(A[X_, hi]))
    r1 = _rsum(A, 0, lo, hi)
    mag = (hi - lo + 1) + abs(a0) * r1 + abs(s) * (xm + abs(t0)) * r1
    return _runs_lb(A, RID, R, lo, hi, a0, s, t0) - LB_NOISE * mag


@numba.njit(cache=True, _nrt=False)
def _runs_abs_sum(A, RID, R, lo, hi, a0, s, t0, limit):
    """sum |g|/w over lo..hi for any line: O(1) lower bound per run, then O(log N) per run."""
    r0 = RID[lo]
    lb = _runs_lb(A, RID, R, lo, hi, a0, s, t0)
    if lb >= limit:
        return lb
    total = 0.0
    r = r0
    while lo <= hi:
        e = min(hi, R[0, r])
        total += _piece_abs_sum(A, lo, e, R[1, r], a0, s, t0)
        lo = e + 1
        r += 1
    return total


@numba.njit(cache=True, inline="always")
def _line_abs_sum(A, RID, R, infl, lo, hi, a0, s, t0, chord_lo, chord_hi, limit):
    """sum_{i=lo..hi} |f_i - a0 - s (x_i - t0)| / w_i (stops early: any value >= limit means
    'too big').

    If the line is the chord of f over [chord_lo, chord_hi] (pass chord_lo > chord_hi
    when it is not a chord) and that interval holds no inflection point, g has one
    sign and the sum is O(1); otherwise O(log N) per convexity run, after an O(1)
    lower bound (sum over runs of |sum g/w|, triangle inequality) has not reached limit.
    """
    if hi < lo:
        return 0.0
    if chord_lo <= chord_hi and _same_region(infl, chord_lo, chord_hi):
        return abs(_signed_sum(A, lo, hi, a0, s, t0))
    return _runs_abs_sum(A, RID, R, lo, hi, a0, s, t0, limit)


@numba.njit(cache=True, _nrt=False)
def _line_max(A, lo, hi, a0, s, t0, limit):
    """max_{i=lo..hi} |g_i|/w_i, stopping early once it reaches ``limit``."""
    m = 0.0
    for i in range(lo, hi + 1):
        v = abs(_g(A, i, a0, s, t0)) * A[IW_, i]
        if v > m:
            m = v
            if m >= limit:
                return m
    return m
