"""One layer of the cutpoint DP: ``out_D[k] = min_j Dp[j] (+ | max) cost(j, k, B)``.

Two kernels compute the same minimum over every pair (j, k):

* :func:`_layer`, the general one (any objective, any B, thinned candidates): per k it
  scans j downwards, skipping j when ``Dp[j]`` alone already reaches the best value
  found for k (costs are >= 0) and stopping a segment cost once its partial sum
  reaches what it would have to beat. Without LUT rounding it also skips j when
  ``Dp[j] + rb * scale(j, k)`` (minimax: ``rb``) reaches it, rb the rightmost-bin error
  of an already evaluated j0 > j (see :func:`_seg_cost_rb`: a lower bound on j's cost);
  under minimax that bound is the same for every such j, so they are all skipped at once.
  For B > 1 it first computes one bin of j alone, the bin holding the spot where the last
  fully evaluated pair had its largest bin error (:func:`nli.objective._bin_raw`, the
  very value the full sum adds for that bin, so a lower bound on it), and skips j when
  ``Dp[j]`` plus that already reaches the best value for k. On silu's paper layout most
  pairs fail on the bin around x = 0 wherever it falls, and this check replaces a right-to-
  left walk through the bins (and the O(log N) cost of bins across an inflection). With
  LUT rounding (sum objectives) that bin's O(1)-per-run lower bound
  (:func:`nli.objective._bin_lb`) stands in for its exact O(log N) sum; the segment cost
  then first sums every bin's such bound and stops there if it already reaches the limit
  (see :func:`nli.objective._seg_raw`).
* :func:`_layer_chord`, the fast path of the exact pass for single-bin macro intervals
  (B = 1) under the sum objectives (paper, mean) without LUT rounding. There P is the
  chord of f over [x_j, x_k]. For j whose chord spans no inflection point the cost is
  ``|sum g/w|`` (g has one sign), computed for a whole block of j at once in a loop
  the compiler vectorizes, with the very operations of :func:`nli.objective._seg_cost`
  (so the values are bit-identical). For j whose chord spans an inflection point the
  block loop computes a lower bound, the sum over convexity runs of ``|sum g/w|``
  (triangle inequality, each term O(1)), and the exact O(log N) cost is computed only
  for the j that the bound does not rule out (``Dp[j] + bound < best``). No j is
  skipped for any other reason, so the minimum is the same as the general kernel's.

Under ``mean`` with LUT rounding, :func:`_layer` takes the j that share k's saturation zone
(:mod:`nli.dp_zones`: a tail where the LUT holds one value, so costs add up) as one j, their
running minimum, and scans only the j below the zone.

Both run in parallel over k (``numba.prange`` over threads, each strided over k).
They inline :mod:`nli.objective`'s bin edges (f there: ``evaluate_scalar``, or grid values
for a user function) and the sums and roundings under them (:mod:`nli.grid_sums`,
:mod:`nli.format_rounding`); Numba's cache sees edits to this file only, so the stamp line at
the end (:mod:`nli.kernel_stamps`) changes with theirs.
"""

from __future__ import annotations

import numba
import numpy as np

from .grid_sums import F_, P_, X_, _rsum, _same_region, _two_sum
from .objective import QUANTIZED, _bin_lb, _bin_raw, _seg_cost, _seg_raw

CHUNK = 256  # j per block in the vectorized chord loops
RB_SLACK = 1e-9  # rightmost-bin bounds are used shrunk by this: float noise of the sums


@numba.njit(cache=True, _nrt=False)
def _seg_cost_rb(A, RID, R, infl, C, j, k, B, code, limit):
    """(cost, rb, mhot): :func:`nli.objective._seg_cost` (same value); mhot, the bin that
    contributed most among those visited; and rb, the raw error of the
    rightmost bin [t_{B-1}, x_k] when P there is f's chord over a bin with no inflection point
    (else 0). Then for every j' < j whose rightmost bin also spans no inflection point,
    rb <= raw cost(j', k): that bin holds a superset of the grid points, f is convex (or
    concave) on it, and a chord over a wider interval lies farther from f at every point.
    """
    obj = code & 3
    scale = 1.0 / (k - j + 1) if obj == 0 else (1.0 / C[2] if obj == 1 else 1.0)
    lim = limit / scale if limit < np.inf else np.inf
    raw, rb, mhot = _seg_raw(A, RID, R, infl, C, j, k, B, obj == 2, code >= QUANTIZED, lim)
    return raw * scale, rb, mhot


