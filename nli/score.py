"""Point-by-point objective of any cutpoints (not necessarily grid points), vectorized.

Used to score tables the solver did not make (NLI's published cutpoints, the
baselines) with the same definitions as :mod:`nli.objective`.
"""

from __future__ import annotations

import numpy as np

from .functions import Function
from .objective import W_FLOOR, objective_code


def cutpoints_cost(
    function: Function, x: np.ndarray, cutpoints: np.ndarray, bins, objective: str
) -> float:
    """Objective of any cutpoints (float64[K+1], FP16 values, not necessarily grid points
    of x) with ``bins`` (int[K]) over the grid x (float64[N]), vectorized point by point.
    Empty clamp or interval point sets contribute 0. Used to score published and baseline tables."""
    o = objective_code(objective)
    c = np.asarray(cutpoints, dtype=np.float64)
    fx = function(x)
    w = np.maximum(np.abs(fx), W_FLOOR)
    fc = function(c)
    parts = []

    def part(mask, approx):
        err = np.abs(fx[mask] - approx) / w[mask]
        if err.size == 0:
            return 0.0
        return float(err.max() if o == 2 else (err.mean() if o == 0 else err.sum() / x.size))

    parts.append(part(x <= c[0], fc[0]))
    parts.append(part(x >= c[-1], fc[-1]))
    for i, b in enumerate(bins):
        d = c[i + 1] - c[i]
        t = np.array([c[i] + (m * d) / b for m in range(b)] + [c[i + 1]])
        ft = function(t)
        ft[0], ft[-1] = fc[i], fc[i + 1]
        m = (x >= c[i]) & (x <= c[i + 1])
        parts.append(part(m, np.interp(x[m], t, ft)))
    return float(max(parts) if o == 2 else sum(parts))
