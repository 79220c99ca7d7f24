"""The solver on BF16 grids (numerics §13): optimal against the brute-force DP oracle of
tests/naive.py (BF16 LUT rounding and weight floor), BF16 cutpoints, bf16 tables, the default
BF16 domains and the CLI's --dtype."""

import json
import math
import os
import subprocess
import sys

from naive import naive_cost, naive_solve
import numpy as np
import pytest

from nli.formats import BF16_MAX
from nli.functions import BF16_DOMAINS, FUNCTIONS, get_function
from nli.grid import DomainError, bf16_bits_to_f64, bf16_grid, f64_to_bf16_bits
from nli.objective import OBJECTIVES, grid_arrays
from nli.solver import Layout, solve, table_from_result
from nli.table import load_table

REL = 1e-9  # the solver's double-double sums against the oracle's plain ones


def close(a, b):
    return math.isclose(a, b, rel_tol=REL, abs_tol=1e-15)


@pytest.mark.parametrize("quantized", [False, True])
@pytest.mark.parametrize("objective", OBJECTIVES)
@pytest.mark.parametrize(
    "name,domain,bins",
    [
        ("silu", (-2.6, -2.2), (1, 3, 2)),  # across silu's inflection
        ("tanh", (0.5, 0.6), (2, 3)),
        ("exp", (-90.0, -60.0), (1, 4, 1)),  # f below 2^-126: weights at the floor
        ("rsqrt", (1.0, 1.5), (5, 2)),
    ],
)
def test_bf16_solver_matches_brute_force_dp(name, domain, bins, objective, quantized):
    x, bits = bf16_grid(*domain)
    assert 8 <= x.size <= 80
    r = solve(name, Layout("t", bins), objective, domain=domain, quantized=quantized, dtype="bf16")
    fn = get_function(name)
    oracle = naive_solve(fn, x, bins, objective, quantized, fmt="bf16")
    assert close(r.objective_value, oracle), (r.objective_value, oracle)
    if not quantized:
        assert close(naive_cost(fn, x, list(r.cut_idx), bins, objective, "bf16"), r.objective_value)
    assert np.array_equal(r.cutpoints, bits[r.cut_idx])  # BF16 patterns of grid points
    assert r.dtype == "bf16" and r.grid_points == x.size


def test_bf16_table_from_a_solve_is_a_bf16_table(tmp_path):
    r = solve("gelu", "two-level:2:8", "mean", domain=(-4.0, 4.0), dtype="bf16")
    t = table_from_result(r)
    assert t.dtype == "bf16"
    pts = t.points()
    assert np.array_equal(t.lut, f64_to_bf16_bits(get_function("gelu")(pts)))
    lo, hi = (int(h, 16) for h in t.meta["domain"])
    assert (bf16_bits_to_f64(lo), bf16_bits_to_f64(hi)) == (-4.0, 4.0)


def test_grid_arrays_ordinals_find_bf16_grid_points():
    """The kernels' BF16 ordinal of a real (C[0] ord0, grid index lookup) agrees with a search."""
    x, bits = bf16_grid(-3.0, 2.0**-125)
    G = grid_arrays(get_function("tanh"), x, "bf16")
    assert G.C[3] == 1 and G.C[0] == -int(bits[0] & 0x7FFF)
    with pytest.raises(ValueError, match="dtype"):
        grid_arrays(get_function("tanh"), x, "fp8")


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_every_function_has_a_legal_bf16_domain(name):
    f = FUNCTIONS[name]
    for mode, (lo, hi) in f.bf16_domains.items():
        assert mode in f.domains  # the same modes as FP16
        x, _ = bf16_grid(lo, hi)
        assert hi - lo < 2.0**126  # mul = bins / width is a normal FP32 for every interval
        y = f(x)
        assert np.all(np.isfinite(y[np.isfinite(f(x))]))
    assert set(BF16_DOMAINS) == set(FUNCTIONS)


