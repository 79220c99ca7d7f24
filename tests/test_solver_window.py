"""The window pass (nli.solver._window_pass): the tighter bound it gives the last pass changes
neither the optimum nor the cutpoints, its cost is its cutpoints' own, and it does tighten."""

import numpy as np
import pytest
from test_solver_fast import CASES, COST_ABS_TOL, SETTINGS, _grid, close

from nli import solver
from nli.objective import cost_of_cutpoints, objective_code
from nli.solver import Layout, _solve_grid

LAYOUT = "single:5"  # 4 bins: a thinned pass runs first on most of the grids of CASES


def _spy(monkeypatch):
    """Record every window pass as (cost in, cost out, idx out)."""
    seen, real = [], solver._window_pass

    def spy(G, bins, obj, cand, cost, idx, clamps, minw):
        c, ix = real(G, bins, obj, cand, cost, idx, clamps, minw)
        seen.append((cost, c, ix))
        return c, ix

    monkeypatch.setattr(solver, "_window_pass", spy)
    return seen


@pytest.mark.parametrize("name,domain", CASES)
def test_window_pass_changes_neither_optimum_nor_cutpoints(name, domain, monkeypatch):
    fn, x, G, ok = _grid(name, domain)
    bins = Layout.parse(LAYOUT).bins
    seen = _spy(monkeypatch)
    for objective, quantized, minw in SETTINGS:
        o = objective_code(objective, quantized)
        mw = [minw * b for b in bins]
        seen.clear()
        cost, idx = _solve_grid(G, bins, o, 1, ok, mw, None)
        ran = list(seen)
        with monkeypatch.context() as m:
            m.setattr(solver, "WINDOW_ROUNDS", 0)  # the window pass returns its input
            plain, plain_idx = _solve_grid(G, bins, o, 1, ok, mw, None)
        coarse = solver.COARSE_STRIDES["max" if objective == "max" else "sum"]
        if idx is None:  # no feasible cutpoints (minw too wide for the domain)
            assert plain_idx is None and not ran
            continue
        assert len(ran) == any(x.size // s >= 4 * (len(bins) + 1) for s in coarse)
        for c_in, c_out, ix in ran:
            assert c_out <= c_in
            assert c_out >= cost
            assert close(cost_of_cutpoints(G, ix, bins, objective, quantized), c_out)
        if plain <= COST_ABS_TOL:  # tied optima below the prefix sums' float noise
            continue
        assert cost == plain, (objective, quantized, minw)
        assert np.array_equal(idx, plain_idx), (objective, quantized, minw, idx, plain_idx)


def test_window_pass_tightens_the_bound(monkeypatch):
    """On a grid where the thinned optimum is not the exact one, the window pass finds a
    cheaper feasible answer."""
    fn, x, G, ok = _grid("silu", (2.0, 3.5))
    bins = Layout.parse(LAYOUT).bins
    seen = _spy(monkeypatch)
    o = objective_code("mean", True)
    cost, _ = _solve_grid(G, bins, o, 1, ok, [0.0] * len(bins), None)
    ((c_in, c_out, _),) = seen
    assert cost <= c_out < c_in
