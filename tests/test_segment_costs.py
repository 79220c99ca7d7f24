"""Segment costs of the solver's objective against independent oracles: the block kernel
(nli.dp_layer._chord_block) bit for bit against nli.objective's segment costs, the bin edges of
a B-bin segment (nli.format_rounding._ceil_index) against np.searchsorted, and the many-bin costs
against tests/naive.py's point errors and the per-bin bounds the DP layers use."""

import numpy as np
import pytest
from test_solver_fast import CASES, COST_ABS_TOL, COST_REL_TOL, _grid, close

from nli.dp_layer import CHUNK, _chord_block
from nli.functions import get_function
from nli.grid import fp16_grid
from nli.objective import _seg_cost, grid_arrays, objective_code


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
