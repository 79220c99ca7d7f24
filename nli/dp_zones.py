"""Saturation zones: where the LUT holds one value, the ``mean`` + LUT-rounding costs add up.

A zone is a run of grid points ``za..zb`` where every real x in ``[x_za, x_zb]`` has the same
LUT value c = RNE(f(x)) (a tail where f has saturated to 0, 1 or -1 in the table's format)
and ``f - c`` keeps one sign sigma. A macro interval with both ends in a zone then has the
LUT value c at every bin edge, so P is the constant c on every bin, g = f - c keeps one sign,
and its raw cost is ``sum_{i=j..k} |f_i - c| / w_i = U(k) - U(j - 1)``, U the zone's prefix
sum of ``sigma (f - c) / w`` (bins partition j..k). Under ``mean`` (cost = raw / N) the best
zone predecessor of k in a forward layer is therefore ``argmin_j Dp[j] - U(j - 1) / N`` over
the zone's live j below k: a running minimum, O(1) per k. The pair-by-pair scan instead pays
a full segment cost for every such j: inside a zone nearly every pair ties the best value, so
no lower bound rules it out (gelu_tanh's 4th forward layer, k in its left tail: 2.2 CPU-s for
1,100 k, 0.1 s with zones; ad hoc). The backward layer mirrors it with a running minimum of
``Eb[k] + U(k) / N`` over the zone's live k above j.

The layer kernels evaluate the chosen pair with the very segment cost they use for every other
pair, so a layer's value is always a computed cost of a real pair. It is the pair-by-pair
minimum up to rounding: the running minimum compares exact-arithmetic values, and a computed
cost inside a zone carries the rounding of the sums that cancel in it (sum f/w and c sum 1/w,
nearly equal where f has saturated to c != 0), about 32 float64 ulps of ``(points + |c| sum
1/w) / N`` over the zone (tests/test_dp_zones.py).

Where c holds between grid points: f monotone over the zone (its grid values are) and every
grid value inside c's rounding interval by a relative ``ZONE_MARGIN``, far above the float64
error of f at an off-grid bin edge.
"""

from __future__ import annotations

from collections import namedtuple

import numba
import numpy as np

from .format_rounding import _rne_q
from .grid_sums import _signed_sum

ZONE_MIN = 64  # grid points: shorter runs are left to the pair-by-pair scan
ZONE_MARGIN = 1e-9  # relative: a zone's f values stay this far inside their rounding interval

Zones = namedtuple("Zones", "zid lo hi um1 u")
Zones.__doc__ = """zid int64[N]: the zone of each grid point (-1: none); lo / hi int64[N]: the
first / last index of its zone (the point itself outside zones); um1 / u float64[N]: U(i - 1)
and U(i) of the module doc (0 outside zones)."""


def no_zones(n: int) -> Zones:
    """Zones of a grid of n points that has none (every objective but mean + LUT rounding)."""
    idx = np.arange(n, dtype=np.int64)
    return Zones(np.full(n, -1, np.int64), idx, idx.copy(), np.zeros(n), np.zeros(n))


@numba.njit(cache=True)
def _rounded(f, fmt, scale):
    out = np.empty(f.size)
    for i in range(f.size):
        out[i] = _rne_q(f[i] * scale, fmt)
    return out


@numba.njit(cache=True)
def _runs(f, q, ok, zmin, out):
    """Zones as rows (za, zb) of out: maximal runs of ok points with one LUT value q, f
    monotone and f - q of one sign, at least zmin long. Returns how many."""
    n = f.size
    z = 0
    i = 0
    while i < n:
        if not ok[i]:
            i += 1
            continue
        e = i
        way = 0.0  # f's direction so far (0: flat)
        side = np.sign(f[i] - q[i])  # sign of f - c so far (0: f == c)
        while e + 1 < n and ok[e + 1] and q[e + 1] == q[i]:
            d = np.sign(f[e + 1] - f[e])
            s = np.sign(f[e + 1] - q[i])
            if (way != 0.0 and d != 0.0 and d != way) or (side != 0.0 and s != 0.0 and s != side):
                break
            way = d if way == 0.0 else way
            side = s if side == 0.0 else side
            e += 1
        if e - i + 1 >= zmin:
            out[z, 0], out[z, 1] = i, e
            z += 1
        i = e + 1
    return z


