"""Segment and clamp costs of the cutpoint objectives, in O(1) / O(log N) per segment.

A macro interval ``[x_j, x_k]`` with ``B`` bins is approximated by the ideal
interpolant P: straight lines between the real points ``t_m = x_j + m (x_k - x_j) / B``
carrying exact (float64) values of f. Its error at grid point i is
``g_i / w_i`` with ``g = f - line`` and ``w = max(|f|, 2^-14)``. A bin's sum of ``|g_i| / w_i``
comes from :mod:`nli.grid_sums`: O(1) from prefix sums where P is a chord of f inside one
convexity region, else O(log N) per convexity run.

The grid is the FP16 grid of a domain, or its BF16 grid for a bf16 table (numerics §13): then
``w = max(|f|, 2^-126)`` (the format's smallest normal, ``W_FLOORS``), LUT rounding is RNE_bf16
and grid indices come from BF16 ordinals (``C[3]``, the format code, selects; see
:mod:`nli.format_rounding`). Where 1/w spans a huge range (a bf16 domain reaching f's
underflow) the sum objectives lose accuracy on the ranges after those points (the prefix sums'
106 bits, :mod:`nli.grid_sums`); ``max`` reads every term directly and does not.

Objectives (codes used by the kernels): 0 ``paper`` (sum of per-segment means),
1 ``mean`` (one mean over the whole grid), 2 ``max`` (minimax). Adding QUANTIZED (4)
to a code makes P carry RNE16(f) at its points and the clamps RNE16(f(c)): the LUT the
table will really hold (then no line is a chord of f, and every bin takes the
O(log N) path).

The kernels here inline those of :mod:`nli.grid_sums` and :mod:`nli.format_rounding`; Numba's
cache sees edits to this file only, so the stamp line at the end (:mod:`nli.kernel_stamps`)
changes with theirs (as nli/dp_layer.py's, which inlines all three, does).
"""

from __future__ import annotations

from collections import namedtuple

import numba
import numpy as np

from .format_rounding import _ceil_index, _rne_q
from .formats import DTYPE_FORMATS, DTYPES
from .functions import Function, evaluate_scalar
from .grid import f64_to_bits
from .grid_sums import (
    DD_,
    F_,
    IW_,
    P_,
    X_,
    _line_abs_sum,
    _line_max,
    _prefix_dd,
    _runs_lb_safe,
    _same_region,
)
from .user_function import detect_inflections

OBJECTIVES = ("paper", "mean", "max")
DATAPATH_OBJECTIVES = ("ulp", "cr", "cr+maxulp")
"""Objectives measured through the bit-accurate fp32 datapath (hw_sim.datapath_cost; solved by
hw_sim.datapath_solve, since nli cannot import the simulator)."""
QUANTIZED = 4
# a lower bound rules a segment out only once, shrunk by this, it reaches the limit: the
# float noise of the prefix sums (relative) must not let it pass the exact sum it bounds
LB_SLACK = 1e-9
W_FLOOR = 2.0**-14
W_FLOORS = {d: DTYPE_FORMATS[d].min_normal for d in DTYPES}  # fp16: W_FLOOR; bf16: 2^-126
FMT_CODES = {"fp16": 0, "bf16": 1}  # C[3]: the grid's format inside the kernels

GridArrays = namedtuple(
    "GridArrays",
    "x f iw P dd run_id run_lo run_hi run_sign infl ord0 fn_id n A I R C",
)
GridArrays.__doc__ = """Everything the cost kernels read about one function on one grid.

x, f, iw: float64[N] grid values, f(x), 1/w; P: float64[3, 2, N+1] double-double
prefix sums (hi, lo) of 1/w, f/w, x/w; dd: float64[N-1] divided differences;
run_id: int64[N]; run_lo, run_hi, run_sign: int64[R] convexity runs (sign +1
convex, -1 concave); infl: float64[*] inflection points inside the domain;
ord0: FP16 (or BF16) ordinal of x[0]; fn_id: function id; n: N; A, I, R, C: the same packed
for the kernels: A float64[10, N+1] (rows: :mod:`nli.grid_sums`), I = run_id, R int64[2, runs]
(run end index, run sign), C (ord0, fn_id, n, fmt) with fmt a FMT_CODES value."""


# ----------------------------------------------------------------------------- segment cost
@numba.njit(cache=True, inline="always")
def _grid_lerp(A, i, t):
    """f(t) for a user function (no Numba reference): its grid value if t = x_i, else linear
    between grid points i - 1 and i (x_{i-1} < t < x_i); at most h^2 |f''| / 8 off, h the
    FP16 spacing."""
    x1 = A[X_, i]
    if x1 == t:
        return A[F_, i]
    x0, f0 = A[X_, i - 1], A[F_, i - 1]
    return f0 + (A[F_, i] - f0) * ((t - x0) / (x1 - x0))