@numba.njit(cache=True, _nrt=False)
def _hot_bin_bound(A, RID, R, infl, C, j, k, B, obj, hotx, base, best, sc):
    """A lower bound on ``base (+ | max) cost(j, k, B)`` (cost = raw * sc) from one bin alone:
    the bin of (j, k) that holds hotx, where the last fully evaluated pair had its worst bin.
    With LUT rounding under the sum objectives its O(1)-per-run bound (:func:`_bin_lb`), else
    its exact value (:func:`_bin_raw`, the very value the full sum adds for that bin)."""
    mx = (obj & 3) == 2
    a = A[X_, j]
    m = min(max(np.int64(np.floor((hotx - a) / (A[X_, k] - a) * B)) + 1, 1), B)
    if obj >= QUANTIZED and not mx:
        hb = _bin_lb(A, RID, R, C, j, k, B, m, True)
    else:
        lim = best / sc if mx else (best - base) / sc
        hb = _bin_raw(A, RID, R, infl, C, j, k, B, m, mx, obj >= QUANTIZED, lim)
    return max(base, hb * sc) if mx else base + hb * (1.0 - RB_SLACK) * sc


@numba.njit(cache=True, _nrt=False)
def _rb_first_j(A, infl, k, B):
    """Smallest j <= k whose rightmost bin [t_{B-1}, x_k] spans no inflection point. t_{B-1}
    is computed as :func:`nli.objective._seg_raw` does; it falls strictly as j falls (grid
    steps exceed its rounding), so the test is monotone in j and a binary search finds it."""
    a, b = np.int64(0), k
    while a < b:
        mid = (a + b) // 2
        if _same_region(infl, A[0, mid] + ((B - 1) * (A[0, k] - A[0, mid])) / B, A[0, k]):
            b = mid
        else:
            a = mid + 1
    return a


@numba.njit(cache=True, parallel=True)
def _layer(A, RID, R, infl, C, Dp, B, obj, kc, jl, T, bound, cap, minw, zarg, zlo, out_D, out_arg):
    """One DP layer over candidate k (kc, ascending) and live j (jl: Dp[j] < bound, ascending).

    out_D[k] = min_j Dp[j] (+ | max) cost(j, k, B) if that is < min(bound, cap[k]), else inf;
    out_arg[k] = the argmin (-1 if none). out_D must arrive filled with inf. Only pairs
    with x_k - x_j >= minw are allowed (fp16 tables: RNE16(mul) must not overflow).
    ``cap[k]``: what a prefix ending at k must beat to be of use (the bound less the best
    suffix from k, when that is known: :mod:`nli.dp_layer_back`; else inf).
    Saturation zones (:mod:`nli.dp_zones`): for k in a zone, ``zarg[k]`` is the best live j of
    its zone below k (-1: none) and ``zlo[k]`` the zone's first index; that one j stands for
    all of them, and the scan covers j < zlo[k] (``zlo[k] = k`` outside zones).
    """
    mx = (obj & 3) == 2  # minimax
    use_rb = obj < QUANTIZED  # P made of chords of f (no LUT rounding): rightmost-bin bounds hold
    hot = B > 1
    for tt in numba.prange(T):
        t = np.int64(tt)  # prange indices may be unsigned; keep index arithmetic in int64
        hint = np.int64(-1)
        hotx = np.nan  # where the last fully evaluated pair of this thread had its worst bin
        for q in range(
            t, kc.size, T
        ):  # threads strided over k: balanced work, hint from a nearby k
            k = kc[q]
            best = min(bound, cap[k])
            arg = np.int64(-1)
            rb = 0.0  # a lower bound on the raw cost of the j still to come, if j >= jrb
            jrb = _rb_first_j(A, infl, k, B) if use_rb else k
            if 0 <= hint < k and Dp[hint] < best and A[0, k] - A[0, hint] >= minw:
                c = _seg_cost(A, RID, R, infl, C, hint, k, B, obj, best if mx else best - Dp[hint])
                v = max(Dp[hint], c) if mx else Dp[hint] + c
                if v < best:
                    best = v
                    arg = hint
            zj = zarg[k]
            if zj >= 0 and Dp[zj] < best:
                c = _seg_cost(A, RID, R, infl, C, zj, k, B, obj, best if mx else best - Dp[zj])
                v = max(Dp[zj], c) if mx else Dp[zj] + c
                if v < best:
                    best = v
                    arg = zj
            p = np.searchsorted(jl, zlo[k]) - 1
            while p >= 0:
                j = jl[p]
                p -= 1
                dj = Dp[j]
                if (
                    dj >= best or A[0, k] - A[0, j] < minw
                ):  # costs are >= 0: j cannot win (exact cut)
                    continue
                sc = (
                    1.0 if mx else (1.0 / (k - j + 1) if obj & 3 == 0 else 1.0 / C[2])
                )  # cost = raw * sc
                if rb > 0.0 and j >= jrb:
                    lbv = rb * (1.0 - RB_SLACK) * sc
                    if (
                        mx and lbv >= best
                    ):  # the bound holds for every j in jrb..j alike: skip them all
                        p = np.searchsorted(jl, jrb) - 1
                        continue
                    if not mx and dj + lbv >= best:
                        continue
                if (
                    hot
                    and hotx == hotx
                    and _hot_bin_bound(A, RID, R, infl, C, j, k, B, obj, hotx, dj, best, sc) >= best
                ):
                    continue
                c, r, mh = _seg_cost_rb(A, RID, R, infl, C, j, k, B, obj, best if mx else best - dj)
                if hot:
                    a = A[X_, j]
                    hotx = a + ((mh - 0.5) * (A[X_, k] - a)) / B
                if use_rb and r > rb:
                    rb = r
                v = max(dj, c) if mx else dj + c
                if v < best:
                    best = v
                    arg = j
            if arg >= 0:
                out_D[k] = best
                out_arg[k] = arg
                hint = arg
    return out_D


