"""Globally optimal cutpoints for the datapath-exact objectives ``ulp``, ``cr``, ``cr+maxulp``.

The DP of :mod:`nli.solver` (``D[L][k]`` = best cost of a prefix whose L-th cutpoint is grid
point k), with segment and clamp costs measured through the fp32 unit itself
(:mod:`hw_sim.datapath_cost`): the optimum is the table whose ``nli table report`` over the
whole domain has the fewest not-correctly-rounded outputs (``cr``), the smallest ulp sum
(``ulp``), or the fewest and then the smallest max ulp (``cr+maxulp``), among all tables whose
LUT entries are RNE16(f) at their real points (``nli.table.table_from_cutpoints``: the LUT
is chosen by that rule, not optimized; below = lut[0], above = lut[-1]). ``dtype='bf16'``
solves for a bf16 table (numerics §13) on the BF16 grid, among the intervals the bf16 rules
allow (:mod:`hw_sim.datapath_cost`: at least ``B 2^-127`` wide, widths and LUT differences
below FP32's overflow threshold).

Exactness: every pair (j, k) is considered; a pair is dropped only when ``D[L-1][j]`` already
reaches the best value found for k, or the limit ``bound`` (a feasible solution's cost + 1);
a segment stops counting once its running total reaches that limit. Costs are non-negative
integers and combine monotonically, so both cuts keep the optimum. Coarse-to-fine: passes
with cutpoints only at every 256th, then 32nd grid point (costs still over every point; the
candidate sets nest) each give the next pass its bound; an ``incumbent`` (e.g. a shipped
table's cutpoints) gives the first one.

Work is O(N^2) pair checks per layer plus the points each surviving segment counts before it
reaches its limit; on a full FP16 domain (N = 63,487) that is far from interactive (see
benchmarks/datapath_solver.py for measurements).
"""

from __future__ import annotations

import time
from typing import Callable

import numba
import numpy as np

from nli.formats import DTYPES
from nli.functions import get_function
from nli.grid import bits_to_f64, dtype_grid, f64_to_bits, is_finite_bits
from nli.solver import Layout, SolveResult

from .datapath_cost import (
    _KEY_MASK,
    KEY_SHIFT,
    NO_COST,
    clamp_costs,
    layer,
    objective_index,
    path_cost,
)
from .report import ordered, reference_bits

COARSE_STRIDES = (256, 32)


def _combine_all(D: np.ndarray, R: np.ndarray, obj: int) -> np.ndarray:
    """Elementwise D (+) R of int64 arrays (NO_COST where either is)."""
    if obj == 2:
        t = ((D >> KEY_SHIFT) + (R >> KEY_SHIFT)) << KEY_SHIFT | np.maximum(
            D & _KEY_MASK, R & _KEY_MASK
        )
    else:
        t = D + R
    return np.where((D >= NO_COST) | (R >= NO_COST), NO_COST, t)


def _dp(grid, bins, obj, cand, bound, L, R, threads, progress, max_ulp, dtype):
    """The DP with cutpoints only where ``cand``; partial costs >= bound are dropped. Returns
    (cost, cut_idx int64[K+1]) or (NO_COST, None)."""
    x64, refo, lutc, fn_id = grid
    D = np.where(cand, L, NO_COST)
    D = np.where(D < bound, D, NO_COST)
    args = []
    for m, B in enumerate(bins):
        D, arg = layer(D, int(B), x64, refo, lutc, fn_id, obj, cand, bound, threads, max_ulp, dtype)
        args.append(arg)
        if progress is not None:
            progress(m + 1, len(bins))
    total = _combine_all(D, R, obj)
    k = int(np.argmin(total))
    if not total[k] < min(bound, NO_COST):
        return int(NO_COST), None
    idx = [k]
    for arg in reversed(args):
        k = int(arg[k])
        idx.append(k)
    return int(total[idx[0]]), np.array(idx[::-1], dtype=np.int64)


