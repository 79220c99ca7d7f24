"""Globally optimal cutpoints on the FP16 grid (or the BF16 grid of a bf16 table, numerics §13)
by dynamic programming.

``D[L][k]`` is the best cost of a prefix whose L-th cutpoint (counting from 0)
is grid point ``x_k``; ``D[0][k] = Lclamp(k)``,
``D[L][k] = min_j D[L-1][j] (+ or max) cost(j, k, bins[L-1])``, and the answer is
``min_k D[K][k] (+ or max) Rclamp(k)``. It is exact: every pair (j, k) is
considered; a pair is skipped only when ``D[L-1][j]`` alone (or plus a lower
bound on its segment cost: for the sum objectives the rightmost-bin error of a
narrower segment ending at k; for many-bin segments the error of one of its bins
computed alone, see :mod:`nli.dp_layer`; with LUT rounding, O(1) lower bounds of that
bin and then of every bin, each below its exact O(log N) sum) already reaches the best
value found for k (costs are non-negative), and a segment cost stops
being computed once its partial sum reaches what it would have to beat. Both
cuts are exact. Segment costs are O(1) (O(log N) across an inflection point)
per ideal-interpolant bin, see :mod:`nli.objective`. Under ``mean`` with LUT rounding, pairs
with both ends in a saturation zone (a tail where the LUT holds one value, so costs add up)
go by a running minimum instead, O(1) per k: exact in real arithmetic, and within the
rounding of the zone's sums of the pair-by-pair minimum (:mod:`nli.dp_zones`).

The DP runs from both ends and meets in the middle (:mod:`nli.dp`): prefix costs from the
left clamp and suffix costs from the right clamp, the last layer computed only where a
suffix exists below the bound. Layer kernels (:mod:`nli.dp_layer`, forward;
:mod:`nli.dp_layer_back`, backward) run in parallel over their output index
(``numba.prange``, threads strided). In the exact pass, single-bin forward layers under the
sum objectives use a block kernel that computes the cost of a whole block of j at once
(vectorized; the same values, bit for bit) and rules out chords across an inflection point
by an O(1) lower bound before their exact O(log N) cost; it finds the same minimum.
Optional candidate thinning (``stride > 1``: cutpoints only at every stride-th
grid point, costs still over the full grid) is off by default; the result says
so, and :func:`solve` can measure its gap to the exact optimum.
"""

from __future__ import annotations

from dataclasses import dataclass
import hashlib
from importlib.metadata import PackageNotFoundError, version
import math
from pathlib import Path
import re
import time
from typing import Callable

import numpy as np

from .dp import _dp
from .formats import BF16_MIN_WIDTH_PER_BIN, DTYPE_FORMATS, DTYPES, FP16_MAX, PRECISIONS
from .functions import get_function
from .grid import DomainError, dtype_grid, f64_to_bits
from .objective import GridArrays, _clamp_costs, grid_arrays, objective_code
from .table import MAX_ENTRIES, Table, table_from_cutpoints

PAPER_BINS = (1,) + (32,) * 8 + (1,)
# a bound U from a coarser pass admits partial costs < U (1 + BOUND_SLACK): float sums of the
# same non-negative terms cannot exceed U by more than this, so the optimum always survives
BOUND_SLACK = 1e-9


# thinned passes before the exact one, each giving the next its bound; minimax adds a stride-8
# pass: its exact pass has no O(1) segment costs, so a tighter bound pays (gelu two-level:4:32
# on [1, 64]: bound 3.3e-5 -> 3.9e-6 against an optimum of 3.86e-6)
COARSE_STRIDES = {"sum": (256, 32), "max": (256, 32, 8)}
# then, before the last pass, the DP over the last pass's candidates within WINDOW of the best
# cutpoints so far, repeated around each better answer (at most WINDOW_ROUNDS times): a tighter
# bound for the last pass. Whole exact solves on sub-domains, 1 thread, without -> with it
# (benchmarks/solver_window.py): mean + LUT rounding silu 1.21x, gelu 1.09x, exp 1.24x; paper
# objective silu 1.05x
WINDOW = 32
WINDOW_ROUNDS = 8


