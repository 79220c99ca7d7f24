"""The cutpoints the DP returns do not depend on the thread count its layers ran on
(nli/dp_path.py); for a resumed solve see tests/test_solve_checkpoint.py."""

import numba
import numpy as np
import pytest
from test_solver_fast import CASES, COST_ABS_TOL, SETTINGS, _grid

from nli.functions import get_function
from nli.objective import objective_code
from nli.solver import Layout, _solve_grid, solve

TWO_THREADS = pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs 2 threads")


def _threads(threads, f, *args, **kw):
    before = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        return f(*args, **kw)
    finally:
        numba.set_num_threads(before)


@TWO_THREADS
def test_minimax_ties_resolve_the_same_on_1_and_2_threads():
    """gelu's BF16 paper layout under ``max``, thinned: many cutpoints reach the same maximum,
    and the layer kernels' own argmins put one cutpoint 32 BF16 steps apart on 1 and 2
    threads (measured before the canonical path)."""
    dom = get_function("gelu").bf16_domains["direct"]
    kw = {"domain": dom, "stride": 32, "dtype": "bf16"}
    one = _threads(1, solve, "gelu", "paper", "max", **kw)
    two = _threads(2, solve, "gelu", "paper", "max", **kw)
    assert one.objective_value == two.objective_value
    assert np.array_equal(one.cut_idx, two.cut_idx), (one.cut_idx, two.cut_idx)


@TWO_THREADS
@pytest.mark.parametrize("name,domain", CASES)
def test_cutpoints_do_not_depend_on_threads(name, domain):
    """Every objective, both kernels. Not where the optimum is below the prefix sums' float
    noise (COST_ABS_TOL: sigmoid's subnormal domain, 2e-17), where the minimum itself is noise."""
    fn, x, G, ok = _grid(name, domain)
    compared = 0
    for layout in ("single:5", "two-level:2:3"):
        bins = Layout.parse(layout).bins
        for objective, quantized, minw in SETTINGS:
            o = objective_code(objective, quantized)
            mw = [minw * b for b in bins]
            for fast in (True, False):  # the block kernel, and the general one alone
                one = _threads(1, _solve_grid, G, bins, o, 1, ok, mw, None, fast=fast)
                two = _threads(2, _solve_grid, G, bins, o, 1, ok, mw, None, fast=fast)
                where = (layout, objective, quantized, minw, fast)
                assert (one[1] is None) == (two[1] is None), where
                if one[1] is None or one[0] <= COST_ABS_TOL:
                    continue
                assert np.array_equal(one[1], two[1]), where
                assert one[0] == two[0], where
                compared += 1
    assert compared >= len(SETTINGS)
