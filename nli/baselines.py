"""Comparison tables with the same number of LUT entries as the paper layout (259).

* ``uniform``: one macro interval over the whole domain with ``entries - 1``
  uniform bins (one comparator pair: the domain ends).
* ``curvature``: a single-level table (bins all 1) whose ``entries`` cutpoints
  have density proportional to ``sqrt(|f''|)`` over the domain (the classical
  equal-error placement for linear interpolation), snapped to FP16 grid points.
* ``nnlut``: NN-LUT style: the same curvature placement, but fitted only on
  the calibration range ``[-5, 5]`` (intersected with the domain: exp uses
  ``[-5, 0]``, reciprocal and rsqrt ``(0, 5]``, the reduced domains themselves)
  and clamped outside it, the kind that collapses on LLM outliers.

Every LUT entry is RNE16(f(point)), ``below = lut[0]``, ``above = lut[-1]``;
cutpoints are restricted to grid points where RNE16(f) is finite.
"""

from __future__ import annotations

import numpy as np

from .formats import FP16_OVERFLOW
from .functions import get_function
from .grid import fp16_grid
from .table import Table, table_from_cutpoints

BASELINES = ("uniform", "curvature", "nnlut")
PAPER_ENTRIES = 259
CALIBRATION = (-5.0, 5.0)


def _finite_grid(function: str, lo: float, hi: float) -> np.ndarray:
    """float64[*]: grid points of [lo, hi] where RNE16(f) is finite."""
    x, _ = fp16_grid(lo, hi)
    fx = get_function(function)(x)
    x = x[np.abs(fx) < FP16_OVERFLOW]
    if x.size < 2:
        raise ValueError(
            f"domain [{lo:g}, {hi:g}]: fewer than 2 points where {function} is finite in FP16"
        )
    return x


def _bits(values: np.ndarray) -> np.ndarray:
    return np.asarray(values, dtype=np.float64).astype(np.float16).view(np.uint16)


def density_placement(x: np.ndarray, density: np.ndarray, count: int) -> np.ndarray:
    """``count`` distinct grid indices (int64, ascending, first 0 and last N-1) at equal
    steps of the cumulative integral of ``density`` over the grid x (float64[N])."""
    n = x.size
    if count > n:
        raise ValueError(f"count: {count} points requested but the grid has only {n}")
    seg = 0.5 * (density[1:] + density[:-1]) * np.diff(x)  # trapezoid per grid step
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    if not cum[-1] > 0:
        cum = np.arange(n, dtype=np.float64)
    idx = np.unique(
        np.searchsorted(cum, np.linspace(0.0, cum[-1], count), side="left").clip(0, n - 1)
    )
    idx = np.unique(np.concatenate([[0, n - 1], idx]))
    while idx.size < count:  # snapping merged some points: split the widest index gaps
        gaps = np.diff(idx)
        g = int(np.argmax(gaps))
        idx = np.insert(idx, g + 1, idx[g] + gaps[g] // 2)
    while idx.size > count:  # (only if endpoints were added on top of count)
        g = int(np.argmin(np.diff(idx)[1:])) + 1
        idx = np.delete(idx, g)
    return idx.astype(np.int64)


def curvature_density(function: str, x: np.ndarray) -> np.ndarray:
    """float64[N]: sqrt(|f''|) on the grid, from second divided differences of f."""
    fx = get_function(function)(x)
    d2 = np.zeros_like(x)
    if x.size >= 3:
        d1 = np.diff(fx) / np.diff(x)
        d2[1:-1] = 2.0 * np.diff(d1) / (x[2:] - x[:-2])
        d2[0], d2[-1] = d2[1], d2[-2]
    return np.sqrt(np.abs(d2))


def uniform_table(
    function: str, domain=None, entries: int = PAPER_ENTRIES, precision: str = "fp32"
) -> Table:
    """One macro interval over the (finite part of the) domain with entries - 1 uniform bins."""
    lo, hi = domain if domain is not None else get_function(function).default_domain
    x = _finite_grid(function, lo, hi)
    return table_from_cutpoints(
        function,
        _bits([x[0], x[-1]]),
        [entries - 1],
        precision,
        provenance={"method": "baseline: uniform"},
        layout=f"uniform:{entries}",
    )


def curvature_table(
    function: str,
    domain=None,
    entries: int = PAPER_ENTRIES,
    precision: str = "fp32",
    _method: str = "baseline: curvature sqrt(|f''|)",
) -> Table:
    """Single-level table, ``entries`` cutpoints with density proportional to sqrt(|f''|)."""
    lo, hi = domain if domain is not None else get_function(function).default_domain
    x = _finite_grid(function, lo, hi)
    idx = density_placement(x, curvature_density(function, x), entries)
    return table_from_cutpoints(
        function,
        _bits(x[idx]),
        [1] * (entries - 1),
        precision,
        provenance={"method": _method},
        layout=f"single:{entries}",
    )


def nnlut_table(
    function: str,
    domain=None,
    entries: int = PAPER_ENTRIES,
    precision: str = "fp32",
    calibration=CALIBRATION,
) -> Table:
    """NN-LUT style: curvature placement fitted on calibration ∩ domain, clamped outside."""
    lo, hi = domain if domain is not None else get_function(function).default_domain
    clo, chi = max(lo, calibration[0]), min(hi, calibration[1])
    if clo >= chi:
        raise ValueError(
            f"calibration range {calibration} does not meet the domain [{lo:g}, {hi:g}]"
        )
    t = curvature_table(
        function,
        (clo, chi),
        entries,
        precision,
        _method=f"baseline: NN-LUT style, fitted on [{clo:g}, {chi:g}], clamped outside",
    )
    return Table(
        t.function,
        t.cutpoints,
        t.bins,
        t.lut,
        t.below,
        t.above,
        t.precision,
        meta={**t.meta, "calibration": [clo, chi]},
    )


def baseline_table(kind: str, function: str, domain=None, precision: str = "fp32") -> Table:
    """One of BASELINES by name."""
    makers = {"uniform": uniform_table, "curvature": curvature_table, "nnlut": nnlut_table}
    if kind not in makers:
        raise ValueError(f"baseline: must be one of {', '.join(BASELINES)}, got {kind!r}")
    return makers[kind](function, domain, precision=precision)