def solve_datapath(
    function: str,
    layout: Layout | str = "paper",
    objective: str = "cr",
    domain: tuple | None = None,
    precision: str = "fp32",
    stride: int = 1,
    incumbent: np.ndarray | None = None,
    progress: Callable[[int, int], None] | None = None,
    max_ulp: int | None = None,
    on_pass: Callable[[int, int], None] | None = None,
    dtype: str = "fp16",
) -> SolveResult:
    """Optimal cutpoints of ``function`` for a datapath-exact ``objective`` (module docstring).

    ``on_pass(stride, cost)`` is told the end of each pass (cost: the best so far, the int key).
    ``max_ulp``: only tables whose every output is within that many ulp (None: no cap).
    ``stride > 1`` restricts cutpoints to every stride-th grid point (approximate, said in the
    result). ``incumbent``: FP16 (BF16) bits (uint16[K+1]) of a feasible cutpoint set (on the
    domain's grid) whose cost bounds the search; the answer is never worse than it.
    ``dtype``: the table's format, fp16 or bf16 (numerics §13; domain default: the function's
    ``direct`` domain of that format).
    The result's ``objective_value`` is the int cost as a float (for ``cr+maxulp`` the key
    ``count * 2^16 + max_ulp``; :func:`hw_sim.datapath_cost.decode_cost` splits it).
    """
    obj = objective_index(objective)
    if precision != "fp32":
        raise ValueError(
            f"objective {objective!r}: only precision fp32 is modelled, got {precision}"
        )
    if stride < 1:
        raise ValueError(f"stride: must be >= 1, got {stride}")
    f = get_function(function)
    lay = Layout.parse(layout) if isinstance(layout, str) else layout
    if f.user is not None and max(lay.bins) > 1:
        raise ValueError(
            f"objective {objective!r} with a user function needs single-bin layouts "
            f"(single:M), got {lay.name!r}"
        )
    if dtype not in DTYPES:
        raise ValueError(f"dtype: must be one of {', '.join(DTYPES)}, got {dtype!r}")
    lo, hi = domain if domain is not None else f.default_domain_for(dtype)
    x, _ = dtype_grid(lo, hi, dtype)
    if lay.cutpoints > x.size:
        raise ValueError(
            f"layout {lay.name!r} needs {lay.cutpoints} cutpoints but the domain has only "
            f"{x.size} grid points"
        )
    t0 = time.perf_counter()
    fx, ref = reference_bits(function, x, dtype)
    if not np.all(np.isfinite(fx)):
        raise ValueError(f"{function} is not finite everywhere on [{lo:g}, {hi:g}]")
    refo = ordered(ref).astype(np.int64)
    lutc = np.ascontiguousarray(ref, dtype=np.uint16)
    ok = is_finite_bits(lutc, dtype)
    grid = (x, refo, lutc, int(f.fn_id))
    L = clamp_costs(x, refo, lutc, ok, obj, False, max_ulp)
    R = clamp_costs(x, refo, lutc, ok, obj, True, max_ulp)
    bins = np.array(lay.bins, dtype=np.int64)
    threads = numba.get_num_threads()
    best, best_idx = int(NO_COST), None
    if incumbent is not None:
        bits = np.asarray(incumbent, dtype=np.uint16)
        xs = bits_to_f64(bits, dtype)
        pos = np.searchsorted(x, xs)
        if bits.shape != (lay.cutpoints,) or np.any(pos >= x.size) or np.any(x[pos] != xs):
            raise ValueError(
                f"incumbent: expected {lay.cutpoints} {dtype.upper()} cutpoints on the grid"
            )
        c = path_cost(pos, bins, x, refo, lutc, grid[3], obj, L, R, max_ulp, dtype)
        if c < NO_COST:
            best, best_idx = c, pos.astype(np.int64)
    n = x.size
    schedule = [s for s in COARSE_STRIDES if s > stride and n // s >= 4 * lay.cutpoints]
    for s in schedule + [stride]:
        cand = np.zeros(n, dtype=bool)
        cand[::s] = True
        cand[-1] = True
        last = s == stride
        c, idx = _dp(
            grid,
            bins,
            obj,
            cand & ok,
            best + 1,
            L,
            R,
            threads,
            progress if last else None,
            max_ulp,
            dtype,
        )
        if idx is not None and c <= best:
            best, best_idx = c, idx
        if on_pass is not None:
            on_pass(s, best)
    if best_idx is None:
        raise ValueError(
            f"no feasible cutpoints for layout {lay.name!r} on this domain"
            + ("" if max_ulp is None else f" within {max_ulp} ulp")
        )
    seconds = time.perf_counter() - t0
    return SolveResult(
        function,
        objective,
        lay,
        (float(x[0]), float(x[-1])),
        best_idx,
        f64_to_bits(np.asarray(x[best_idx], dtype=np.float64), dtype),
        float(best),
        seconds,
        int(n),
        stride,
        None,
        precision,
        True,
        dtype,
    )


def cost_note(result: SolveResult) -> str:
    """One line for the CLI: the cost in words."""
    from .datapath_cost import decode_cost

    parts = decode_cost(int(result.objective_value), result.objective)
    words = ", ".join(f"{k} {v}" for k, v in parts.items())
    return f"{words} over {result.grid_points} inputs" + (
        "" if result.stride == 1 else f" (thinned: stride {result.stride})"
    )