@numba.njit(cache=True, inline="always")
def _bin_edge(A, C, j, k, B, m, quant):
    """(t_m, F_m, i_m) of macro interval [x_j, x_k] with B bins: edge m (0..B),
    ``t_m = x_j + (m d) / B`` with d = x_k - x_j (t_0 = x_j and t_B = x_k exactly), P's value
    there (f(t_m), RNE16 if quant), and the first grid index of bin m + 1: max(j, ceil(t_m))
    (i_0 = j, i_B = k + 1).
    Bin m (1..B) holds grid points i_{m-1} .. i_m - 1."""
    if m == 0:
        t, F, i = A[X_, j], A[F_, j], j
    elif m == B:
        t, F, i = A[X_, k], A[F_, k], k + 1
    else:
        ord0, fn_id, n, fmt = C
        a = A[X_, j]
        t = a + (m * (A[X_, k] - a)) / B
        i = max(_ceil_index(ord0, n, t, fmt), j)
        F = evaluate_scalar(fn_id, t) if fn_id >= 0 else _grid_lerp(A, i, t)
    return t, (_rne_q(F, C[3]) if quant else F), i


@numba.njit(cache=True, inline="always")
def _bin_err(A, RID, R, infl, lo, hi, tp, Fp, t, F, use_max, quant, limit_raw):
    """Raw error (sum, or max if use_max) over grid points lo..hi of P's line from (tp, Fp) to
    (t, F); with quant False that line is f's chord (O(1) when no inflection lies between)."""
    s = (F - Fp) / (t - tp)
    if use_max:
        return _line_max(A, lo, hi, Fp, s, tp, limit_raw)
    return _line_abs_sum(
        A, RID, R, infl, lo, hi, Fp, s, tp, 1.0 if quant else tp, 0.0 if quant else t, limit_raw
    )


@numba.njit(cache=True, _nrt=False)
def _bin_raw(A, RID, R, infl, C, j, k, B, m, use_max, quant, limit_raw):
    """Raw error (sum, or max if use_max) of bin m alone of macro interval [x_j, x_k] with B bins,
    from the very values :func:`_seg_raw` uses for that bin. Never above what ``_seg_raw`` adds
    for it (a value >= limit_raw may be a lower bound of it), so never above the interval's raw
    error up to the float noise of the sums: a cheap lower bound that rules out a pair."""
    tp, Fp, lo = _bin_edge(A, C, j, k, B, m - 1, quant)
    t, F, i = _bin_edge(A, C, j, k, B, m, quant)
    if i - 1 < lo:
        return 0.0
    return _bin_err(A, RID, R, infl, lo, i - 1, tp, Fp, t, F, use_max, quant, limit_raw)


@numba.njit(cache=True, _nrt=False)
def _bin_lb(A, RID, R, C, j, k, B, m, quant):
    """A lower bound on bin m's raw sum error (:func:`_bin_raw`, sum objectives): the sum over
    its convexity runs of |sum g/w|, O(1) per run (equal to it where g keeps one sign)."""
    tp, Fp, lo = _bin_edge(A, C, j, k, B, m - 1, quant)
    t, F, i = _bin_edge(A, C, j, k, B, m, quant)
    if i - 1 < lo:
        return 0.0
    return max(_runs_lb_safe(A, RID, R, lo, i - 1, Fp, (F - Fp) / (t - tp), tp), 0.0)


