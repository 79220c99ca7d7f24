"""One backward layer of the cutpoint DP: ``out_E[j] = min_k cost(j, k, B) (+ | max) Eb[k]``.

The mirror of :func:`nli.dp_layer._layer`. ``Eb[k]`` is the best cost of a suffix whose
first cutpoint is grid point ``x_k`` (the right clamp, then segments to its left); the
layer puts one more macro interval of B bins in front of it. The segment cost is the very
function the forward layer calls (:func:`nli.dp_layer._seg_cost_rb`, cost(j, k) with
j < k), so a suffix cost is the same sum of the same terms as a prefix cost, in another
order. The solver meets the two directions in the middle (see :mod:`nli.solver`).

Per j it scans k upwards from the last j's argmin, nearest first, and skips k:

* when ``Eb[k]`` alone already reaches the best value found for j (costs are >= 0);
* for B > 1, when ``Eb[k]`` plus the error of one bin of (j, k) alone, the bin holding the
  spot where the last fully evaluated pair had its largest bin error, already reaches it
  (with LUT rounding under the sum objectives, that bin's O(1) lower bound
  :func:`nli.objective._bin_lb`; else its exact value :func:`nli.objective._bin_raw`, the
  value the full sum adds for that bin);

and stops a segment cost once its partial sum reaches what it would have to beat. All
three cuts are exact. The forward layer's rightmost-bin bound has no mirror here (it holds
for a fixed right end only), so backward layers of the chord objectives prune less.

Runs in parallel over j (``numba.prange``, threads strided over j). It inlines
:mod:`nli.objective`; the stamp line at the end (:mod:`nli.kernel_stamps`) keeps Numba's cache
fresh when that changes.
"""

from __future__ import annotations

import numba
import numpy as np

from .dp_layer import _hot_bin_bound, _seg_cost_rb
from .grid_sums import X_


@numba.njit(cache=True, inline="always")
def _try_k(A, RID, R, infl, C, Eb, j, k, B, obj, best, arg):
    """(best, arg) once successor k of j (the last j's argmin, or j's zone partner) is tried."""
    mx = (obj & 3) == 2
    c, _, _ = _seg_cost_rb(A, RID, R, infl, C, j, k, B, obj, best if mx else best - Eb[k])
    v = max(Eb[k], c) if mx else Eb[k] + c
    return (v, k) if v < best else (best, arg)


@numba.njit(cache=True, parallel=True)
def _layer_back(
    A, RID, R, infl, C, Eb, B, obj, jc, kl, T, bound, cap, minw, zarg, zhi, out_E, out_arg
):
    """One backward layer over candidate j (jc, ascending) and live k (kl: Eb[k] < bound,
    ascending).

    out_E[j] = min_k cost(j, k, B) (+ | max) Eb[k] if that is < min(bound, cap[j]), else inf;
    out_arg[j] = the argmin (-1 if none). out_E must arrive filled with inf. Only pairs with
    x_k - x_j >= minw are allowed. ``cap[j]``: what a suffix from j must beat to be of use
    (the bound less the best prefix ending at j, when that is known; else inf). Saturation
    zones (:mod:`nli.dp_zones`): for j in a zone, ``zarg[j]`` is the best live k of its zone
    above j (-1: none) and ``zhi[j]`` the zone's last index; that one k stands for all of them,
    and the scan covers k > zhi[j] (``zhi[j] = j`` outside zones).
    """
    mx = (obj & 3) == 2  # minimax
    hot = B > 1
    for tt in numba.prange(T):
        t = np.int64(tt)  # prange indices may be unsigned; keep index arithmetic in int64
        hint = np.int64(-1)
        hotx = np.nan  # where the last fully evaluated pair of this thread had its worst bin
        for q in range(t, jc.size, T):  # threads strided over j: balanced work
            j = jc[q]
            best = min(bound, cap[j])
            arg = np.int64(-1)
            if hint > j and Eb[hint] < best and A[X_, hint] - A[X_, j] >= minw:
                best, arg = _try_k(A, RID, R, infl, C, Eb, j, hint, B, obj, best, arg)
            zk = zarg[j]
            if zk >= 0 and Eb[zk] < best:
                best, arg = _try_k(A, RID, R, infl, C, Eb, j, zk, B, obj, best, arg)
            p = np.searchsorted(kl, zhi[j], side="right")
            while p < kl.size:
                k = kl[p]
                p += 1
                ek = Eb[k]
                if ek >= best or A[X_, k] - A[X_, j] < minw:  # costs are >= 0: k cannot win
                    continue
                sc = 1.0 if mx else (1.0 / (k - j + 1) if obj & 3 == 0 else 1.0 / C[2])
                if (
                    hot
                    and hotx == hotx
                    and _hot_bin_bound(A, RID, R, infl, C, j, k, B, obj, hotx, ek, best, sc) >= best
                ):
                    continue
                c, _, mh = _seg_cost_rb(A, RID, R, infl, C, j, k, B, obj, best if mx else best - ek)
                if hot:
                    a = A[X_, j]
                    hotx = a + ((mh - 0.5) * (A[X_, k] - a)) / B
                v = max(ek, c) if mx else ek + c
                if v < best:
                    best = v
                    arg = k
            if arg >= 0:
                out_E[j] = best
                out_arg[j] = arg
                hint = arg
    return out_E


# numba cache stamp: ca03a993badbd657 (nli/kernel_stamps.py)