@numba.njit(cache=True)
def _zone_prefix(A, a, b, c, sigma, um1, u):
    """u[i] = sigma * sum_{a..i} (f - c) / w for i in a..b, from the grid's prefix sums; um1[i]
    = u[i - 1] (0 at a)."""
    prev = 0.0
    for i in range(a, b + 1):
        um1[i] = prev
        u[i] = sigma * _signed_sum(A, a, i, c, 0.0, 0.0)
        prev = u[i]


def saturation_zones(G) -> Zones:
    """The zones of grid G (:class:`nli.objective.GridArrays`; module doc)."""
    n, fmt, f = G.n, G.C[3], G.f
    q = _rounded(f, fmt, 1.0)
    ok = (
        np.isfinite(f)
        & np.isfinite(q)
        & (_rounded(f, fmt, 1.0 + ZONE_MARGIN) == q)
        & (_rounded(f, fmt, 1.0 - ZONE_MARGIN) == q)
    )
    rows = np.zeros((n // ZONE_MIN + 1, 2), dtype=np.int64)
    Z = no_zones(n)
    for z in range(_runs(f, q, ok, ZONE_MIN, rows)):
        a, b = int(rows[z, 0]), int(rows[z, 1])
        c = float(q[a])
        sigma = 1.0 if np.all(f[a : b + 1] >= c) else -1.0
        Z.zid[a : b + 1], Z.lo[a : b + 1], Z.hi[a : b + 1] = z, a, b
        _zone_prefix(G.A, a, b, c, sigma, Z.um1, Z.u)
    return Z


@numba.njit(cache=True)
def _zone_args_fwd(x, Dp, jl, kc, zid, lo, um1, sc, minw, out):
    """out[k] for k in kc (ascending) inside a zone: the live j (jl, ascending) of k's zone below
    k with x_k - x_j >= minw minimizing Dp[j] - sc U(j - 1), the nearest to k among equal
    values; -1 if none. Other entries of out are left as they are."""
    cur = np.int64(-2)
    p = np.int64(0)
    bm = np.inf
    bj = np.int64(-1)
    for q in range(kc.size):
        k = kc[q]
        z = zid[k]
        if z < 0:
            continue
        if z != cur:
            cur, bm, bj = z, np.inf, np.int64(-1)
            p = np.searchsorted(jl, lo[k])
        while p < jl.size and jl[p] < k and x[k] - x[jl[p]] >= minw:
            j = jl[p]
            m = Dp[j] - sc * um1[j]
            if m <= bm:
                bm, bj = m, j
            p += 1
        out[k] = bj
    return out


@numba.njit(cache=True)
def _zone_args_back(x, Eb, kl, jc, zid, hi, u, sc, minw, out):
    """out[j] for j in jc (ascending) inside a zone: the live k (kl, ascending) of j's zone above
    j with x_k - x_j >= minw minimizing Eb[k] + sc U(k), the nearest to j among equal values;
    -1 if none. Other entries of out are left as they are."""
    cur = np.int64(-2)
    p = np.int64(0)
    bm = np.inf
    bk = np.int64(-1)
    for q in range(jc.size - 1, -1, -1):
        j = jc[q]
        z = zid[j]
        if z < 0:
            continue
        if z != cur:
            cur, bm, bk = z, np.inf, np.int64(-1)
            p = np.searchsorted(kl, hi[j], side="right") - 1
        while p >= 0 and kl[p] > j and x[kl[p]] - x[j] >= minw:
            k = kl[p]
            m = Eb[k] + sc * u[k]
            if m <= bm:
                bm, bk = m, k
            p -= 1
        out[j] = bk
    return out


def zone_args(Z: Zones, x, D, live, idx, forward: bool, minw: float) -> np.ndarray:
    """int64[N]: for each index of idx inside a zone, its zone partner (a forward layer's best
    predecessor of k, a backward layer's best successor of j; -1 if none), else -1. D: the
    layer's input values (Dp or Eb), live: the indices with a value below the bound."""
    out = np.full(x.size, -1, dtype=np.int64)
    if np.all(Z.zid < 0):
        return out
    sc = 1.0 / x.size
    if forward:
        return _zone_args_fwd(x, D, live, idx, Z.zid, Z.lo, Z.um1, sc, minw, out)
    return _zone_args_back(x, D, live, idx, Z.zid, Z.hi, Z.u, sc, minw, out)


# numba cache stamp: 48ed9443121d7756 (nli/kernel_stamps.py)
