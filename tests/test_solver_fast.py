"""The solver's fast path (nli/dp_layer.py block kernel for single-bin layers) against the
plain DP (the general layer kernel only, itself checked against tests/naive.py in
tests/test_solver.py) and against nli.objective's segment costs, bit for bit."""

import numba
import numpy as np
import pytest

from nli.dp_layer import CHUNK, _chord_block
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


@pytest.mark.parametrize("name,domain", CASES + [("silu", (-2.6, -2.2))])
@pytest.mark.parametrize("objective", ["paper", "mean"])
def test_chord_block_is_bit_identical_to_seg_cost(name, domain, objective):
    """Inside one convexity region the vectorized block gives Dp[j] + cost(j, k, 1) exactly."""
    fn, x, G, ok = _grid(name, domain)
    o = objective_code(objective)
    rng = np.random.default_rng(3)
    Dp = rng.random(G.n) * 1e-3
    inv_n = 1.0 / G.n if objective == "mean" else 0.0
    buf, slope = np.empty(CHUNK), np.empty(CHUNK)
    for _ in range(20):
        k = int(rng.integers(1, G.n))
        j0 = int(rng.integers(0, k))
        m = min(CHUNK, k - j0)
        js = [j for j in range(j0, j0 + m) if not any(x[j] < p < x[k] for p in fn.inflections)]
        _chord_block(G.A, Dp, j0, m, k, k, inv_n, buf, slope)
        want = np.array(
            [Dp[j] + _seg_cost(G.A, G.I, G.R, G.infl, G.C, j, k, 1, o, np.inf) for j in js]
        )
        got = buf[np.array(js, dtype=np.int64) - j0] if js else np.zeros(0)
        assert np.array_equal(got, want)


# ----------------------------------------------------------------------------- many-bin segments
# The bin edges of a B-bin segment are located with _ceil_index (integer ops on the float64
# bit pattern); these pin it and the many-bin costs that use it to independent oracles.


def test_ceil_index_matches_searchsorted_one_ulp_around_every_encoding():
    """Every finite FP16 value, its float64 neighbours one ulp either side, midpoints,
    values past the FP16 range and random reals, on grids that do and do not span 0."""
    from nli.format_rounding import _ceil_index
    from nli.grid import all_finite_f16_bits, f16_bits_to_f64

    v = f16_bits_to_f64(all_finite_f16_bits())
    rng = np.random.default_rng(5)
    probes = np.concatenate(
        [
            v,
            np.nextafter(v, np.inf),
            np.nextafter(v, -np.inf),
            (v[1:] + v[:-1]) / 2,
            [0.0, -0.0, 65520.0, -65520.0, 1e9, -1e9, 2.0**-25, -(2.0**-25)],
            rng.standard_normal(20000) * 10.0 ** rng.uniform(-9, 5, 20000),
        ]
    )
    for domain in [(-65504.0, 65504.0), (-16.0, -0.5), (2.0**-20, 3.0)]:
        x, _ = fp16_grid(*domain)
        G = grid_arrays(get_function("silu"), x)
        got = np.array([_ceil_index(G.ord0, G.n, t, 0) for t in probes])
        assert np.array_equal(got, np.searchsorted(x, probes, side="left")), domain


@pytest.mark.parametrize(
    "name,domain",
    [
        ("silu", (-65504.0, 65504.0)),
        ("silu", (-16.0, -0.5)),
        ("gelu", (-3.0, 2.0)),
        ("exp", (-6.0, -2.0)),
    ],
)
def test_32_bin_segment_cost_matches_point_by_point(name, domain):
    """segment_cost with 32 bins against tests/naive.py's point errors, on random
    segments (spanning 0 and inflection points on the silu / gelu grids)."""
    from naive import naive_point_errors

    from nli.objective import segment_cost

    fn, x, G, ok = _grid(name, domain)
    rng = np.random.default_rng(11)
    for _ in range(12):
        j = int(rng.integers(0, G.n - 40))
        k = int(min(G.n - 1, j + 40 + rng.integers(0, 3000)))
        for objective in ("paper", "max"):
            err = naive_point_errors(fn, x, j, k, 32)
            want = max(err) if objective == "max" else sum(err) / len(err)
            assert close(segment_cost(G, j, k, 32, objective), want), (j, k, objective)


