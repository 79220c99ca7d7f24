"""The solver's fast path (nli/dp_layer.py block kernel for single-bin layers) against the
plain DP (the general layer kernel only, itself checked against tests/naive.py in
tests/test_solver.py) and against nli.objective's segment costs, bit for bit."""
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
    ("tanh", (-2.0 ** -16, 2.0 ** -15)),
    ("sigmoid", (-2.0 ** -15, 2.0 ** -16)),
    ("exp", (-6.0, -2.0)),
    ("softplus", (1.0, 2.5)),
    ("reciprocal", (0.75, 2.0)),
]
# (objective, LUT rounding in the objective, minimum macro-interval width per bin)
SETTINGS = [("paper", False, 0.0), ("paper", False, 0.02), ("mean", False, 0.0), ("mean", True, 0.0),
            ("paper", True, 0.0), ("max", False, 0.0)]


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
        want = np.array([Dp[j] + _seg_cost(G.A, G.I, G.R, G.infl, G.C, j, k, 1, o, np.inf) for j in js])
        got = buf[np.array(js, dtype=np.int64) - j0] if js else np.zeros(0)
        assert np.array_equal(got, want)