@numba.njit(cache=True, _nrt=False)
def _seg_raw(A, RID, R, infl, C, j, k, B, use_max, quant, limit_raw):
    """(raw, rb, mhot): raw error of macro interval [x_j, x_k] with B bins, the sum (or max) of
    |f-P|/w; rb = the rightmost bin's sum (or max; a lower bound of it once it reached
    limit_raw) when P is f's chord over a bin with no inflection point,
    else 0; mhot = the bin (1..B) that contributed most among those visited.

    Stops early, returning a value >= limit_raw, once the partial result reaches it. Bins
    are visited right to left (bin m holds the grid points of :func:`_bin_edge`), each edge's
    f computed once: the sum is order-independent up to rounding; in profiles of the paper
    layout (first 32-bin layer, silu, full domain) the partial sum passed the limit after 4.5
    bins on average right to left against 27.6 left to right.
    With LUT rounding (sum objectives, finite limit) every bin's O(1)-per-run lower bound
    (:func:`_runs_lb_safe`) is summed first, and the exact O(log N) bin sums are computed
    only if that sum stays below the limit (then the result is the same, bit for bit).
    """
    if quant and not use_max and limit_raw < np.inf:
        # every bin's O(1) lower bound first (no line is a chord: each exact bin sum is
        # O(log N)); most pairs of a DP layer are ruled out by their sum alone
        t, F, i = _bin_edge(A, C, j, k, B, B, quant)
        acc = 0.0
        vhot = -1.0
        mhot = B
        for m in range(B, 0, -1):
            tp, Fp, lo = _bin_edge(A, C, j, k, B, m - 1, quant)
            if i - 1 >= lo:
                v = _runs_lb_safe(A, RID, R, lo, i - 1, Fp, (F - Fp) / (t - tp), tp)
                acc += v
                if v > vhot:
                    vhot = v
                    mhot = m
                if acc * (1.0 - LB_SLACK) >= limit_raw:
                    return acc * (1.0 - LB_SLACK), 0.0, mhot
            t, F, i = tp, Fp, lo
    t, F, i = _bin_edge(A, C, j, k, B, B, quant)
    acc = rb = 0.0
    vhot = -1.0
    mhot = B
    for m in range(B, 0, -1):  # bin m = [t_{m-1}, t_m]
        tp, Fp, lo = _bin_edge(A, C, j, k, B, m - 1, quant)
        if i - 1 >= lo:
            v = _bin_err(
                A,
                RID,
                R,
                infl,
                lo,
                i - 1,
                tp,
                Fp,
                t,
                F,
                use_max,
                quant,
                limit_raw if use_max else limit_raw - acc,
            )
            acc = max(acc, v) if use_max else acc + v
            if m == B and not quant and _same_region(infl, tp, t):
                rb = acc
            if v > vhot:
                vhot = v
                mhot = m
            if acc >= limit_raw:
                return acc, rb, mhot
        t, F, i = tp, Fp, lo
    return acc, rb, mhot


@numba.njit(cache=True, _nrt=False)
def _seg_cost(A, RID, R, infl, C, j, k, B, code, limit):
    """Objective contribution of macro interval j..k (see module doc), early exit at ``limit``."""
    obj = code & 3
    if obj == 0:
        scale = 1.0 / (k - j + 1)
    elif obj == 1:
        scale = 1.0 / C[2]
    else:
        scale = 1.0
    lim = limit / scale if limit < np.inf else np.inf
    return _seg_raw(A, RID, R, infl, C, j, k, B, obj == 2, code >= QUANTIZED, lim)[0] * scale


@numba.njit(cache=True, parallel=True)
def _clamp_costs_k(A, RID, R, infl, C, code, right):
    n = C[2]
    out = np.empty(n)
    obj = code & 3
    for kk in numba.prange(n):
        k = np.int64(kk)  # prange indices may be unsigned; keep index arithmetic in int64
        lo, hi = (k, np.int64(n - 1)) if right else (np.int64(0), k)
        v = _rne_q(A[F_, k], C[3]) if code >= QUANTIZED else A[F_, k]
        if obj == 2:
            out[k] = _line_max(A, lo, hi, v, 0.0, 0.0, np.inf)
        else:
            raw = _line_abs_sum(A, RID, R, infl, lo, hi, v, 0.0, 0.0, 1.0, 0.0, np.inf)
            out[k] = raw / (hi - lo + 1) if obj == 0 else raw / n
    return out


def _clamp_costs(G, code, right):
    """float64[N]: Lclamp(k) (or Rclamp(k) if right) for every grid index k."""
    return _clamp_costs_k(G.A, G.I, G.R, G.infl, G.C, code, right)


