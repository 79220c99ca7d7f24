"""Saturation zones (nli/dp_zones.py): where the LUT holds one value, the mean + LUT-rounding
cost of a macro interval is a difference of the zone's prefix sums, checked against the
point-by-point errors of tests/naive.py; the layer kernels that use a zone's running minimum
against every-pair minima; and whole solves against the brute-force DP."""

from naive import naive_point_errors, naive_solve
import numba
import numpy as np
import pytest

from nli.dp_layer import _layer
from nli.dp_layer_back import _layer_back
import nli.dp_zones as dz
from nli.functions import get_function
from nli.grid import dtype_grid
from nli.grid_sums import LB_NOISE
from nli.objective import _seg_cost, grid_arrays, objective_code
from nli.solver import Layout, solve

MEAN_LUT = objective_code("mean", True)
COST_REL_TOL = 1e-9  # as tests/test_solver.py: float noise of the prefix-sum costs
# (function, domain, grid format, the saturated LUT value of the zone the domain holds)
TAILS = [
    ("sigmoid", (7.0, 12.0), "fp16", 1.0),
    ("exp", (-24.0, -14.0), "fp16", 0.0),
    ("tanh", (-9.0, -3.0), "fp16", -1.0),
    ("gelu_tanh", (-9.0, -4.0), "fp16", 0.0),
    ("sigmoid", (4.0, 40.0), "bf16", 1.0),
]


def _noise(G, Z, k, c):
    """What rounding allows between two computations of a cost inside k's zone: LB_NOISE (32
    float64 ulps) of the magnitude of the sums that cancel in it, over the zone up to k."""
    a = int(Z.lo[k])
    return LB_NOISE * ((k - a + 1) + abs(c) * float(np.sum(G.iw[a : k + 1]))) / G.n


def _grid(name, domain, fmt):
    x, _ = dtype_grid(*domain, fmt)
    return get_function(name), x, grid_arrays(get_function(name), x, fmt)


@pytest.mark.parametrize("name,domain,fmt,c", TAILS)
def test_zone_costs_are_prefix_differences(name, domain, fmt, c):
    """Inside a zone every bin edge's LUT value is c, and a macro interval's cost (point by
    point, tests/naive.py) is (U(k) - U(j-1)) / N; the cost kernel agrees to ZONE_REL_TOL."""
    fn, x, G = _grid(name, domain, fmt)
    Z = dz.saturation_zones(G)
    zones = np.unique(Z.zid[Z.zid >= 0])
    assert zones.size >= 1
    rng = np.random.default_rng(3)
    for z in zones:
        a, b = int(Z.lo[Z.zid == z][0]), int(Z.hi[Z.zid == z][0])
        assert b - a + 1 >= dz.ZONE_MIN
        dev = G.f[a : b + 1] - c
        assert np.all(dev >= 0) or np.all(dev <= 0)  # one sign
        steps = np.diff(G.f[a : b + 1])
        assert np.all(steps >= 0) or np.all(steps <= 0)  # monotone
        for _ in range(12):
            j, k = sorted(rng.choice(np.arange(a, b + 1), 2, replace=False))
            for B in (1, 3, 32):
                want = sum(naive_point_errors(fn, x, j, k, B, quantized=True, fmt=fmt)) / G.n
                got = (Z.u[k] - Z.um1[j]) / G.n
                assert abs(got - want) <= COST_REL_TOL * want + _noise(G, Z, k, c), (z, j, k, B)
                kern = _seg_cost(G.A, G.I, G.R, G.infl, G.C, j, k, B, MEAN_LUT, np.inf)
                # both round sums over the zone (f/w and c/w apart, then their difference)
                assert abs(kern - got) <= _noise(G, Z, k, c), (z, j, k, B)
    assert np.all(Z.zid[Z.lo] == Z.zid) and np.all(Z.zid[Z.hi] == Z.zid)


def test_no_zone_where_f_does_not_saturate():
    assert np.all(dz.saturation_zones(_grid("reciprocal", (0.75, 2.0), "fp16")[2]).zid < 0)