@numba.njit(cache=True, _nrt=False, error_model="numpy")
def _chord_block(A, Dp, j0, m, k, hi, inv_n, out, slope):
    """For j = j0 .. j0+m-1: out[u] = Dp[j] + |sum_{i=j..hi} (f_i - chord_jk(x_i)) / w_i| * scale,
    slope[u] = the chord's slope; scale = inv_n if inv_n > 0 (mean) else 1 / (k - j + 1) (paper).

    With hi = k and a chord spanning no inflection point this is Dp[j] + cost(j, k, 1),
    computed exactly as :func:`nli.objective._seg_cost` does. Branch-free: vectorizes.
    """
    x = A[X_]
    f = A[F_]
    p1h, p1l, pfh, pfl, pxh, pxl = A[P_], A[P_ + 1], A[P_ + 2], A[P_ + 3], A[P_ + 4], A[P_ + 5]
    xk, fk = x[k], f[k]
    h1, l1, hf, lf, hx, lx = (
        p1h[hi + 1],
        p1l[hi + 1],
        pfh[hi + 1],
        pfl[hi + 1],
        pxh[hi + 1],
        pxl[hi + 1],
    )
    for u in range(m):
        j = j0 + u
        uj = np.uint64(j)  # unsigned indices: no negative-index wraparound, so the loop vectorizes
        uu = np.uint64(u)
        s1, e1 = _two_sum(h1, -p1h[uj])
        r1 = s1 + (e1 + (l1 - p1l[uj]))
        sf, ef = _two_sum(hf, -pfh[uj])
        rf = sf + (ef + (lf - pfl[uj]))
        sx, ex = _two_sum(hx, -pxh[uj])
        rx = sx + (ex + (lx - pxl[uj]))
        a0 = f[uj]
        t0 = x[uj]
        s = (fk - a0) / (xk - t0)
        raw = abs((rf - a0 * r1) - s * (rx - t0 * r1))
        sc = inv_n if inv_n > 0.0 else 1.0 / (k - j + 1)
        out[uu] = Dp[uj] + raw * sc
        slope[uu] = s


@numba.njit(cache=True, _nrt=False, error_model="numpy")
def _add_piece(A, j0, m, lo, hi, k, inv_n, out, slope):
    """out[u] += |sum_{i=lo..hi} (f_i - chord_jk(x_i)) / w_i| * scale for j = j0 + u, a fixed range
    lo..hi (slope[u] from :func:`_chord_block`; scale as there). Same sums as ``_signed_sum``."""
    x = A[X_]
    f = A[F_]
    r1 = _rsum(A, 0, lo, hi)
    rf = _rsum(A, 1, lo, hi)
    rx = _rsum(A, 2, lo, hi)
    for u in range(m):
        j = j0 + u
        uj = np.uint64(j)
        uu = np.uint64(u)
        sc = inv_n if inv_n > 0.0 else 1.0 / (k - j + 1)
        out[uu] += abs((rf - f[uj] * r1) - slope[uu] * (rx - x[uj] * r1)) * sc