@dataclass(frozen=True)
class Layout:
    """Bins per macro interval; ``name`` is how the CLI spells it."""

    name: str
    bins: tuple

    def __post_init__(self):
        if len(self.bins) < 1 or any(int(b) < 1 for b in self.bins):
            raise ValueError(f"layout {self.name!r}: needs at least one macro interval, bins >= 1")
        if len(self.bins) > MAX_ENTRIES - 1 or sum(int(b) for b in self.bins) > MAX_ENTRIES - 1:
            raise ValueError(
                f"layout {self.name[:40]!r}: at most {MAX_ENTRIES} LUT entries (1 + sum of bins)"
            )

    @property
    def cutpoints(self) -> int:
        return len(self.bins) + 1

    @property
    def entries(self) -> int:
        return 1 + sum(self.bins)

    @classmethod
    def parse(cls, text: str) -> "Layout":
        """'paper' | 'single:M' | 'two-level:K:B' -> Layout, with an error naming the form."""
        parts = text.split(":")
        nums = [
            int(p) if re.fullmatch(r"[0-9]{1,6}", p) else -1 for p in parts[1:]
        ]  # ASCII digits only
        if parts == ["paper"]:
            return cls("paper", PAPER_BINS)
        if parts[0] == "single" and len(nums) == 1 and 2 <= nums[0] <= MAX_ENTRIES:
            return cls(text, (1,) * (nums[0] - 1))
        if (
            parts[0] == "two-level"
            and len(nums) == 2
            and nums[0] >= 0
            and 1 <= nums[1] < MAX_ENTRIES
        ):
            if nums[0] * nums[1] + 3 > MAX_ENTRIES:
                raise ValueError(
                    f"layout {text!r}: at most {MAX_ENTRIES} LUT entries (1 + sum of bins)"
                )
            return cls(text, (1,) + (nums[1],) * nums[0] + (1,))
        raise ValueError(
            f"layout: expected paper, single:M (2 <= M <= {MAX_ENTRIES}) or two-level:K:B, "
            f"got {text[:40]!r}"
        )


def solver_version() -> str:
    """'nli-engine <version>': the installed package that solved (pyproject's version), as a
    table's meta records it; 'nli-engine (not installed)' when run from a bare checkout."""
    try:
        return f"nli-engine {version('nli-engine')}"
    except PackageNotFoundError:
        return "nli-engine (not installed)"


@dataclass(frozen=True)
class SolveResult:
    """The solver's answer: cutpoints (grid indices and FP16 bits) and what produced them."""

    function: str
    objective: str
    layout: Layout
    domain: tuple  # (lo, hi) float64, FP16 values
    cut_idx: np.ndarray  # int64[K+1] grid indices
    cutpoints: np.ndarray  # uint16[K+1]
    objective_value: (
        float  # the minimised objective (JSON meta key: "cost", kept for shipped tables)
    )
    solve_seconds: float
    grid_points: int
    stride: int = 1  # candidate thinning (1 = exact, every grid point a candidate)
    gap: float | None = (
        None  # measured objective value - exact one, when thinning and asked to measure
    )
    precision: str = "fp32"
    quantized: bool = False  # P carried RNE16(f) (the LUT as built) instead of exact f
    dtype: str = "fp16"  # the grid's and the table's format (numerics §13)

    def meta(self) -> dict:
        """JSON-ready record of how the cutpoints were made."""
        from .grid import f16_hex

        lo, hi = (f16_hex(int(b)) for b in f64_to_bits(np.array(self.domain), self.dtype))
        d = {
            "objective": self.objective,
            "cost": float(self.objective_value),
            "domain": [lo, hi],
            "layout": self.layout.name,
            "solve_seconds": round(float(self.solve_seconds), 3),
            "grid_points": int(self.grid_points),
            "thinning": None if self.stride == 1 else self.stride,
            "lut_rounding_in_objective": bool(self.quantized),
            "solver_version": solver_version(),
        }
        if self.gap is not None:
            d["thinning_gap"] = float(self.gap)
        return d