def test_runs_split_where_f_turns_or_crosses_the_lut_value():
    """A run of one LUT value splits where f changes direction or f - c changes sign, and
    keeps only pieces of at least zmin points."""
    f = np.array([0.1, 0.2, 0.3, 0.2, 0.1, -0.1, -0.2, -0.3, -0.4, 0.0, 0.0, 0.0]) * 1e-9
    q = np.zeros(f.size)
    ok = np.ones(f.size, dtype=bool)
    rows = np.zeros((f.size, 2), dtype=np.int64)
    n = dz._runs(f, q, ok, 2, rows)
    got = [tuple(r) for r in rows[:n]]
    assert got == [(0, 2), (3, 4), (5, 8), (9, 11)]
    ok[10] = False
    n = dz._runs(f, q, ok, 2, rows)
    assert [tuple(r) for r in rows[:n]] == [(0, 2), (3, 4), (5, 8)]


def _every_pair(G, D, B, forward):
    """(cost[j, k] for j < k with a finite D at the layer's input end, else inf)."""
    n = G.n
    cost = np.full((n, n), np.inf)
    for k in range(n):
        for j in range(k):
            if np.isfinite(D[j] if forward else D[k]):
                cost[j, k] = _seg_cost(G.A, G.I, G.R, G.infl, G.C, j, k, B, MEAN_LUT, np.inf)
    return cost


@pytest.mark.parametrize("name,domain", [("sigmoid", (7.5, 9.5)), ("exp", (-18.5, -16.5))])
def test_zone_layers_match_every_pair_minimum(name, domain):
    """With zones, a layer's value is a real pair's computed cost (its argmin reproduces it to
    the bit), never below the every-pair minimum and at most ZONE_REL_TOL above it."""
    fn, x, G = _grid(name, domain, "fp16")
    Z = dz.saturation_zones(G)
    assert np.any(Z.zid >= 0) and np.any(Z.zid < 0)  # the domain crosses the zone's end
    rng = np.random.default_rng(5)
    idx = np.arange(G.n, dtype=np.int64)
    T = numba.get_num_threads()
    for B in (32, 1):
        c0 = _seg_cost(G.A, G.I, G.R, G.infl, G.C, 0, G.n // 8, B, MEAN_LUT, np.inf)
        D = np.where(rng.random(G.n) < 0.9, rng.random(G.n) * 4 * c0, np.inf)
        live = idx[np.isfinite(D)]
        for forward in (True, False):
            cost = _every_pair(G, D, B, forward)
            tot = D[:, None] + cost if forward else cost + D[None, :]
            want = np.min(tot, axis=0 if forward else 1)
            zarg = dz.zone_args(Z, G.x, D, live, idx, forward, 0.0)
            assert np.any(zarg >= 0)
            out, arg = np.full(G.n, np.inf), np.full(G.n, -1, dtype=np.int64)
            kernel, end = (_layer, Z.lo) if forward else (_layer_back, Z.hi)
            kernel(
                G.A, G.I, G.R, G.infl, G.C, D, B, MEAN_LUT, idx, live, T, np.inf,
                np.full(G.n, np.inf), 0.0, zarg, end, out, arg,
            )  # fmt: skip
            fin = np.isfinite(want)
            assert np.array_equal(np.isfinite(out), fin)
            assert np.all(out[fin] >= want[fin])
            tol = np.array([_noise(G, Z, i, float(np.max(np.abs(G.f)))) for i in range(G.n)])
            assert np.all(out[fin] - want[fin] <= 2 * tol[fin])
            pos = np.flatnonzero(fin)
            pair = tot[arg[pos], pos] if forward else tot[pos, arg[pos]]
            assert np.array_equal(pair, out[pos])


@pytest.mark.parametrize(
    "name,domain,layout",
    [
        ("sigmoid", (8.0, 8.6), "two-level:2:3"),
        ("exp", (-17.6, -17.0), "single:4"),
        ("tanh", (-4.25, -4.0), "two-level:1:4"),
    ],
)
def test_solve_with_zones_matches_brute_force(monkeypatch, name, domain, layout):
    """Whole mean + LUT-rounding solves on grids with a zone (ZONE_MIN lowered so that small
    grids hold one): the brute-force DP's optimum (tests/naive.py)."""
    monkeypatch.setattr(dz, "ZONE_MIN", 8)
    fn, x, G = _grid(name, domain, "fp16")
    assert 30 <= x.size <= 80 and np.any(dz.saturation_zones(G).zid >= 0)
    lay = Layout.parse(layout)
    r = solve(name, lay, "mean", domain=domain, quantized=True)
    want = naive_solve(fn, x, lay.bins, "mean", True)
    assert abs(r.objective_value - want) <= COST_REL_TOL * want