@pytest.mark.parametrize(
    "name, sides",
    [
        ("silu", "lo"),
        ("gelu", "lo"),
        ("gelu_tanh", "lo"),
        ("softplus", "lo"),
        ("exp", "lo"),
        ("sigmoid", "lo hi"),
        ("tanh", "lo hi"),
        ("erf", "lo hi"),
    ],
)
def test_bf16_domains_saturate_outside(name, sides):
    """Beyond a saturating end of the default BF16 domain every BF16 input's correctly rounded
    result equals the one at the end: the table's constant below / above is exact there."""
    f = FUNCTIONS[name]
    lo, hi = f.bf16_domains["direct"]
    _, every = bf16_grid(-BF16_MAX, BF16_MAX)
    xs = bf16_bits_to_f64(every)
    for side in sides.split():
        end = lo if side == "lo" else hi
        beyond = xs[xs < lo] if side == "lo" else xs[xs > hi]
        assert beyond.size > 1000
        want = f64_to_bf16_bits(f(np.array([end])))[0]
        assert np.all(f64_to_bf16_bits(f(beyond)) == want), (name, side)


def _cli(*args, cwd):
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    return subprocess.run(
        [sys.executable, "-m", "nli.cli", *args], capture_output=True, text=True, env=env, cwd=cwd
    )


def test_cli_builds_a_bf16_table(tmp_path):
    out = tmp_path / "t.json"
    p = _cli(
        "table",
        "build",
        "rsqrt",
        "--dtype",
        "bf16",
        "--domain",
        "1",
        "4",
        "--layout",
        "two-level:2:4",
        "-o",
        str(out),
        "-q",
        cwd=tmp_path,
    )
    assert p.returncode == 0, p.stderr
    d = json.loads(out.read_text())
    assert d["dtype"] == "bf16" and d["numerics"] == "1.3"
    assert load_table(out).dtype == "bf16"


@pytest.mark.parametrize(
    "args, needle",
    [
        (("--dtype", "fp8"), "--dtype"),
        (("--dtype", "bf16", "--precision", "fp16"), "--precision"),
        (("--dtype", "bf16", "--domain", "1", "1e39"), "BF16"),
        (("--dtype", "bf16", "--objective", "ulp", "--measure-gap"), "--measure-gap"),  # datapath
    ],
)
def test_cli_bad_dtype_input_is_one_line_exit_2(tmp_path, args, needle):
    out = tmp_path / "t.json"
    p = _cli("table", "build", "rsqrt", *args, "-o", str(out), "-q", cwd=tmp_path)
    assert p.returncode == 2, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and needle in p.stderr, p.stderr
    assert not out.exists()


def test_bf16_intervals_keep_mul_finite():
    """A macro interval of B bins is at least B * 2^-127 wide (mul = RNE32(B / width) finite):
    among the subnormals no 2-bin interval is feasible, a 1-bin one spanning them is."""
    dom = (-(2.0**-130), 2.0**-129)
    with pytest.raises(ValueError, match="no feasible"):
        solve("tanh", Layout("t", (2,)), "max", domain=dom, dtype="bf16")
    r = solve("tanh", Layout("t", (1,)), "max", domain=(-(2.0**-127), 2.0**-127), dtype="bf16")
    assert np.isfinite(table_from_result(r).mul).all()


def test_bf16_domain_errors():
    with pytest.raises(DomainError, match="BF16"):
        bf16_grid(-1e39, 0.0)
    with pytest.raises(ValueError, match="precision"):
        solve("tanh", "two-level:2:2", domain=(-1.0, 1.0), precision="fp16", dtype="bf16")


def test_bf16_ceil_index_matches_searchsorted_around_every_encoding():
    """The kernels' BF16 grid-index lookup (_ceil_index with format 1): every finite BF16 value,
    its float64 neighbours, midpoints, values past BF16's range and random reals."""
    from nli.format_rounding import _ceil_index
    from nli.grid import all_finite_bf16_bits

    v = bf16_bits_to_f64(all_finite_bf16_bits())
    rng = np.random.default_rng(5)
    probes = np.concatenate(
        [
            v,
            np.nextafter(v, np.inf),
            np.nextafter(v, -np.inf),
            (v[1:] + v[:-1]) / 2,
            [0.0, -0.0, 3.5e38, -3.5e38, 1e300, 2.0**-134, -(2.0**-134)],
            rng.standard_normal(20000) * 10.0 ** rng.uniform(-40, 38, 20000),
        ]
    )
    for domain in [(-BF16_MAX, BF16_MAX), (-16.0, -0.5), (2.0**-130, 3.0)]:
        x, _ = bf16_grid(*domain)
        G = grid_arrays(get_function("silu"), x, "bf16")
        got = np.array([_ceil_index(G.ord0, G.n, t, 1) for t in probes])
        assert np.array_equal(got, np.searchsorted(x, probes, side="left")), domain