def _candidates(n: int, stride: int) -> np.ndarray:
    """Grid indices 0, stride, 2 stride, ... and n-1: int64[*]."""
    c = np.arange(0, n, stride, dtype=np.int64)
    return c if c[-1] == n - 1 else np.append(c, n - 1)


def _problem_key(G: GridArrays, bins, obj: int, stride: int, ok: np.ndarray, minw) -> str:
    """SHA-256 (hex) of everything a solve's result depends on: the kernels' arrays (the
    function on the grid), bins, objective code, stride, the finite-f mask, the minimum
    widths, and the source of the modules that compute costs and layers."""
    from . import (
        dp,
        dp_layer,
        dp_layer_back,
        dp_path,
        dp_zones,
        format_rounding,
        grid_sums,
        objective,
    )

    h = hashlib.sha256()
    for arr in (G.A, G.I, G.R, G.C, G.infl, ok):
        h.update(np.ascontiguousarray(arr).tobytes())
    h.update(repr((tuple(int(b) for b in bins), obj, stride, [float(w) for w in minw])).encode())
    mods = (dp, dp_layer, dp_layer_back, dp_path, dp_zones, format_rounding, grid_sums, objective)
    for mod in mods:
        h.update(Path(mod.__file__).read_bytes())
    return h.hexdigest()


def _check_resume(state: dict, n: int, K: int, name: str) -> None:
    """A saved DP state of the right shapes, dtypes and ranges (a file's key can be forged: the
    kernels index its arrays unchecked), else CheckpointError."""
    from .solve_checkpoint import CheckpointError

    shapes = {"Dfh": (K + 1, n), "Ebh": (K + 1, n), "fargs": (K, n), "bargs": (K, n)}
    shapes["coarse_idx"] = None
    kinds = {"Dfh": "f", "Ebh": "f", "fargs": "i", "bargs": "i", "coarse_idx": "i"}
    for k, shape in shapes.items():
        v = state.get(k)
        ok = isinstance(v, np.ndarray) and v.dtype.kind == kinds[k] and v.dtype.itemsize == 8
        if ok and k == "coarse_idx":
            ok = v.ndim == 1 and v.size in (0, K + 1) and bool(np.all((v >= 0) & (v < n)))
        elif ok:
            ok = v.shape == shape and (kinds[k] == "f" or bool(np.all((v >= -1) & (v < n))))
        if not ok:
            raise CheckpointError(f"{name}: damaged ({k} is not a DP array of this solve)")
    try:
        a, b, done, chunk = (int(state[k]) for k in ("a", "b", "done", "chunk"))
        out, cost = state["out"], float(state["coarse_cost"])
    except (KeyError, TypeError, ValueError):
        raise CheckpointError(f"{name}: damaged (a DP counter is missing)") from None
    from .dp import PROGRESS_STEPS

    good = 0 <= a < b <= K and done == a + K - b and 0 <= chunk < PROGRESS_STEPS
    good = good and out.shape == ((n,) if chunk else (0,)) and out.dtype == np.float64
    if not (good and cost >= 0):
        raise CheckpointError(f"{name}: damaged (DP counters out of range)")


def _window_pass(G, bins, obj, cand, cost, idx, clamps, minw):
    """(cost, idx) no worse than the given feasible ones: the DP over the candidates ``cand``
    within WINDOW places of each cutpoint of ``idx``, repeated around each better answer.
    Its cost is a feasible path's, so it bounds the optimum over ``cand`` from above."""
    steps = np.arange(-WINDOW, WINDOW + 1)
    for _ in range(WINDOW_ROUNDS):
        pos = np.searchsorted(cand, idx)
        near = np.unique(np.clip(pos[:, None] + steps[None, :], 0, cand.size - 1))
        c, ix = _dp(G, bins, obj, cand[near], cost * (1 + BOUND_SLACK), clamps, minw, None)
        if ix is None or not c < cost:
            break
        cost, idx = c, ix
    return cost, idx


