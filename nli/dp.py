"""The cutpoint DP over a set of candidate grid points, from both ends at once.

``Df[k]`` is the best cost of a prefix (left clamp, then macro intervals) whose last
cutpoint is ``x_k``; ``Eb[k]`` the best cost of a suffix (macro intervals, then the right
clamp) whose first cutpoint is ``x_k``. Forward layers (:mod:`nli.dp_layer`) advance
``Df`` one cutpoint to the right, backward layers (:mod:`nli.dp_layer_back`) advance ``Eb``
one cutpoint to the left, each over the very segment costs of :mod:`nli.objective`.
The optimum is ``min_k Df[k] (+ | max) Eb[k]`` once both stand at the same cutpoint.

Why both ends: a forward-only DP's late layers are its most expensive (silu mean + LUT
rounding on [-16, -0.25], 6,145 points, 1 thread: the last three 32-bin layers took 41 of
the exact pass's 60 CPU-seconds), because by then almost every grid point has a prefix
below the bound and so is a live k. Meeting in the middle computes the last layer only for
k with a suffix below the bound, and asks each prefix to beat ``bound - Eb[k]``. Measured on
the full default domain, 2 threads: silu mean + LUT rounding 842 s (forward only: stopped
unfinished at 1,500 s on a loaded machine, 6 of 10 layers done). Without LUT rounding the
forward layers have bounds that the backward ones lack, and silu's paper objective took 408 s
from both ends against 349 s forward only, so there only the last layer meets the right clamp.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from .dp_layer import _layer, _layer_chord, block_min
from .dp_layer_back import _layer_back
from .dp_path import canonical_path
from .dp_zones import no_zones, saturation_zones, zone_args
from .objective import QUANTIZED, GridArrays, _seg_cost, objective_code

PROGRESS_STEPS = 32  # progress reports (and checkpoint chances) per DP layer of the exact pass


def _path_cost(G: GridArrays, idx: np.ndarray, bins, obj: int, clamps) -> float:
    """The objective of cutpoints ``idx`` summed in the forward DP's order (left clamp, the
    segments left to right, right clamp): the value a forward-only DP reports for them."""
    L, R = clamps
    mx = obj & 3 == 2
    v = float(L[idx[0]])
    for a, b, B in zip(idx[:-1], idx[1:], bins):
        c = _seg_cost(G.A, G.I, G.R, G.infl, G.C, int(a), int(b), int(B), obj, np.inf)
        v = max(v, c) if mx else v + c
    return max(v, float(R[idx[-1]])) if mx else v + float(R[idx[-1]])


def _dp(
    G: GridArrays,
    bins,
    obj: int,
    cand: np.ndarray,
    bound: float,
    clamps,
    minw,
    progress,
    dense: bool = False,
    resume: dict | None = None,
    save=None,
):
    """The DP over candidate cutpoints ``cand``; partial costs >= bound are dropped (exact if the
    optimum is < bound). Returns (cost, cut_idx int64[K+1]) or (inf, None). ``dense``: cand is
    every grid point with a finite f, so single-bin forward layers of the sum objectives may use
    the block kernel :func:`nli.dp_layer._layer_chord` (same minimum, see there).

    With LUT rounding, bidirectional: prefix costs ``Df`` (cutpoint a, from the left clamp) and
    suffix costs ``Eb`` (cutpoint b, from the right clamp) each advance one layer at a time, the
    side with fewer live entries first (a layer costs about live-in x live-out pairs, and fronts
    grow as they advance), until they meet: the last forward layer is then computed only for k
    with a finite ``Eb[k]``, and must beat ``bound - Eb[k]`` there (minimax: ``bound``), which
    rules out most of the pairs that make a forward-only DP's last layers its most expensive
    ones. The answer is ``min_k Df[k] (+ | max) Eb[k]``; its cost is then summed in forward
    order (:func:`_path_cost`), so ties aside the result is the forward DP's, to the bit.
    Without LUT rounding every layer but the last is forward; the last still meets ``Eb`` =
    the right clamp.

    Resumable: ``save(state)`` (if given) is called after every chunk of a layer and, with
    ``layer_end=True``, after every layer, with the arrays a later call takes back as
    ``resume`` (Dfh, Ebh: every layer's values so far; fargs, bargs; the counters a, b, done,
    and the layer in progress as its chunk index and partial output). Each output index of a
    layer is computed on its own, and among equal-cost optima the one returned is chosen from
    the layers' values alone (:mod:`nli.dp_path`), so the cutpoints do not depend on the thread
    count, and a resumed solve returns those of an uninterrupted one.
    """
    n, K = G.n, len(bins)
    L, R = clamps
    mx = obj & 3 == 2
    Dfh, Ebh = np.full((K + 1, n), np.inf), np.full((K + 1, n), np.inf)
    Dfh[0, cand] = np.where(L[cand] < bound, L[cand], np.inf)
    Ebh[K, cand] = np.where(R[cand] < bound, R[cand], np.inf)
    fargs = np.full((K, n), -1, dtype=np.int64)
    bargs = np.full((K, n), -1, dtype=np.int64)
    a, b, done, chunk0, partial = 0, K, 0, 0, None
    if resume is not None:
        Dfh, Ebh, fargs, bargs = (np.array(resume[k]) for k in ("Dfh", "Ebh", "fargs", "bargs"))
        a, b, done, chunk0 = (int(resume[k]) for k in ("a", "b", "done", "chunk"))
        partial = np.array(resume["out"]) if chunk0 else None
    T = numba.get_num_threads()
    no_cap = np.full(n, np.inf)
    # backward layers only with LUT rounding (see the module docstring for why)
    both_ends = obj >= QUANTIZED
    chunked = progress is not None or save is not None
    # mean + LUT rounding: pairs inside a saturation zone go by a running minimum (dp_zones)
    Z = saturation_zones(G) if obj == objective_code("mean", True) else no_zones(n)

    def state(chunk, out):
        s = {"Dfh": Dfh, "Ebh": Ebh, "fargs": fargs, "bargs": bargs, "a": a, "b": b, "done": done}
        return {**s, "chunk": chunk, "out": out if chunk else np.empty(0)}

    if progress is not None:
        progress(done, K)
    while True:
        Df, Eb = Dfh[a], Ebh[b]
        meet = b - a == 1
        forward = (
            meet or not both_ends or np.count_nonzero(Df < bound) <= np.count_nonzero(Eb < bound)
        )
        layer = a if forward else b - 1
        B = int(bins[layer])
        if forward and meet:
            cap = np.full(n, -np.inf)  # k with no suffix below the bound: never of use
            useful = Eb < bound
            cap[useful] = bound if mx else bound - Eb[useful]
            kc = cand[Eb[cand] < bound]
        else:
            cap, kc = no_cap, cand
        out = np.full(n, np.inf) if partial is None else partial
        first, partial, chunk0 = chunk0, None, 0
        if forward and dense and B == 1 and obj in (0, 1):
            _layer_chord(
                G.A, G.I, G.R, G.infl, G.C, Df, block_min(Df), obj, kc, T, bound, cap,
                float(minw[layer]), out, fargs[layer],
            )  # fmt: skip
        else:  # in chunks when reporting progress (each output index is independent)
            src = Df if forward else Eb
            live = cand[src[cand] < bound]
            zarg = zone_args(Z, G.x, src, live, kc, forward, float(minw[layer]))
            parts = np.array_split(kc, PROGRESS_STEPS) if chunked else [kc]
            for c, part in enumerate(parts):
                if c < first:  # done before the solve was interrupted
                    continue
                if part.size and live.size:
                    if forward:
                        _layer(
                            G.A, G.I, G.R, G.infl, G.C, Df, B, obj, part, live, T, bound, cap,
                            float(minw[layer]), zarg, Z.lo, out, fargs[layer],
                        )  # fmt: skip
                    else:
                        _layer_back(
                            G.A, G.I, G.R, G.infl, G.C, Eb, B, obj, part, live, T, bound, cap,
                            float(minw[layer]), zarg, Z.hi, out, bargs[layer],
                        )  # fmt: skip
                if c + 1 < len(parts):
                    if progress is not None:
                        progress(done + (c + 1) / len(parts), K)
                    if save is not None:
                        save(state(c + 1, out))
        done += 1
        if progress is not None:
            progress(done, K)
        if forward:
            Dfh[a + 1] = out
            a += 1
        else:
            Ebh[b - 1] = out
            b -= 1
        if meet:
            break
        if save is not None:
            save(state(0, None), layer_end=True)
    total = np.maximum(Dfh[b], Ebh[b]) if mx else Dfh[b] + Ebh[b]
    if not float(total.min()) < bound:
        return math.inf, None
    idx = canonical_path(G, bins, obj, cand, bound, minw, Dfh, Ebh, fargs, bargs, b, total)
    return _path_cost(G, idx, bins, obj, clamps), idx
