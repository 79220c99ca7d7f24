"""The DP solver (nli/solver.py) and its segment costs (nli/objective.py) against
brute-force oracles in tests/naive.py: point-by-point costs, a plain DP over every
cutpoint choice, and exhaustive enumeration on tiny grids."""

import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from naive import naive_cost, naive_enumerate, naive_point_errors, naive_solve
import numpy as np
import pytest

from nli.functions import FUNCTIONS, get_function
from nli.grid import DomainError, fp16_grid
from nli.objective import clamp_costs, cost_of_cutpoints, grid_arrays, segment_cost
from nli.solver import Layout, solve, table_from_result

# Sums of |g|/w come from double-double prefix sums minus products: absolute noise
# ~1e-17 per unit of cost, relative noise far below 1e-9 on non-negligible costs.
COST_REL_TOL = 1e-9
COST_ABS_TOL = 1e-14
OBJECTIVES = ("paper", "mean", "max")


def close(a, b):
    return abs(a - b) <= COST_ABS_TOL + COST_REL_TOL * abs(b)


def _anchored_domain(name, n, where, offset):
    """A domain of n consecutive grid points of the function's default domain, placed
    around an inflection point (where = index into inflections) or at a relative spot."""
    f = get_function(name)
    x, _ = fp16_grid(*f.default_domain)
    ok = np.flatnonzero(np.abs(f(x)) < 65520)
    x = x[ok[0] : ok[-1] + 1]
    infl = [p for p in f.inflections if x[0] < p < x[-1]]
    if infl and where < len(infl):
        centre = int(np.searchsorted(x, infl[where]))
    else:
        centre = int(offset * (x.size - 1))
    start = min(max(centre - n // 2 + int((offset - 0.5) * n), 0), x.size - n)
    return float(x[start]), float(x[start + n - 1])


layouts = st.one_of(
    st.integers(2, 5).map(lambda m: f"single:{m}"),
    st.tuples(st.integers(0, 2), st.integers(2, 6)).map(lambda kb: f"two-level:{kb[0]}:{kb[1]}"),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(sorted(FUNCTIONS)),
    n=st.integers(12, 70),
    layout=layouts,
    where=st.integers(0, 3),
    offset=st.floats(0.0, 1.0),
    objective=st.sampled_from(OBJECTIVES),
    quantized=st.booleans(),
)
def test_solver_matches_brute_force_dp(name, n, layout, where, offset, objective, quantized):
    lo, hi = _anchored_domain(name, n, where, offset)
    lay = Layout.parse(layout)
    x, _ = fp16_grid(lo, hi)
    if lay.cutpoints > x.size:
        with pytest.raises(DomainError, match="cutpoints"):
            solve(name, lay, objective, domain=(lo, hi))
        return
    r = solve(name, lay, objective, domain=(lo, hi), quantized=quantized)
    fn = get_function(name)
    oracle = naive_solve(fn, x, lay.bins, objective, quantized)
    assert close(r.objective_value, oracle), (r.objective_value, oracle)
    if not quantized:  # the returned cutpoints really have the reported cost
        assert close(naive_cost(fn, x, list(r.cut_idx), lay.bins, objective), r.objective_value)
    assert np.array_equal(r.cutpoints.view(np.float16).astype(np.float64), x[r.cut_idx])


@pytest.mark.parametrize("objective", OBJECTIVES)
@pytest.mark.parametrize(
    "name,domain,bins",
    [
        ("silu", (-2.42, -2.38), (1, 3, 1)),  # across silu's inflection
        ("tanh", (-0.0003, 0.0004), (2, 2)),  # across 0, dense FP16 grid
        ("exp", (-3.0, -2.98), (1, 1, 1)),
    ],
)
def test_brute_force_dp_matches_enumeration(name, domain, bins, objective):
    """The DP oracle itself agrees with trying every cutpoint tuple (tiny grids)."""
    fn = get_function(name)
    x, _ = fp16_grid(*domain)
    x = x[:16]
    assert math.isclose(
        naive_solve(fn, x, bins, objective),
        naive_enumerate(fn, x, bins, objective),
        rel_tol=1e-12,
        abs_tol=1e-18,
    )
    r = solve(name, Layout("t", bins), objective, domain=(x[0], x[-1]))
    assert close(r.objective_value, naive_enumerate(fn, x, bins, objective))


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_segment_costs_on_the_full_grid(name):
    """O(1)/O(log N) segment and clamp costs equal point-by-point sums on the full default grid."""
    fn = get_function(name)
    x, _ = fp16_grid(*fn.default_domain)
    G = grid_arrays(fn, x)
    rng = np.random.default_rng(7)
    for trial in range(12):
        j = int(rng.integers(0, x.size - 2))
        k = int(min(x.size - 1, j + rng.integers(1, 3000 if trial % 2 else 200)))
        for B in (1, 32):
            q = naive_point_errors(fn, x, j, k, B, quantized=True)
            assert close(segment_cost(G, j, k, B, "paper", quantized=True), sum(q) / len(q))
            errs = naive_point_errors(fn, x, j, k, B)
            assert close(segment_cost(G, j, k, B, "paper"), sum(errs) / len(errs))
            assert close(segment_cost(G, j, k, B, "mean"), sum(errs) / x.size)
            assert close(segment_cost(G, j, k, B, "max"), max(errs))
    L, R = clamp_costs(G, "paper")
    fx = fn(x)
    w = np.maximum(np.abs(fx), 2.0**-14)
    for k in rng.integers(0, x.size, 5):
        assert close(L[k], float(np.mean(np.abs(fx[: k + 1] - fx[k]) / w[: k + 1])))
        assert close(R[k], float(np.mean(np.abs(fx[k:] - fx[k]) / w[k:])))


def test_cost_of_cutpoints_matches_naive():
    fn = get_function("gelu")
    x, _ = fp16_grid(-1.5, -1.3)
    G = grid_arrays(fn, x)
    idx, bins = [3, 40, 90, 150], [1, 4, 1]
    for obj in OBJECTIVES:
        assert close(cost_of_cutpoints(G, idx, bins, obj), naive_cost(fn, x, idx, bins, obj))


def test_thinning_is_explicit_and_reports_its_gap():
    exact = solve("sigmoid", "single:6", "paper", domain=(1.0, 4.0))
    thin = solve("sigmoid", "single:6", "paper", domain=(1.0, 4.0), stride=37, measure_gap=True)
    assert exact.stride == 1 and exact.gap is None and exact.meta()["thinning"] is None
    assert thin.meta()["thinning"] == 37
    assert thin.objective_value >= exact.objective_value - COST_ABS_TOL
    assert close(thin.gap, thin.objective_value - exact.objective_value)
    assert all(i % 37 == 0 or i == thin.grid_points - 1 for i in thin.cut_idx)


def test_fp16_tables_keep_mul_finite():
    # an interval of 32 bins narrower than 32/65504 would make RNE16(mul) overflow
    r = solve("tanh", "two-level:2:32", "paper", domain=(-0.001, 0.001), precision="fp16")
    c = r.cutpoints.view(np.float16).astype(np.float64)
    assert np.all(np.diff(c)[1:-1] >= 32 / 65504)
    t = table_from_result(r)  # validates (raises if any RNE16(mul) overflowed)
    assert t.precision == "fp16"


def test_cutpoints_avoid_points_where_f_overflows_fp16():
    r = solve("reciprocal", "single:3", "max", domain=(2.0**-24, 1e-4))
    assert r.cutpoints.view(np.float16).astype(np.float64)[0] >= 1 / 65520
    table_from_result(r)  # LUT finite


def test_layout_parsing():
    assert Layout.parse("paper").bins == (1,) + (32,) * 8 + (1,)
    assert Layout.parse("paper").entries == 259
    assert Layout.parse("single:259").bins == (1,) * 258
    assert Layout.parse("two-level:3:4").bins == (1, 4, 4, 4, 1)
    for bad in ("single:1", "single:x", "two-level:3", "tree", "two-level:2:0"):
        with pytest.raises(ValueError, match="layout"):
            Layout.parse(bad)


def test_result_meta_records_how_it_was_made():
    r = solve("silu", "single:4", "max", domain=(1.0, 2.0))
    m = table_from_result(r).meta
    assert m["objective"] == "max" and m["layout"] == "single:4" and m["domain"] == ["3c00", "4000"]
    assert m["cost"] == r.objective_value and m["solve_seconds"] >= 0 and m["grid_points"] == 1025


def test_cutpoints_cost_scores_off_grid_cutpoints_like_the_solver():
    from nli.score import cutpoints_cost

    fn = get_function("silu")
    x, _ = fp16_grid(-3.0, -1.0)
    r = solve("silu", "two-level:2:5", "paper", domain=(-3.0, -1.0))
    for obj in OBJECTIVES:
        G = grid_arrays(fn, x)
        exact = cost_of_cutpoints(G, r.cut_idx, r.layout.bins, obj)
        assert close(cutpoints_cost(fn, x, x[r.cut_idx], r.layout.bins, obj), exact)
    # cutpoints beyond the grid: empty clamp sets cost nothing
    c = np.array([-4.0, -2.0, 0.5])
    assert close(cutpoints_cost(fn, x, c, [1, 1], "paper"), naive_cost_offgrid(fn, x, c))


def naive_cost_offgrid(fn, x, c):
    f = fn(x)
    w = np.maximum(np.abs(f), 2.0**-14)
    total = 0.0
    for a, b in zip(c[:-1], c[1:]):
        m = (x >= a) & (x <= b)
        fa, fb = fn(np.array([a, b]))
        p = fa + (fb - fa) * (x[m] - a) / (b - a)
        total += float(np.mean(np.abs(f[m] - p) / w[m]))
    return total
