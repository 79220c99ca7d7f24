"""The built-ins erf, exp2, log, log2, mish, elu, logsigmoid, softsign: references against
independent math-module formulas (plain loops), inflection points, domains, shipped tables."""

import math

import numpy as np
import pytest

from hw_sim.report import error_report
from nli.defaults import default_table
from nli.functions import get_function
from nli.grid import fp16_grid
from nli.user_function import detect_inflections

NEW = ("erf", "exp2", "log", "log2", "mish", "elu", "logsigmoid", "softsign")
REL_TOL = 1e-13  # reference vs an independent float64 formula (a few rounding steps each)
ABS_FLOOR = 1e-300  # results that underflow to 0 in one formula and not the other
INFLECTION_STEP = 1e-3  # second-difference step for checking an inflection's sign change


def _softplus(x):
    return x + math.log1p(math.exp(-x)) if x > 0 else math.log1p(math.exp(x))


ORACLES = {
    "erf": math.erf,
    # 2^x = 2^frac(x) * 2^floor(x): the scaling is exact
    "exp2": lambda x: math.ldexp(2.0 ** (x - math.floor(x)), int(math.floor(x))),
    "log": math.log,
    "log2": lambda x: math.log(x) / math.log(2.0),
    "mish": lambda x: x * math.tanh(_softplus(x)),
    "elu": lambda x: x if x > 0 else math.expm1(x),
    "logsigmoid": lambda x: -_softplus(-x),
    "softsign": lambda x: x / (1.0 + abs(x)),
}
TAILS = {
    "erf": [-65504.0, -6.0, -1e-7, 5.96e-8, 3.0, 65504.0],
    "exp2": [-65504.0, -1080.0, -1020.0, -30.5, -1e-7, 0.0],
    "log": [5.960464477539063e-08, 0.999, 1.0, 1.001, 65504.0],
    "log2": [5.960464477539063e-08, 0.999, 1.0, 1.001, 65504.0],
    "mish": [-65504.0, -700.0, -40.0, -1e-7, 1e-7, 20.0, 65504.0],
    "elu": [-65504.0, -40.0, -1e-7, 1e-7, 65504.0],
    "logsigmoid": [-65504.0, -40.0, -1e-7, 1e-7, 40.0, 700.0, 65504.0],
    "softsign": [-65504.0, -1e-7, 1e-7, 65504.0],
}


@pytest.mark.parametrize("name", NEW)
def test_reference_matches_independent_formula(name):
    f = get_function(name)
    x, _ = fp16_grid(*f.default_domain)
    x = np.concatenate([x, TAILS[name]])
    y = f(x)
    bad = []
    for xi, yi in zip(x.tolist(), y.tolist()):
        want = ORACLES[name](xi)
        if not abs(yi - want) <= REL_TOL * abs(want) + ABS_FLOOR:
            bad.append((xi, yi, want))
    assert not bad, bad[:5]


@pytest.mark.parametrize("name", NEW)
def test_default_domain_is_finite_in_fp16(name):
    f = get_function(name)
    x, _ = fp16_grid(*f.default_domain)
    y = f(x)
    with np.errstate(over="ignore"):
        assert np.all(np.isfinite(y)) and np.all(np.isfinite(y.astype(np.float16)))


@pytest.mark.parametrize("name", NEW)
def test_inflections_are_sign_changes_of_the_curvature(name):
    f = get_function(name)
    h = INFLECTION_STEP
    for p in f.inflections:
        d2 = [f(np.array([c - h, c, c + h])) @ np.array([1.0, -2.0, 1.0]) for c in (p - h, p + h)]
        assert d2[0] * d2[1] < 0, (p, d2)
    # and the grid shows exactly these (the detector used for user functions)
    x, _ = fp16_grid(-64.0, 64.0) if f.default_domain[0] < 0 else fp16_grid(2.0**-10, 64.0)
    x = x[(x >= f.default_domain[0]) & (x <= f.default_domain[1])]
    seen = detect_inflections(x, f(x))
    want = [p for p in f.inflections if x[0] < p < x[-1]]
    assert len(seen) == len(want) and np.allclose(seen, want, rtol=1e-2, atol=1e-3)


def test_domains_follow_exp_and_the_poles():
    assert get_function("exp2").default_domain == get_function("exp").default_domain
    assert get_function("log").default_domain == get_function("reciprocal").default_domain
    assert get_function("log2").default_domain == get_function("log").default_domain


@pytest.mark.parametrize("name", NEW)
def test_shipped_table_meets_its_meta(name):
    t = default_table(name)
    assert t.function == name and t.meta["layout"] == "paper" and t.entries == 259
    rep = error_report(t)
    ours = t.meta["comparison"]["ours"]
    assert rep["max_ulp"] == ours["max_ulp"]
    assert rep["pct_correctly_rounded"] == pytest.approx(ours["pct_correctly_rounded"], rel=1e-12)
    assert rep["mean_rel_error"] == pytest.approx(ours["mean_rel_error"], rel=1e-12)
    assert rep["nan_mismatch"] == 0