# ----------------------------------------------------------------------------- public wrappers
def grid_arrays(function: Function, x: np.ndarray, dtype: str = "fp16") -> GridArrays:
    """Precompute the cost kernels' view of ``function`` on the grid ``x`` (float64[N],
    ascending FP16 values, or BF16 values for ``dtype='bf16'``)."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype: must be one of {', '.join(DTYPES)}, got {dtype!r}")
    x = np.ascontiguousarray(x, dtype=np.float64)
    if x.ndim != 1 or x.size < 1 or np.any(np.diff(x) <= 0):
        raise ValueError("grid: need a non-empty ascending float64 array")
    f = function(x)
    iw = 1.0 / np.maximum(np.abs(f), W_FLOORS[dtype])
    P = np.stack([_prefix_dd(iw), _prefix_dd(f * iw), _prefix_dd(x * iw)])  # (3, 2, N+1)
    dd = np.diff(f) / np.diff(x) if x.size > 1 else np.zeros(0)
    # a built-in knows its inflection points; a user function's are those its grid shows
    user = getattr(function, "user", None) is not None
    infl = detect_inflections(x, f) if user else function.inflections
    infl = np.array([p for p in infl if x[0] < p < x[-1]], dtype=np.float64)
    # convexity runs: split the grid where it crosses an inflection point
    cuts = [0] + [int(np.searchsorted(x, p, side="right")) for p in infl] + [x.size]
    run_lo, run_hi, run_sign = [], [], []
    for a, b in zip(cuts[:-1], cuts[1:]):
        if b <= a:
            continue
        seg = dd[a : max(a, b - 1)]
        sign = 1 if seg.size < 2 or seg[-1] >= seg[0] else -1
        run_lo.append(a), run_hi.append(b - 1), run_sign.append(sign)
    run_id = np.zeros(x.size, dtype=np.int64)
    for r, (a, b) in enumerate(zip(run_lo, run_hi)):
        run_id[a : b + 1] = r
    b0 = int(f64_to_bits(x[0], dtype))
    ord0 = b0 if x[0] >= 0 else -(b0 & 0x7FFF)
    n = x.size
    A = np.zeros((P_ + 6, n + 1))  # rows: x, f, 1/w, dd, prefix (hi, lo) x 3; column n pads
    A[X_, :n], A[F_, :n], A[IW_, :n], A[DD_, : n - 1] = x, f, iw, dd
    A[P_:] = P.reshape(6, n + 1)  # (3, 2, N+1) -> (6, N+1)
    R = np.array([run_hi, run_sign], dtype=np.int64).reshape(2, -1)
    return GridArrays(
        x,
        f,
        iw,
        P,
        np.ascontiguousarray(dd),
        run_id,
        np.array(run_lo, np.int64),
        np.array(run_hi, np.int64),
        np.array(run_sign, np.int64),
        infl,
        ord0,
        function.fn_id,
        n,
        A,
        run_id,
        R,
        (int(ord0), int(function.fn_id), int(n), FMT_CODES[dtype]),
    )


def objective_code(objective: str, quantized: bool = False) -> int:
    """'paper' | 'mean' | 'max' -> 0 | 1 | 2 (+ QUANTIZED), with an error naming the choices."""
    if objective not in OBJECTIVES:
        raise ValueError(f"objective: must be one of {', '.join(OBJECTIVES)}, got {objective!r}")
    return OBJECTIVES.index(objective) + (QUANTIZED if quantized else 0)


def segment_cost(
    G: GridArrays, j: int, k: int, bins: int, objective: str, quantized: bool = False
) -> float:
    """Cost of one macro interval from grid index j to k (j < k) with ``bins`` bins."""
    if not 0 <= j < k < G.n or bins < 1:
        raise ValueError(
            f"segment: need 0 <= j < k < {G.n} and bins >= 1, got j={j}, k={k}, bins={bins}"
        )
    return float(
        _seg_cost(
            G.A,
            G.I,
            G.R,
            G.infl,
            G.C,
            j,
            k,
            int(bins),
            objective_code(objective, quantized),
            np.inf,
        )
    )


def clamp_costs(
    G: GridArrays, objective: str, quantized: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """(Lclamp, Rclamp): float64[N] each, the clamp cost with the first/last cutpoint at index k."""
    o = objective_code(objective, quantized)
    return _clamp_costs(G, o, False), _clamp_costs(G, o, True)


def cost_of_cutpoints(
    G: GridArrays, cut_idx, bins, objective: str, quantized: bool = False
) -> float:
    """Objective value of cutpoints at grid indices ``cut_idx`` (int[K+1], ascending) with
    ``bins`` (int[K])."""
    cut_idx = np.asarray(cut_idx, dtype=np.int64)
    bins = np.asarray(bins, dtype=np.int64)
    if cut_idx.size != bins.size + 1 or np.any(np.diff(cut_idx) <= 0):
        raise ValueError("cutpoints: need K+1 strictly increasing grid indices for K bins")
    o = objective_code(objective, quantized)
    L, R = clamp_costs(G, objective, quantized)
    parts = [L[cut_idx[0]], R[cut_idx[-1]]]
    parts += [
        _seg_cost(G.A, G.I, G.R, G.infl, G.C, int(a), int(b), int(B), o, np.inf)
        for a, b, B in zip(cut_idx[:-1], cut_idx[1:], bins)
    ]
    return float(max(parts) if o & 3 == 2 else sum(parts))


# numba cache stamp: ead203d5170f69ac (nli/kernel_stamps.py)