@pytest.mark.parametrize(
    "name,domain", [("silu", (-65504.0, 65504.0)), ("gelu", (-3.0, 2.0)), ("exp", (-6.0, -2.0))]
)
def test_one_bin_alone_is_what_the_segment_sum_adds(name, domain):
    """nli.objective._bin_raw (the hot-bin lower bound of the DP layer) per bin m: the bins
    together give the segment's raw sum (max), and each is at most it, for every objective
    with and without LUT rounding, 32- and 3-bin segments (across 0 and inflections)."""
    from nli.objective import _bin_raw, _seg_raw

    fn, x, G, ok = _grid(name, domain)
    rng = np.random.default_rng(13)
    for _ in range(10):
        j = int(rng.integers(0, G.n - 40))
        k = int(min(G.n - 1, j + 40 + rng.integers(0, 5000)))
        for B in (32, 3):
            for use_max in (False, True):
                for quant in (False, True):
                    raw = _seg_raw(G.A, G.I, G.R, G.infl, G.C, j, k, B, use_max, quant, np.inf)[0]
                    bins = [
                        _bin_raw(G.A, G.I, G.R, G.infl, G.C, j, k, B, m, use_max, quant, np.inf)
                        for m in range(1, B + 1)
                    ]
                    assert close(max(bins) if use_max else sum(bins), raw), (
                        j,
                        k,
                        B,
                        use_max,
                        quant,
                    )
                    assert max(bins) <= raw * (1 + COST_REL_TOL) + COST_ABS_TOL


@pytest.mark.parametrize(
    "name,domain", [("silu", (-65504.0, 65504.0)), ("tanh", (-4.0, 4.0)), ("exp", (-6.0, -2.0))]
)
def test_lut_rounding_lower_bounds_and_early_exit(name, domain):
    """With LUT rounding (sum objectives): nli.objective._bin_lb (O(1) per run) never exceeds
    the bin's exact sum, and _seg_raw with a limit returns the exact sum, bit for bit, when it
    is below the limit, else a value >= the limit (its per-bin lower bounds may stop it first)."""
    from nli.objective import _bin_lb, _bin_raw, _seg_raw

    fn, x, G, ok = _grid(name, domain)
    rng = np.random.default_rng(17)
    for _ in range(12):
        j = int(rng.integers(0, G.n - 40))
        k = int(min(G.n - 1, j + 40 + rng.integers(0, 5000)))
        for B in (32, 3, 1):
            raw = _seg_raw(G.A, G.I, G.R, G.infl, G.C, j, k, B, False, True, np.inf)[0]
            for m in range(1, B + 1):
                lb = _bin_lb(G.A, G.I, G.R, G.C, j, k, B, m, True)
                exact = _bin_raw(G.A, G.I, G.R, G.infl, G.C, j, k, B, m, False, True, np.inf)
                assert lb <= exact, (j, k, B, m)
            for frac in (0.3, 0.9, 0.999, 1.0, 1.001, 2.0):
                lim = raw * frac
                got = _seg_raw(G.A, G.I, G.R, G.infl, G.C, j, k, B, False, True, lim)[0]
                if raw < lim:
                    assert got == raw, (j, k, B, frac)
                else:
                    assert got >= lim, (j, k, B, frac)


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
                G.A, G.I, G.R, G.infl, G.C, Eb, B, o, idx, live, T, np.inf, c, 0.0, out, arg
            )
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
        _layer(G.A, G.I, G.R, G.infl, G.C, Eb, B, o, idx, live, T, np.inf, fcap, 0.0, out, arg)
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
