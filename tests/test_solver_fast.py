"""The solver's fast path (nli/dp_layer.py block kernel for single-bin layers) against the
plain DP (the general layer kernel only, itself checked against tests/naive.py in
tests/test_solver.py), and the exact cuts of the 32-bin layer kernels against every-pair minima
and the brute-force DP. The segment costs they use: tests/test_segment_costs.py."""

import numba
import numpy as np
import pytest

from nli.dp_zones import no_zones
from nli.functions import get_function
from nli.grid import fp16_grid
from nli.objective import _seg_cost, cost_of_cutpoints, grid_arrays, objective_code
from nli.solver import Layout, _solve_grid

COST_REL_TOL = 1e-9  # as tests/test_solver.py: float noise of the prefix-sum costs
COST_ABS_TOL = 1e-14

# small domains (<= 1537 grid points); most span an inflection point (silu +-2.4,
# gelu -sqrt 2, tanh and sigmoid 0: around 0 only the subnormal range is small)
CASES = [
    ("silu", (-3.0, -1.75)),
    ("silu", (2.0, 3.5)),
    ("gelu", (-1.6, -1.2)),
    ("tanh", (-(2.0**-16), 2.0**-15)),
    ("sigmoid", (-(2.0**-15), 2.0**-16)),
    ("exp", (-6.0, -2.0)),
    ("softplus", (1.0, 2.5)),
    ("reciprocal", (0.75, 2.0)),
]
# (objective, LUT rounding in the objective, minimum macro-interval width per bin)
SETTINGS = [
    ("paper", False, 0.0),
    ("paper", False, 0.02),
    ("mean", False, 0.0),
    ("mean", True, 0.0),
    ("paper", True, 0.0),
    ("max", False, 0.0),
]


def NONE(n, end):
    """The zone arguments of a layer kernel on a grid without saturation zones (nli.dp_zones):
    no zone partner, and the scan over every j < k (forward, "lo") or k > j (backward, "hi")."""
    Z = no_zones(n)
    return np.full(n, -1, dtype=np.int64), getattr(Z, end)


def close(a, b):
    return abs(a - b) <= COST_ABS_TOL + COST_REL_TOL * abs(b)


def _grid(name, domain):
    fn = get_function(name)
    x, _ = fp16_grid(*domain)
    G = grid_arrays(fn, x)
    return fn, x, G, np.abs(G.f) < 65520


@pytest.mark.parametrize("name,domain", CASES)
@pytest.mark.parametrize("layout", ["single:5", "two-level:2:3"])
def test_fast_dp_equals_plain_dp(name, domain, layout):
    """Same optimum cost, and cutpoints whose cost is that optimum, for every objective."""
    fn, x, G, ok = _grid(name, domain)
    bins = Layout.parse(layout).bins
    for objective, quantized, minw in SETTINGS:
        o = objective_code(objective, quantized)
        mw = [minw * b for b in bins]  # fp16 tables: a minimum macro-interval width
        plain, plain_idx = _solve_grid(G, bins, o, 1, ok, mw, None, fast=False)
        fast, idx = _solve_grid(G, bins, o, 1, ok, mw, None, fast=True)
        assert (plain_idx is None) == (idx is None)
        if idx is None:
            continue
        assert close(fast, plain), (objective, quantized, minw, fast, plain)
        assert close(cost_of_cutpoints(G, idx, bins, objective, quantized), plain)
        assert np.all(np.diff(x[idx]) >= np.array(mw))


