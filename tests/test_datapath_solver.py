"""Datapath-exact objectives (hw_sim.datapath_cost / datapath_solve): the DP optimum equals a
brute force through the Fraction oracle (tests/naive.py), the DP's value equals what
`nli table report` counts on the table it builds, and `nli table build --objective` works."""

import json

import numpy as np
import pytest

from hw_sim.datapath_cost import NO_COST, clamp_costs, decode_cost, objective_index, path_cost
from hw_sim.datapath_solve import solve_datapath
from hw_sim.report import error_arrays, ordered, reference_bits
from nli.cli import main
from nli.grid import fp16_grid, is_finite16
from nli.solver import Layout, table_from_result
from nli.table import load_table
from tests.naive import naive_datapath_errors, naive_datapath_optimum, naive_datapath_value

OBJECTIVES = ("ulp", "cr", "cr+maxulp")
TINY = 2.0**-24  # the smallest FP16 subnormal

# tiny grids (8 to 13 points) with curvature in FP16 ulps
TINY_CASES = [
    ("rsqrt", (TINY, 12 * TINY), (1, 1)),
    ("log", (TINY, 11 * TINY), (2, 1)),
    ("exp", (-12.0, -11.90625), (1, 1, 1)),
    ("silu", (-8.0, -7.96875), (1, 3)),
    ("reciprocal", (300 * TINY, 311 * TINY), (2, 2)),
]


def _value(result):
    """The DP's cost in the oracle's terms (sum, count, or (count, max))."""
    d = decode_cost(int(result.objective_value), result.objective)
    if result.objective == "cr+maxulp":
        return (d["not_cr"], d["max_ulp"])
    return d["ulp_sum"] if result.objective == "ulp" else d["not_cr"]


@pytest.mark.parametrize("function,domain,bins", TINY_CASES)
@pytest.mark.parametrize("objective", OBJECTIVES)
def test_optimum_equals_brute_force_through_the_oracle(function, domain, bins, objective):
    x, _ = fp16_grid(*domain)
    assert 8 <= x.size <= 13
    r = solve_datapath(function, Layout("custom", tuple(bins)), objective, domain=domain)
    best = naive_datapath_optimum(function, x, bins, objective)
    assert _value(r) == best
    # and the cutpoints it returns really cost that through the oracle
    assert (
        naive_datapath_value(naive_datapath_errors(function, x, r.cut_idx, bins), objective) == best
    )


@pytest.mark.parametrize("function,domain,bins", TINY_CASES)
def test_capped_optimum_equals_brute_force(function, domain, bins):
    """cr within max_ulp M: the smallest feasible M and the fewest misses there (max ulp
    first, then CR) match the brute force; a smaller M is infeasible for both."""
    x, _ = fp16_grid(*domain)
    lay = Layout("custom", tuple(bins))
    m = 0
    while naive_datapath_optimum(function, x, bins, "cr", max_ulp=m) is None:
        with pytest.raises(ValueError, match=f"within {m} ulp"):
            solve_datapath(function, lay, "cr", domain=domain, max_ulp=m)
        m = m + 1 if m < 8 else m * 2
    for cap in (m, 2 * m + 1):
        r = solve_datapath(function, lay, "cr", domain=domain, max_ulp=cap)
        assert _value(r) == naive_datapath_optimum(function, x, bins, "cr", max_ulp=cap)
        assert max(naive_datapath_errors(function, x, r.cut_idx, bins)) <= cap


def _report_value(table, objective):
    a = error_arrays(table)
    assert np.all(a["ulp"] >= 0)  # no NaN on these domains
    n_bad = int(np.count_nonzero(a["ulp"]))
    if objective == "ulp":
        return int(a["ulp"].sum())
    return n_bad if objective == "cr" else (n_bad, int(a["ulp"].max()))


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_dp_value_equals_the_report_of_its_table(objective):
    """Segment ownership, clamps and LUT choice match the unit: the DP's optimum is exactly
    what error_arrays (`nli table report`) counts over the whole domain of the built table."""
    r = solve_datapath("silu", "two-level:2:4", objective, domain=(-8.0, -5.0))
    t = table_from_result(r)
    assert _value(r) == _report_value(t, objective)
    assert t.meta["lut_rounding_in_objective"] is True


def _grid(function, domain, obj):
    x, _ = fp16_grid(*domain)
    _, ref = reference_bits(function, x)
    refo = ordered(ref).astype(np.int64)
    lutc = np.ascontiguousarray(ref, dtype=np.uint16)
    ok = is_finite16(lutc)
    L = clamp_costs(x, refo, lutc, ok, obj, False)
    R = clamp_costs(x, refo, lutc, ok, obj, True)
    return x, refo, lutc, L, R


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_path_cost_equals_the_report_on_random_tables(objective):
    """Random cutpoint sets (mixed bins) on a wider domain: the kernels' total of a path is the
    report's count of the table built from it (several tables, every input of the domain)."""
    from nli.functions import get_function
    from nli.table import table_from_cutpoints

    rng = np.random.default_rng(16)
    domain = (-6.0, 3.0)
    obj = objective_index(objective)
    x, refo, lutc, L, R = _grid("gelu", domain, obj)
    for bins in ([1, 8, 8, 1], [3, 1, 5], [32, 32]):
        idx = np.sort(rng.choice(x.size, size=len(bins) + 1, replace=False))
        c = path_cost(idx, np.array(bins), x, refo, lutc, get_function("gelu").fn_id, obj, L, R)
        assert c < NO_COST
        bits = x[idx].astype(np.float16).view(np.uint16)
        a = error_arrays(table_from_cutpoints("gelu", bits, bins), domain)
        n_bad = int(np.count_nonzero(a["ulp"]))
        want = {
            "ulp": int(a["ulp"].sum()),
            "cr": n_bad,
            "cr+maxulp": (n_bad << 16) | int(a["ulp"].max()),
        }[objective]
        assert c == want