def _solve_grid(
    G: GridArrays,
    bins,
    obj: int,
    stride: int,
    ok: np.ndarray,
    minw,
    progress,
    fast: bool = True,
    checkpoint=None,
):
    """Coarse-to-fine: each thinned pass gives a feasible cost U (an upper bound on the
    optimum), which makes the next, finer pass drop every partial path costing >= U.
    The last pass uses candidate stride ``stride`` (1 = every grid point: exact); before it,
    :func:`_window_pass` tightens U over that pass's candidates near the best cutpoints.
    Cutpoints are restricted to grid points where ``ok`` (RNE16(f) finite). ``fast=False``
    runs the exact pass with the general layer kernel only (the plain DP, for tests).
    ``checkpoint`` (see :func:`solve`): the last pass saves its progress there, and a saved
    state of the same problem resumes it, with the coarse passes' result taken from it."""
    clamps = (_clamp_costs(G, obj, False), _clamp_costs(G, obj, True))
    coarse = COARSE_STRIDES["max" if obj & 3 == 2 else "sum"]
    schedule = [s for s in coarse if s > stride and G.n // s >= 4 * (len(bins) + 1)] + [stride]
    bound = math.inf
    cost, idx = math.inf, None
    resume, key = None, None
    if checkpoint is not None:
        key = _problem_key(G, bins, obj, stride, ok, minw)
        resume = checkpoint.load()
        if resume is not None and str(resume.get("key", "")) != key:
            from .solve_checkpoint import CheckpointError

            raise CheckpointError(
                f"{checkpoint.name}: saved by a different solve (function, domain, layout, "
                "objective, stride or solver code); remove it to start afresh"
            )
    if resume is not None:  # the coarse passes ran before the interruption
        _check_resume(resume, G.n, len(bins), checkpoint.name)
        cost = bound = float(resume["coarse_cost"])
        idx = np.array(resume["coarse_idx"]) if resume["coarse_idx"].size else None
        schedule = schedule[-1:]
    for i, s in enumerate(schedule):
        last = i == len(schedule) - 1
        cand = _candidates(G.n, s)
        if last and idx is not None and resume is None:
            cost, idx = _window_pass(G, bins, obj, cand[ok[cand]], cost, idx, clamps, minw)
            bound = cost
        save = None
        if last and checkpoint is not None:
            own = {
                "key": key,
                "coarse_cost": cost,
                "coarse_idx": np.empty(0, np.int64) if idx is None else idx,
            }

            def save(state, layer_end=False, own=own):
                checkpoint.save({**state, **own}, force=layer_end)

        c, ix = _dp(
            G,
            bins,
            obj,
            cand[ok[cand]],
            bound * (1 + BOUND_SLACK),
            clamps,
            minw,
            progress if last else None,
            dense=fast and s == 1,
            resume=resume if last else None,
            save=save,
        )
        if ix is not None and c <= cost:
            cost, idx = c, ix
            bound = c
    return cost, idx


def solve(
    function: str,
    layout: Layout | str = "paper",
    objective: str = "paper",
    domain: tuple | None = None,
    precision: str = "fp32",
    stride: int = 1,
    measure_gap: bool = False,
    progress: Callable[[int, int], None] | None = None,
    quantized: bool = False,
    dtype: str = "fp16",
    checkpoint=None,
) -> SolveResult:
    """Globally optimal cutpoints for ``function`` on the FP16 grid of ``domain``.

    ``domain`` defaults to the function's legal FP16 domain; ``stride > 1`` thins the
    cutpoint candidates (explicit, approximate; ``measure_gap`` also runs the exact
    solve and records the gap). ``progress(done, total)`` reports the exact pass: done layers
    of total, fractional within the general layer kernel's layers.
    ``quantized``: P carries RNE16(f) at its points and the clamps RNE16(f(c)), i.e. the
    LUT the table will hold (see :mod:`nli.objective`). Cutpoints are grid points where
    RNE16(f) is finite (the LUT must be finite); for ``precision='fp16'`` a macro interval
    of B bins is at least B / 65504 wide, so that RNE16(mul) cannot overflow (numerics §2;
    slightly stricter than needed).
    ``dtype='bf16'`` solves on the BF16 grid (numerics §13; domain default: the function's BF16
    ``direct`` domain), with RNE_bf16 for LUT rounding and a macro interval of B bins at least
    B * 2^-127 wide, so that mul = RNE32(B / width) stays finite.
    ``checkpoint`` (:class:`nli.solve_checkpoint.SolveCheckpoint`, or any object with its
    ``name``, ``load()`` and ``save(state, force)``): the last (exact) pass saves its progress
    there and resumes from a saved state of the same problem (``CheckpointError`` for another
    one's);
    the result is the uninterrupted solve's. ``solve_seconds`` then counts this run only.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision: must be one of {PRECISIONS}, got {precision!r}")
    if dtype not in DTYPES:
        raise ValueError(f"dtype: must be one of {', '.join(DTYPES)}, got {dtype!r}")
    if dtype == "bf16" and precision != "fp32":
        raise ValueError(f"precision: a bf16 table must have precision 'fp32', got {precision!r}")
    from .user_function import allow_import, is_user_spec

    if is_user_spec(function):  # the caller named it: their own code (table files never do)
        allow_import(function)
    f = get_function(function)
    lay = Layout.parse(layout) if isinstance(layout, str) else layout
    obj = objective_code(objective, quantized)
    lo, hi = domain if domain is not None else f.default_domain_for(dtype)
    x, _ = dtype_grid(lo, hi, dtype)
    if lay.cutpoints > x.size:
        raise DomainError(
            f"layout {lay.name!r} needs {lay.cutpoints} cutpoints but the domain "
            f"[{lo:g}, {hi:g}] has only {x.size} grid points"
        )
    if stride < 1:
        raise ValueError(f"stride: must be >= 1, got {stride}")
    t0 = time.perf_counter()
    G = grid_arrays(f, x, dtype)
    if f.user is not None:
        from .user_function import first_not_finite

        first_not_finite(function, x, G.f)
    ok = np.abs(G.f) < DTYPE_FORMATS[dtype].overflow
    if int(ok[_candidates(x.size, stride)].sum()) < lay.cutpoints:
        raise ValueError(
            f"layout {lay.name!r} needs {lay.cutpoints} cutpoints but only "
            f"{int(ok[_candidates(x.size, stride)].sum())} candidate grid points have a finite f"
        )
    if dtype == "bf16":  # B / width <= 2^127: RNE32 of it is finite (numerics §13)
        minw = [b * BF16_MIN_WIDTH_PER_BIN for b in lay.bins]
    else:
        minw = [b / FP16_MAX if precision == "fp16" else 0.0 for b in lay.bins]
    cost, idx = _solve_grid(G, lay.bins, obj, stride, ok, minw, progress, checkpoint=checkpoint)
    if idx is None:
        raise ValueError(
            f"no feasible cutpoints for layout {lay.name!r} on this domain"
            + (" with fp16 precision (macro intervals too narrow)" if precision == "fp16" else "")
        )
    seconds = time.perf_counter() - t0
    gap = None
    if stride > 1 and measure_gap:
        exact, _ = _solve_grid(G, lay.bins, obj, 1, ok, minw, None)
        gap = cost - exact
    bits = f64_to_bits(np.asarray(x[idx], dtype=np.float64), dtype)
    return SolveResult(
        function,
        objective,
        lay,
        (float(x[0]), float(x[-1])),
        idx,
        bits,
        cost,
        seconds,
        int(x.size),
        stride,
        gap,
        precision,
        quantized,
        dtype,
    )


def table_from_result(result: SolveResult, **extra_meta) -> Table:
    """The table of a solve: LUT = RNE16(f(point)), below = lut[0], above = lut[-1]
    (numerics §2 defaults); meta records objective, cost, domain, layout, timing."""
    return table_from_cutpoints(
        result.function,
        result.cutpoints,
        list(result.layout.bins),
        result.precision,
        result.dtype,
        **result.meta(),
        provenance={"method": "nli DP solver", **extra_meta.pop("provenance", {})},
        **extra_meta,
    )