def test_fast_dp_equals_plain_dp_across_two_inflections():
    """silu on [-2.6, 2.6] holds both inflection points (three convexity runs) on a thinned
    grid of real FP16 values (every 64th point keeps the test small; single-bin layouts
    never look a point up by its FP16 ordinal, so a thinned grid is a valid grid for them)."""
    fn = get_function("silu")
    x, _ = fp16_grid(-2.6, 2.6)
    x = x[::64]
    G = grid_arrays(fn, x)
    ok = np.ones(x.size, dtype=bool)
    assert G.run_lo.size == 3
    for objective in ("paper", "mean"):
        o = objective_code(objective)
        plain, _ = _solve_grid(G, (1,) * 6, o, 1, ok, [0.0] * 6, None, fast=False)
        fast, idx = _solve_grid(G, (1,) * 6, o, 1, ok, [0.0] * 6, None, fast=True)
        assert close(fast, plain)
        assert close(cost_of_cutpoints(G, idx, (1,) * 6, objective), plain)


@pytest.mark.parametrize(
    "name,domain", [("silu", (-3.0, -1.75)), ("gelu", (-1.6, -1.2)), ("exp", (-6.0, -4.0))]
)
@pytest.mark.parametrize("layout", ["paper", "two-level:3:32"])
def test_fast_dp_equals_plain_dp_with_32_bin_layers(name, domain, layout):
    """Paper-like layouts (32-bin layers between single-bin ones): fast DP == plain DP."""
    fn, x, G, ok = _grid(name, domain)
    bins = Layout.parse(layout).bins
    for objective in ("paper", "mean"):
        o = objective_code(objective)
        mw = [0.0] * len(bins)
        plain, plain_idx = _solve_grid(G, bins, o, 1, ok, mw, None, fast=False)
        fast, idx = _solve_grid(G, bins, o, 1, ok, mw, None, fast=True)
        assert plain_idx is not None and idx is not None
        assert close(fast, plain), (objective, fast, plain)
        assert close(cost_of_cutpoints(G, idx, bins, objective), plain)


@numba.njit(cache=False)
def _every_pair_cost(A, RID, R, infl, C, Dp, B, code):
    """float64[N, N]: cost[j, k] = _seg_cost(j, k) (no limit) where j < k and Dp[j] is finite,
    else inf; a plain loop, compiled only to keep the test fast."""
    n = Dp.size
    cost = np.full((n, n), np.inf)
    for k in range(n):
        for j in range(k):
            if np.isfinite(Dp[j]):
                cost[j, k] = _seg_cost(A, RID, R, infl, C, j, k, B, code, np.inf)
    return cost