def test_incumbent_bounds_and_never_changes_the_optimum():
    dom = (-8.0, -6.0)
    plain = solve_datapath("silu", "single:4", "cr", domain=dom)
    x, _ = fp16_grid(*dom)
    inc = x[[0, 100, 200, x.size - 1]].astype(np.float16).view(np.uint16)
    bounded = solve_datapath("silu", "single:4", "cr", domain=dom, incumbent=inc)
    assert bounded.objective_value == plain.objective_value
    with pytest.raises(ValueError, match="incumbent"):
        solve_datapath("silu", "single:4", "cr", domain=dom, incumbent=inc[:3])


def test_refusals():
    with pytest.raises(ValueError, match="fp32"):
        solve_datapath("silu", "single:3", "cr", domain=(-8.0, -7.0), precision="fp16")
    with pytest.raises(ValueError, match="objective"):
        solve_datapath("silu", "single:3", "mean", domain=(-8.0, -7.0))


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_build_datapath_objective(tmp_path, capsys):
    p = tmp_path / "t.json"
    code, out, err = _run(
        capsys, "table", "build", "silu", "-o", str(p), "--domain", "-8", "-7",
        "--layout", "single:3", "--objective", "cr", "-q",
    )  # fmt: skip
    assert code == 0 and "not_cr" in out, (out, err)
    t = load_table(p)
    d = json.loads(p.read_text())
    assert d["objective"] == "cr" and d["lut_rounding_in_objective"] is True
    assert int(d["cost"]) == _report_value(t, "cr")


@pytest.mark.parametrize(
    "extra,needle",
    [(("--precision", "fp16"), "fp16"), (("--measure-gap",), "--measure-gap")],
)
def test_cli_bad_combos_are_one_line_errors(tmp_path, capsys, extra, needle):
    p = tmp_path / "t.json"
    code, out, err = _run(
        capsys, "table", "build", "silu", "-o", str(p), "--domain", "-8", "-7",
        "--layout", "single:3", "--objective", "ulp", "-q", *extra,
    )  # fmt: skip
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1
    assert not p.exists()


def test_kernel_mul_is_rne32():
    """The kernels' mul (hw_sim.interval_exact.rne32_quotient of FP16 cutpoints) equals the
    table's RNE32 of the exact quotient (nli.table.expected_mul), on random and extreme pairs."""
    from hw_sim.interval_exact import rne32_quotient
    from nli.table import expected_mul

    rng = np.random.default_rng(3)
    x, bits = fp16_grid(-65504.0, 65504.0)
    for _ in range(2000):
        j, k = np.sort(rng.choice(x.size, 2, replace=False))
        B = int(rng.integers(1, 512))
        want = expected_mul(bits[[j, k]], np.array([B]))
        got = np.float32(rne32_quotient(B, x[j], x[k]))
        assert want.view(np.uint32)[0] == np.array([got]).view(np.uint32)[0]
    for j, k, B in ((0, x.size - 1, 1), (0, x.size - 1, 511), (100, 101, 511)):
        want = expected_mul(bits[[j, k]], np.array([B]))
        assert want[0] == rne32_quotient(B, x[j], x[k])


def test_cli_max_ulp(tmp_path, capsys):
    p = tmp_path / "t.json"
    base = ("table", "build", "silu", "-o", str(p), "--domain", "-8", "-7", "-q")
    code, out, err = _run(capsys, *base, "--layout", "single:3", "--objective", "mean",
                          "--max-ulp", "2")  # fmt: skip
    assert code == 2 and "--max-ulp" in err and not p.exists()
    code, out, err = _run(capsys, *base, "--layout", "single:3", "--objective", "cr",
                          "--max-ulp", "700")  # fmt: skip
    assert code == 0, err
    t = load_table(p)
    assert t.meta["max_ulp_cap"] == 700 and int(error_arrays(t)["ulp"].max()) <= 700


@pytest.mark.parametrize("function", ["silu", "exp", "rsqrt"])
def test_kernel_outputs_are_the_units_on_every_input(function):
    """The outputs the DP's costs are made of (hw_sim.unit's own _locate_fp32 / _interp_fp32,
    set up per segment) equal hw_sim.unit.output_lut on every finite FP16 input of the
    domain, for several random tables (mixed bins, 32-bin intervals included); -0 behaves
    as +0 and NaN/inf inputs never reach a segment."""
    from hw_sim.datapath_cost import unit_ordinals
    from hw_sim.unit import output_lut
    from nli.functions import get_function
    from nli.table import table_from_cutpoints

    f = get_function(function)
    x, bits = fp16_grid(*f.default_domain)
    _, ref = reference_bits(function, x)
    lutc = np.ascontiguousarray(ref, dtype=np.uint16)
    ok = np.flatnonzero(is_finite16(lutc))
    rng = np.random.default_rng(7)
    for bins in ([1, 32, 32, 32, 1], [5, 2, 7], [1] * 9, [32] * 4):
        idx = np.sort(rng.choice(ok, size=len(bins) + 1, replace=False))
        t = table_from_cutpoints(function, bits[idx], bins)
        want = ordered(output_lut(t)[bits]).astype(np.int64)
        got = unit_ordinals(idx, np.array(bins), x, lutc, f.fn_id)
        assert np.array_equal(got, want)