@numba.njit(cache=True, _nrt=False)
def _first_j(A, k, infl, minw):
    """(jlo, jmax) for candidate k: the chord of j spans no inflection point iff j >= jlo
    (x_j >= the largest inflection point below x_k); x_k - x_j >= minw iff j <= jmax."""
    xk = A[X_, k]
    pstar = -np.inf
    for i in range(infl.size):
        if pstar < infl[i] < xk:
            pstar = infl[i]
    a, b = np.int64(0), k
    while a < b:  # first j with x_j >= pstar
        mid = (a + b) // 2
        if A[X_, mid] >= pstar:
            b = mid
        else:
            a = mid + 1
    jlo = a
    a, b = np.int64(0), k
    while a < b:  # first j with x_k - x_j < minw
        mid = (a + b) // 2
        if xk - A[X_, mid] >= minw:
            a = mid + 1
        else:
            b = mid
    return jlo, a - 1


@numba.njit(cache=True, parallel=True)
def _layer_chord(A, RID, R, infl, C, Dp, bmin, obj, kc, T, bound, cap, minw, out_D, out_arg):
    """:func:`_layer` for B = 1, obj paper (0) or mean (1), every grid point a j candidate
    (Dp[j] = inf where j is not allowed); bmin[c] = min(Dp[c CHUNK : (c+1) CHUNK]) lets a
    whole block be skipped when its smallest Dp already reaches the best value for k
    (costs are >= 0). Same out_D / out_arg contract."""
    inv_n = 1.0 / C[2] if obj == 1 else 0.0
    for tt in numba.prange(T):
        t = np.int64(tt)  # prange indices may be unsigned; keep index arithmetic in int64
        buf = np.empty(CHUNK)
        slope = np.empty(CHUNK)
        hint = np.int64(-1)
        for q in range(t, kc.size, T):
            k = kc[q]
            best = min(bound, cap[k])
            arg = np.int64(-1)
            jlo, jmax = _first_j(A, k, infl, minw)
            if 0 <= hint <= jmax and Dp[hint] < best:  # a good start: last k's argmin
                v = Dp[hint] + _seg_cost(A, RID, R, infl, C, hint, k, 1, obj, np.inf)
                if v < best:
                    best = v
                    arg = hint
            # chords inside one convexity region (j >= jlo): exact cost, block by block,
            # nearest first
            for c in range(jmax // CHUNK, jlo // CHUNK - 1, -1):
                if jmax < jlo or bmin[c] >= best:
                    continue
                j0 = max(c * CHUNK, jlo)
                m = min(c * CHUNK + CHUNK - 1, jmax) - j0 + 1
                _chord_block(A, Dp, j0, m, k, k, inv_n, buf, slope)
                for u in range(m):
                    if buf[u] < best:
                        best = buf[u]
                        arg = j0 + u
            # chords across an inflection point (j < jlo): a lower bound per j (one |sum g/w| per
            # convexity run), the exact cost only where the bound may still win
            jc = min(jlo - 1, jmax)
            for c in range(jc // CHUNK, -1, -1):
                if jc < 0 or bmin[c] >= best:
                    continue
                j0 = c * CHUNK
                jend = min(c * CHUNK + CHUNK - 1, jc)
                while j0 <= jend:
                    r = RID[j0]
                    j1 = min(R[0, r], jend)
                    m = j1 - j0 + 1
                    _chord_block(A, Dp, j0, m, k, R[0, r], inv_n, buf, slope)
                    for rr in range(r + 1, RID[k]):
                        _add_piece(A, j0, m, R[0, rr - 1] + 1, R[0, rr], k, inv_n, buf, slope)
                    _add_piece(A, j0, m, R[0, RID[k] - 1] + 1, k, k, inv_n, buf, slope)
                    for u in range(m):
                        if buf[u] < best:
                            j = j0 + u
                            v = Dp[j] + _seg_cost(A, RID, R, infl, C, j, k, 1, obj, np.inf)
                            if v < best:
                                best = v
                                arg = j
                    j0 = j1 + 1
            if arg >= 0:
                out_D[k] = best
                out_arg[k] = arg
                hint = arg
    return out_D


def block_min(D: np.ndarray) -> np.ndarray:
    """float64[ceil(N / CHUNK)]: the minimum of D over each block of CHUNK indices."""
    pad = np.full(-(-D.size // CHUNK) * CHUNK, np.inf)
    pad[: D.size] = D
    return pad.reshape(-1, CHUNK).min(axis=1)  # (N',) -> (blocks, CHUNK)


# numba cache stamp: dee4aed01154eb3a (nli/kernel_stamps.py)
