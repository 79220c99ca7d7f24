"""Cutpoint solver oracles (issue 2, nli/objective.py + nli/solver.py).

Point-by-point segment costs in plain Python, and a brute-force DP / exhaustive enumeration over
every cutpoint choice. Slow on purpose.
"""

from fractions import Fraction as _NvF
import itertools as _it

from naive_fp import NV_BF16, NvVal, _nv_round

_W_FLOOR = 2.0**-14
_W_FLOORS = {"fp16": _W_FLOOR, "bf16": 2.0**-126}  # the format's smallest normal


def _naive_rne16(v):
    """RNE16 of a float64 via numpy's correctly rounded double -> half conversion."""
    import numpy as _np

    with _np.errstate(over="ignore"):
        return float(_np.float16(v))


def _naive_rne(v, fmt):
    """RNE16, or RNE_bf16 through the Fraction rounding of the datapath oracle (naive_fp)."""
    if fmt == "fp16":
        return _naive_rne16(v)
    r = _nv_round(NvVal("num", _NvF(v)), NV_BF16)
    return float("inf") * (-1 if r.neg else 1) if r.kind == "inf" else float(r.q)


def naive_point_errors(fn, x, j, k, B, fx=None, quantized=False, fmt="fp16"):
    """[|f(x_i) - P(x_i)| / w_i for i = j..k], P the ideal interpolant with B bins
    (quantized: P carries RNE16(f) at its points; RNE_bf16 and w's floor 2^-126 for
    fmt 'bf16').

    fx: optional list of f(x_i) for the whole grid (a cache; computed if missing)."""
    fx = [float(v) for v in fn([float(v) for v in x])] if fx is None else fx
    a, b = float(x[j]), float(x[k])
    d = b - a
    t = [a + (m * d) / B for m in range(B)] + [b]
    ft = [float(v) for v in fn(t)]
    if quantized:
        ft = [_naive_rne(v, fmt) for v in ft]
    out = []
    for i in range(j, k + 1):
        xi, fi = float(x[i]), fx[i]
        m = 0
        while m < B - 1 and t[m + 1] <= xi:
            m += 1
        p = ft[m] + (ft[m + 1] - ft[m]) * (xi - t[m]) / (t[m + 1] - t[m])
        out.append(abs(fi - p) / max(abs(fi), _W_FLOORS[fmt]))
    return out


def naive_clamp_errors(fn, x, k, right, fx=None, quantized=False, fmt="fp16"):
    """[|f(x_i) - f(x_k)| / w_i] over i <= k (or i >= k if right); quantized: RNE16(f(x_k))
    (RNE_bf16 for fmt 'bf16')."""
    fx = [float(v) for v in fn([float(v) for v in x])] if fx is None else fx
    fk = _naive_rne(fx[k], fmt) if quantized else fx[k]
    idx = range(k, len(x)) if right else range(0, k + 1)
    out = []
    for i in idx:
        fi = fx[i]
        out.append(abs(fi - fk) / max(abs(fi), _W_FLOORS[fmt]))
    return out


def _naive_combine(objective, n):
    if objective == "paper":
        return lambda errs: sum(errs) / len(errs)
    if objective == "mean":
        return lambda errs: sum(errs) / n
    return lambda errs: max(errs)


def naive_cost(fn, x, cut_idx, bins, objective, fmt="fp16"):
    """Objective of cutpoints at grid indices cut_idx (K+1) with bins (K), point by point."""
    part = _naive_combine(objective, len(x))
    fx = [float(v) for v in fn([float(v) for v in x])]
    parts = [
        part(naive_clamp_errors(fn, x, cut_idx[0], False, fx, fmt=fmt)),
        part(naive_clamp_errors(fn, x, cut_idx[-1], True, fx, fmt=fmt)),
    ]
    parts += [
        part(naive_point_errors(fn, x, a, b, B, fx, fmt=fmt))
        for a, b, B in zip(cut_idx[:-1], cut_idx[1:], bins)
    ]
    return max(parts) if objective == "max" else sum(parts)


def naive_solve(fn, x, bins, objective, quantized=False, fmt="fp16"):
    """Brute-force DP over all cutpoint choices; segment costs point by point. Returns the optimal
    cost. ``fmt`` 'bf16': BF16 LUT rounding and weight floor (numerics §13)."""
    n = len(x)
    part = _naive_combine(objective, n)
    add = max if objective == "max" else (lambda a, b: a + b)
    memo = {}
    fx = [float(v) for v in fn([float(v) for v in x])]

    def seg(j, k, B):
        if (j, k, B) not in memo:
            memo[(j, k, B)] = part(naive_point_errors(fn, x, j, k, B, fx, quantized, fmt))
        return memo[(j, k, B)]

    D = [part(naive_clamp_errors(fn, x, k, False, fx, quantized, fmt)) for k in range(n)]
    for B in bins:
        D = [
            min([add(D[j], seg(j, k, B)) for j in range(k)], default=float("inf")) for k in range(n)
        ]
    return min(
        add(D[k], part(naive_clamp_errors(fn, x, k, True, fx, quantized, fmt))) for k in range(n)
    )


def naive_enumerate(fn, x, bins, objective):
    """Exhaustive enumeration of every increasing cutpoint tuple (tiny grids only)."""
    return min(
        naive_cost(fn, x, list(c), bins, objective)
        for c in _it.combinations(range(len(x)), len(bins) + 1)
    )
