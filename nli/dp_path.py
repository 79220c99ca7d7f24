"""The optimal cutpoints the DP reports: one canonical path among equal-cost optima.

A DP layer's minimum values are a function of the problem alone, but which argmin a layer
kernel keeps is not: among equal values it keeps the first it finds, and the order it visits
pairs in depends on the thread count (threads are strided over k, each starting from the
argmin of its previous k) and on what its bounds let it skip. Ties are common under the
minimax objective (once one segment sets the maximum, many cutpoints reach it) and in flat
regions of the sum objectives, so the same solve on 1 and 2 threads returned different
cutpoints of equal cost (gelu, bf16, ``max``: one cutpoint 32 BF16 steps apart).

Here the path is rebuilt from the layers' value arrays with a rule that depends on those
values only: from the meeting cutpoint (the smallest index of the least total), each
prefix step takes the NEAREST predecessor j < k whose value reproduces the layer's minimum
to the bit, ``Dp[j] (+ | max) cost(j, k, B) == D[k]``, and each suffix step the nearest
successor. The cost is the very function the layer kernels call (same operations, so the
same bits), skipped early only once it exceeds what a tie needs by far more than rounding.
The kernel's own argmin is a tie, so the scan stops there at the latest; if no value matched
(it never has in the tests), the kernel's argmin is kept.
"""

from __future__ import annotations

import numba
import numpy as np

from .grid_sums import X_
from .objective import _seg_cost

TIE_SLACK = 1e-6  # a cost is cut short only past (1 + this) x what a tie allows


@numba.njit(cache=True)
def _tie(A, RID, R, infl, C, j, k, B, obj, target, d):
    """Whether ``d (+ | max) cost(j, k, B)`` equals ``target`` to the bit (d: the neighbour's
    value, Dp[j] forward or Eb[k] backward; the sum is d + c, as in the layer kernels)."""
    mx = (obj & 3) == 2
    if d > target:
        return False
    lim = target * (1.0 + TIE_SLACK) if mx else target * (1.0 + TIE_SLACK) - d
    c = _seg_cost(A, RID, R, infl, C, j, k, B, obj, lim if target > 0.0 else np.inf)
    return (max(d, c) if mx else d + c) == target


@numba.njit(cache=True)
def _nearest_pred(A, RID, R, infl, C, Dp, live, k, B, obj, minw, target, stop):
    """The largest j in ``live`` (ascending), stop <= j < k, x_k - x_j >= minw, whose
    ``Dp[j] (+ | max) cost(j, k, B)`` is ``target``; -1 if none."""
    p = np.searchsorted(live, k) - 1
    while p >= 0 and live[p] >= stop:
        j = live[p]
        p -= 1
        if A[X_, k] - A[X_, j] >= minw and _tie(A, RID, R, infl, C, j, k, B, obj, target, Dp[j]):
            return j
    return np.int64(-1)


@numba.njit(cache=True)
def _nearest_succ(A, RID, R, infl, C, Eb, live, j, B, obj, minw, target, stop):
    """The smallest k in ``live`` (ascending), j < k <= stop, x_k - x_j >= minw, whose
    ``cost(j, k, B) (+ | max) Eb[k]`` is ``target``; -1 if none."""
    p = np.searchsorted(live, j, side="right")
    while p < live.size and live[p] <= stop:
        k = live[p]
        p += 1
        if A[X_, k] - A[X_, j] >= minw and _tie(A, RID, R, infl, C, j, k, B, obj, target, Eb[k]):
            return k
    return np.int64(-1)


def canonical_path(G, bins, obj, cand, bound, minw, Dfh, Ebh, fargs, bargs, m, total):
    """int64[K+1] grid indices of the canonical optimum (module doc). ``Dfh[l]``: prefix values
    after l forward layers (l <= m); ``Ebh[l]``: suffix values from cutpoint l (l >= m);
    ``fargs`` / ``bargs``: the kernels' argmins; m: the cutpoint where the two meet;
    ``total``: Dfh[m] (+ | max) Ebh[m]."""
    K = len(bins)
    k = int(np.argmin(total))
    idx = [k]
    for layer in range(m - 1, -1, -1):  # prefix, right to left
        prev = Dfh[layer]
        live = cand[prev[cand] < bound]
        stop = int(fargs[layer, idx[-1]])
        j = _nearest_pred(
            G.A, G.I, G.R, G.infl, G.C, prev, live, idx[-1], int(bins[layer]), obj,
            float(minw[layer]), float(Dfh[layer + 1][idx[-1]]), stop,
        )  # fmt: skip
        idx.append(int(j) if j >= 0 else stop)
    idx = idx[::-1]
    for layer in range(m, K):  # suffix, left to right
        nxt = Ebh[layer + 1]
        live = cand[nxt[cand] < bound]
        stop = int(bargs[layer, idx[-1]])
        k = _nearest_succ(
            G.A, G.I, G.R, G.infl, G.C, nxt, live, idx[-1], int(bins[layer]), obj,
            float(minw[layer]), float(Ebh[layer][idx[-1]]), stop,
        )  # fmt: skip
        idx.append(int(k) if k >= 0 else stop)
    return np.array(idx, dtype=np.int64)


# numba cache stamp: dee4aed01154eb3a (nli/kernel_stamps.py)