@pytest.mark.parametrize(
    "name,domain,quantized",
    [
        ("silu", (-3.0, -1.75), False),
        ("gelu", (-1.6, -0.75), False),
        ("tanh", (-(2.0**-16), 2.0**-15), False),
        # LUT rounding: every bin sum is O(log N), so smaller grids keep the brute force quick
        ("silu", (-2.75, -2.0), True),
        ("tanh", (-(2.0**-16), 2.0**-15), True),
    ],
)
@pytest.mark.parametrize("objective", ["paper", "mean"])
def test_general_layer_equals_every_pair_minimum(name, domain, quantized, objective):
    """nli.dp_layer._layer (which skips pairs by Dp alone, by early exit, by the
    rightmost-bin bound, by the hot-bin bound and, with LUT rounding, by the O(1) per-bin
    lower bounds) against min over every pair of Dp[j] + cost(j, k, B), bit for bit."""

    from nli.dp_layer import _layer

    fn, x, G, ok = _grid(name, domain)
    o = objective_code(objective, quantized)
    rng = np.random.default_rng(7)
    for B in (32, 3, 1):
        c0 = _seg_cost(G.A, G.I, G.R, G.infl, G.C, 0, G.n // 8, B, o, np.inf)
        Dp = np.where(rng.random(G.n) < 0.9, rng.random(G.n) * 4 * c0, np.inf)
        cost = _every_pair_cost(G.A, G.I, G.R, G.infl, G.C, Dp, B, o)  # cost[j, k]
        want = np.min(Dp[:, None] + cost, axis=0)  # (n, n) -> (n,)
        cand = np.arange(G.n, dtype=np.int64)
        live = cand[np.isfinite(Dp)]
        out, arg = np.full(G.n, np.inf), np.full(G.n, -1, dtype=np.int64)
        _layer(
            G.A,
            G.I,
            G.R,
            G.infl,
            G.C,
            Dp,
            B,
            o,
            cand,
            live,
            numba.get_num_threads(),
            np.inf,
            np.full(G.n, np.inf),
            0.0,
            *NONE(G.n, "lo"),
            out,
            arg,
        )
        assert np.array_equal(out, want), (B, np.flatnonzero(out != want)[:5])
        has = arg >= 0
        assert np.array_equal(Dp[arg[has]] + cost[arg[has], np.flatnonzero(has)], want[has])


@pytest.mark.parametrize(
    "name,domain,quantized",
    [
        ("silu", (-3.0, -1.75), False),
        ("tanh", (-(2.0**-16), 2.0**-15), False),
        ("silu", (-2.75, -2.0), True),
        ("tanh", (-(2.0**-16), 2.0**-15), True),
    ],
)
@pytest.mark.parametrize("objective", ["paper", "mean", "max"])
def test_backward_layer_equals_every_pair_minimum(name, domain, quantized, objective):
    """nli.dp_layer_back._layer_back (skips by Eb alone, by the hot-bin bound, by early exit)
    against min over every pair of cost(j, k, B) (+ | max) Eb[k], bit for bit; and under a
    per-j cap it keeps exactly the minima below the cap (the same for the forward layer)."""
    from nli.dp_layer import _layer
    from nli.dp_layer_back import _layer_back

    fn, x, G, ok = _grid(name, domain)
    o = objective_code(objective, quantized)
    mx = objective == "max"
    rng = np.random.default_rng(11)
    T = numba.get_num_threads()
    idx = np.arange(G.n, dtype=np.int64)
    for B in (32, 3, 1):
        c0 = _seg_cost(G.A, G.I, G.R, G.infl, G.C, 0, G.n // 8, B, o, np.inf)
        Eb = np.where(rng.random(G.n) < 0.9, rng.random(G.n) * 4 * c0, np.inf)
        cost = _every_pair_cost(G.A, G.I, G.R, G.infl, G.C, np.ones(G.n), B, o)  # cost[j, k]
        want = np.min(np.maximum(cost, Eb[None, :]) if mx else cost + Eb[None, :], axis=1)
        cap = np.where(rng.random(G.n) < 0.5, np.inf, want * rng.uniform(0.5, 1.5, G.n))
        for c in (np.full(G.n, np.inf), cap):
            out, arg = np.full(G.n, np.inf), np.full(G.n, -1, dtype=np.int64)
            live = idx[np.isfinite(Eb)]
            _layer_back(
                G.A, G.I, G.R, G.infl, G.C, Eb, B, o, idx, live, T, np.inf, c, 0.0,
                *NONE(G.n, "hi"), out, arg,
            )  # fmt: skip
            exp = np.where(want < c, want, np.inf)
            assert np.array_equal(out, exp), (B, np.flatnonzero(out != exp)[:5])
            has = arg >= 0
            got = cost[np.flatnonzero(has), arg[has]]
            got = np.maximum(got, Eb[arg[has]]) if mx else got + Eb[arg[has]]
            assert np.array_equal(got, exp[has])
        # the forward layer under a per-k cap: Dp = Eb as prefix costs
        costT = _every_pair_cost(G.A, G.I, G.R, G.infl, G.C, Eb, B, o)
        fwant = np.min(np.maximum(Eb[:, None], costT) if mx else Eb[:, None] + costT, axis=0)
        fcap = np.where(rng.random(G.n) < 0.5, np.inf, fwant * rng.uniform(0.5, 1.5, G.n))
        out, arg = np.full(G.n, np.inf), np.full(G.n, -1, dtype=np.int64)
        _layer(
            G.A, G.I, G.R, G.infl, G.C, Eb, B, o, idx, live, T, np.inf, fcap, 0.0,
            *NONE(G.n, "lo"), out, arg,
        )  # fmt: skip
        assert np.array_equal(out, np.where(fwant < fcap, fwant, np.inf))


class _KinkedS:
    """A convex-then-concave test function (duck-types nli.functions.Function for the cost
    kernels of single-bin segments, which evaluate f only at grid points): with u = (x - p) / s,
    f = 10 - m u for u < 0 (linear, so convex) and 10 - u^2 for u >= 0 (concave); the one
    inflection point is the kink at p. The offset 10 keeps the weights w = |f| near 10."""

    fn_id = 0  # never evaluated: single-bin segments use f at grid points only

    def __init__(self, p, s, m):
        self.p, self.s, self.m = p, s, m
        self.inflections = (p,)

    def __call__(self, x):
        u = (np.asarray(x, dtype=np.float64) - self.p) / self.s
        return np.where(u < 0, 10.0 - self.m * u, 10.0 - u * u)


@pytest.mark.parametrize("objective", ["paper", "mean"])
def test_rightmost_bin_bound_is_not_used_across_an_inflection(objective):
    """Guards the ``j >= jrb`` condition of the rightmost-bin skip in nli.dp_layer._layer.

    The skip's lemma (a wider chord lies farther from f) needs the rightmost bin of j in one
    convexity region. Here a chord from the steep linear piece across the kink at p to x_k
    passes through the parabola and lies nearer to it than the chord from a point past p
    does, so cost(j, k) < rb for some j < jrb: applying the skip to every j drops the optimal
    pair and the plain DP's cost rises by ~30% (paper) / ~7% (mean). On the FP16 grids of
    silu, gelu, tanh and sigmoid scanned (every pair j < jrb <= j0 < k, B = 1..8) cost(j, k)
    never fell below rb beyond float noise (a chord across their inflection points lies
    farther; with B >= 2 every other bin of j adds error too), hence the synthetic function
    and a single-bin layout (fast=False: those layers go through the general kernel).
    Checked against tests/naive.py's brute-force DP; 65 grid points."""
    from naive import naive_solve

    fn = _KinkedS(264.1, 8.0, 8.0)
    x, _ = fp16_grid(256.0, 272.0)
    G = grid_arrays(fn, x)
    bins = Layout.parse("single:3").bins
    plain, idx = _solve_grid(
        G,
        bins,
        objective_code(objective),
        1,
        np.ones(x.size, dtype=bool),
        [0.0] * len(bins),
        None,
        fast=False,
    )
    want = naive_solve(fn, x, bins, objective)
    assert close(plain, want), (plain, want)
    assert close(cost_of_cutpoints(G, idx, bins, objective), want)


@pytest.mark.parametrize("objective", ["paper", "mean", "max"])
def test_hot_bin_skip_keeps_the_brute_force_optimum(objective):
    """Guards the hot-bin skip of nli.dp_layer._layer (``if hot and hotx == hotx``): the one
    bin of j computed alone must never exceed what the full segment cost adds for it.

    silu around its inflection point 2.3994 with two 2-bin layers: one bin of a segment holds
    most of its error (all of it under max, where the worst bin is the cost), so a bin value
    that overshoots (e.g. 1.5x, in _bin_raw or where _layer uses it) rules out the optimal
    pair and the plain DP's cost rises by 3% (paper), 7% (mean), 21% (max). The
    kernel-level check of _bin_raw alone (test_one_bin_alone_is_what_the_segment_sum_adds)
    does not see a wrong use of it in _layer; this does. 70 grid points, tests/naive.py's
    brute-force DP as the oracle."""
    from naive import naive_solve

    fn, x, G, ok = _grid("silu", (2.33203125, 2.466796875))
    assert x.size == 70 and G.infl.size == 1
    bins = Layout.parse("two-level:2:2").bins
    plain, idx = _solve_grid(
        G, bins, objective_code(objective), 1, ok, [0.0] * len(bins), None, fast=False
    )
    want = naive_solve(fn, x, bins, objective)
    assert close(plain, want), (plain, want)
    assert close(cost_of_cutpoints(G, idx, bins, objective), want)
