"""Datapath-exact objectives for bf16 tables (numerics §13; hw_sim.datapath_cost /
datapath_solve with dtype='bf16'): a path's cost is what `nli table report` counts on the table
built from it, the DP optimum equals a brute force (through the Fraction oracle on tiny grids,
through every cutpoint triple on a grid across 0 among the subnormals), mul is the table's
RNE32 of the exact quotient, the bf16 interval rules hold, and the CLI builds such a table."""

import itertools
import json

import numpy as np
import pytest

from hw_sim.datapath_cost import (
    NO_COST,
    clamp_costs,
    decode_cost,
    objective_index,
    path_cost,
    segment_cost,
)
from hw_sim.datapath_solve import solve_datapath
from hw_sim.interval_exact import reaches, rne32_quotient
from hw_sim.report import error_arrays, ordered, reference_bits
from nli.cli import main
from nli.functions import get_function
from nli.grid import bf16_grid, fp16_grid, is_finite_bits
from nli.solver import Layout, table_from_result
from nli.table import expected_mul, load_table, table_from_cutpoints
from tests.naive import naive_datapath_errors, naive_datapath_value

OBJECTIVES = ("ulp", "cr", "cr+maxulp")
W = 2.0**-127  # a bf16 interval of B bins must be at least B W wide (numerics §13)
F32_OVERFLOW = (2 - 2.0**-24) * 2.0**127  # the oracle's own copy (tests keep their constants)


def _grid(function, domain, obj):
    x, bits = bf16_grid(*domain)
    _, ref = reference_bits(function, x, "bf16")
    refo = ordered(ref).astype(np.int64)
    lutc = np.ascontiguousarray(ref, dtype=np.uint16)
    ok = is_finite_bits(lutc, "bf16")
    L = clamp_costs(x, refo, lutc, ok, obj, False)
    R = clamp_costs(x, refo, lutc, ok, obj, True)
    return x, bits, refo, lutc, L, R


def _report_value(table, objective, domain=None):
    a = error_arrays(table, domain)
    assert np.all(a["ulp"] >= 0)  # no NaN on these domains
    n_bad = int(np.count_nonzero(a["ulp"]))
    return {
        "ulp": int(a["ulp"].sum()),
        "cr": n_bad,
        "cr+maxulp": (n_bad << 16) | int(a["ulp"].max()),
    }[objective]


# ------------------------------------------------------------------ cost = report
REPORT_CASES = [
    ("silu", (-8.0, 8.0)),
    ("gelu", (-(2.0**-100), 3.0)),  # across 0, tiny negatives (step 4 is inexact there)
    ("exp", (-(2.0**-20), 0.0)),
    ("rsqrt", (2.0**-130, 2.0**-100)),  # subnormal and tiny inputs, huge outputs
    ("tanh", (-(2.0**-110), 2.0**-125)),  # across 0 among the subnormals
]


@pytest.mark.parametrize("function,domain", REPORT_CASES)
def test_path_cost_equals_the_report_of_the_built_table(function, domain):
    """Random cutpoints (mixed bins, each interval at least B 2^-127 wide): the kernels' total
    for each objective is exactly error_arrays' count over every BF16 input of the domain."""
    rng = np.random.default_rng(13)
    fn_id = get_function(function).fn_id
    for objective in OBJECTIVES:
        obj = objective_index(objective)
        x, bits, refo, lutc, L, R = _grid(function, domain, obj)
        for bins in ([1, 8, 8, 1], [3, 1, 5], [32, 32]):
            while True:
                idx = np.sort(rng.choice(x.size, size=len(bins) + 1, replace=False))
                if np.all(np.diff(x[idx]) >= np.array(bins) * W):
                    break
            c = path_cost(idx, np.array(bins), x, refo, lutc, fn_id, obj, L, R, dtype="bf16")
            assert c < NO_COST
            t = table_from_cutpoints(function, bits[idx], bins, dtype="bf16")
            assert c == _report_value(t, objective, domain), (function, objective, bins)


def test_cutpoint_entries_are_f_at_the_cutpoint():
    """[-8, -2^-120]: the float64 -8 + width is 0, not -2^-120; the table's entry there is
    still RNE_bf16(f(-2^-120)) (Table.points), which the DP's costs assume."""
    c = np.array([-8.0, -(2.0**-120), 1.0])
    _, cb = bf16_grid(-8.0, 1.0)
    x, _ = bf16_grid(-8.0, 1.0)
    bits = cb[np.searchsorted(x, c)]
    t = table_from_cutpoints("silu", bits, [1, 4], dtype="bf16")
    assert np.array_equal(t.points()[[0, 1, 5]], c)
    _, ref = reference_bits("silu", c, "bf16")
    assert np.array_equal(t.lut[[0, 1, 5]], ref)


# ------------------------------------------------------------------ brute force, oracle
TINY_CASES = [  # 12-13 BF16 values each, curvature in BF16 ulps
    ("exp", (-12.0, -11.25), (1, 1, 1)),
    ("silu", (-8.0, -7.625), (1, 3)),
    ("rsqrt", (2.0**-120, 2.0**-120 + 12 * 2.0**-127), (2, 1)),
    ("log", (2.0**-110, 2.0**-110 * (1 + 11 / 128)), (2, 1)),
    ("reciprocal", (2.0**100, 2.0**100 * (1 + 12 / 128)), (2, 2)),
]


@pytest.mark.parametrize("function,domain,bins", TINY_CASES)
def test_optimum_equals_brute_force_through_the_oracle(function, domain, bins):
    """Every cutpoint tuple of the grid through the Fraction oracle (tests/naive.py): the DP's
    value for each objective, and with a cap, is the brute-force best; the smallest feasible
    cap is found by both, a smaller one is infeasible for both."""
    x, _ = bf16_grid(*domain)
    assert 12 <= x.size <= 13
    errs = {}
    for c in itertools.combinations(range(x.size), len(bins) + 1):
        e = naive_datapath_errors(function, x, c, bins, "bf16")
        if e is not None:
            errs[c] = e
    assert errs
    lay = Layout("custom", tuple(bins))

    def best(objective, cap=None):
        vals = [
            naive_datapath_value(e, objective)
            for e in errs.values()
            if cap is None or max(e) <= cap
        ]
        return min(vals) if vals else None

    def value(r):
        d = decode_cost(int(r.objective_value), r.objective)
        if r.objective == "cr+maxulp":
            return (d["not_cr"], d["max_ulp"])
        return d["ulp_sum"] if r.objective == "ulp" else d["not_cr"]

    for objective in OBJECTIVES:
        r = solve_datapath(function, lay, objective, domain=domain, dtype="bf16")
        assert value(r) == best(objective)
        assert naive_datapath_value(errs[tuple(r.cut_idx)], objective) == best(objective)
    m = min(max(e) for e in errs.values())
    if m > 0:
        with pytest.raises(ValueError, match=f"within {m - 1} ulp"):
            solve_datapath(function, lay, "cr", domain=domain, max_ulp=m - 1, dtype="bf16")
    for cap in (m, 2 * m + 1):
        r = solve_datapath(function, lay, "cr", domain=domain, max_ulp=cap, dtype="bf16")
        assert value(r) == best("cr", cap) and max(errs[tuple(r.cut_idx)]) <= cap


def test_subnormal_intervals_are_infeasible_as_in_the_oracle():
    """Among 9 subnormals no interval is B 2^-127 wide: no table for the DP nor the oracle."""
    dom = (-4 * 2.0**-133, 5 * 2.0**-133)
    x, _ = bf16_grid(*dom)
    assert x.size == 10
    assert all(
        naive_datapath_errors("tanh", x, c, (1,), "bf16") is None
        for c in itertools.combinations(range(x.size), 2)
    )
    with pytest.raises(ValueError, match="no feasible"):
        solve_datapath("tanh", "single:2", "cr", domain=dom, dtype="bf16")


# ------------------------------------------------------------------ brute force across 0
def _plus(a, b, obj):
    """a (+) b elementwise on int64 costs (NO_COST absorbs), as the DP combines them."""
    if obj == 2:
        t = ((a >> 16) + (b >> 16)) << 16 | np.maximum(a & 0xFFFF, b & 0xFFFF)
    else:
        t = a + b
    return np.where((a >= NO_COST) | (b >= NO_COST), NO_COST, t)


@pytest.mark.parametrize("function", ["silu", "tanh"])
def test_optimum_equals_every_triple_across_zero(function):
    """[-2^-127, 2^-126]: 193 BF16 values (subnormals on both sides, 0, 2^-126). Layout (2, 1):
    the DP's optimum is the minimum over every cutpoint triple of clamp + segment + segment +
    clamp, each segment costed on its own (segment_cost), for each objective."""
    dom = (-(2.0**-127), 2.0**-126)
    fn_id = get_function(function).fn_id
    for objective in OBJECTIVES:
        obj = objective_index(objective)
        x, _, refo, lutc, L, R = _grid(function, dom, obj)
        n = x.size
        assert n == 193
        S = {B: np.full((n, n), NO_COST, dtype=np.int64) for B in (1, 2)}
        for B, Sb in S.items():
            for j in range(n):
                for k in range(j + 1, n):
                    Sb[j, k] = segment_cost(x, refo, lutc, fn_id, obj, j, k, B, dtype="bf16")
        best = NO_COST
        for j in range(1, n - 1):
            left = _plus(L[:j], S[2][:j, j], obj)  # over i < j
            right = _plus(S[1][j, j + 1 :], R[j + 1 :], obj)  # over k > j
            best = min(best, int(_plus(left[:, None], right[None, :], obj).min()))
        r = solve_datapath(function, Layout("t", (2, 1)), objective, domain=dom, dtype="bf16")
        assert best < NO_COST and int(r.objective_value) == best
        assert best == _report_value(table_from_result(r), objective)
        widths = np.diff(x[r.cut_idx])
        assert widths[0] >= 2 * W and widths[1] >= W


# ------------------------------------------------------------------ mul and the interval rules
def test_rne32_quotient_is_the_tables_mul():
    """rne32_quotient(B, c0, c1) = nli.table.expected_mul (Fractions) on random BF16 pairs
    (widths across the whole range) and FP16 pairs, and on extreme BF16 pairs: float64 widths
    that are not exact, subnormal mul, mul = 2^127."""
    rng = np.random.default_rng(3)
    for dtype, (x, bits) in (
        ("bf16", bf16_grid(-(2.0**126), 2.0**126)),
        ("fp16", fp16_grid(-65504.0, 65504.0)),
    ):
        for _ in range(1500):
            j, k = np.sort(rng.choice(x.size, 2, replace=False))
            B = int(rng.integers(1, 65536)) if rng.random() < 0.5 else int(rng.integers(1, 64))
            if x[k] - x[j] < B * W:
                continue
            want = expected_mul(bits[[j, k]], np.array([B]), dtype)
            got = np.array([rne32_quotient(B, x[j], x[k])], dtype=np.float32)
            assert want.view(np.uint32)[0] == got.view(np.uint32)[0], (dtype, x[j], x[k], B)
    xb, bb = bf16_grid(-(2.0**127), 2.0**127)
    top = float(xb[-2])  # (2 - 2^-7) 2^126
    for c0, c1, B in (
        (-top, top, 1),  # width (2 - 2^-7) 2^127: mul subnormal
        (-top, top, 65535),
        (-(2.0**-133), top, 7),  # float64 width not exact
        (-8.0, -(2.0**-120), 3),  # nor here
        (-(2.0**-133), 1.0, 3),
        (0.0, 2.0**-127, 1),  # mul = 2^127
        (2.0**-133, 2.0**-126 + 2.0**-133, 2),
    ):
        pair = bb[np.searchsorted(xb, [c0, c1])]
        assert np.array_equal(xb[np.searchsorted(xb, [c0, c1])], [c0, c1])
        want = expected_mul(pair, np.array([B]), "bf16")
        got = np.array([rne32_quotient(B, c0, c1)], dtype=np.float32)
        assert want.view(np.uint32)[0] == got.view(np.uint32)[0], (c0, c1, B)


def test_reaches_decides_the_exact_difference():
    t = 2.0**127
    assert reaches(-t, F32_OVERFLOW - t, F32_OVERFLOW)  # exactly the threshold
    assert not reaches(-t, (1 - 2.0**-23) * t, F32_OVERFLOW)
    # the float64 difference rounds to the threshold; the exact one is just below / above it
    assert not reaches(2.0**-133, F32_OVERFLOW, F32_OVERFLOW)
    assert reaches(-(2.0**-133), F32_OVERFLOW, F32_OVERFLOW)
    assert reaches(F32_OVERFLOW, 0.0, F32_OVERFLOW)  # either order


def test_segments_break_the_bf16_rules_are_infeasible():
    """An interval of B bins narrower than B 2^-127, or as wide as FP32's overflow threshold,
    costs NO_COST; the next wider / narrower one is feasible."""
    obj = objective_index("cr")
    fn_id = get_function("tanh").fn_id

    def cost(x, j, k, B):
        _, ref = reference_bits("tanh", x, "bf16")
        refo = ordered(ref).astype(np.int64)
        lutc = np.ascontiguousarray(ref, dtype=np.uint16)
        return segment_cost(x, refo, lutc, fn_id, obj, j, k, B, dtype="bf16")

    x = np.array([0.0, 2 * W - 2.0**-133, 2 * W])  # BF16 values: 2^-126 = 2 W and below it
    assert cost(x, 0, 2, 2) < NO_COST
    assert cost(x, 0, 1, 2) == NO_COST
    assert cost(x, 0, 1, 1) < NO_COST
    x = np.array([-(2.0**127), -(2.0**126), 0.0, 2.0**127])
    assert cost(x, 0, 3, 1) == NO_COST  # 2^128 wide
    assert cost(x, 1, 3, 1) < NO_COST  # 1.5 2^127 wide


# ------------------------------------------------------------------ CLI
def test_cli_builds_a_bf16_table_within_a_cap(tmp_path, capsys):
    p = tmp_path / "t.json"
    code = main(
        ["table", "build", "silu", "-o", str(p), "--dtype", "bf16", "--domain", "-8", "-7",
         "--layout", "single:6", "--objective", "cr", "--max-ulp", "1", "-q"]
    )  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0 and "not_cr" in out, (out, err)
    t = load_table(p)
    d = json.loads(p.read_text())
    assert t.dtype == "bf16" and d["dtype"] == "bf16" and d["objective"] == "cr"
    assert d["max_ulp_cap"] == 1
    a = error_arrays(t)
    assert int(a["ulp"].max()) <= 1
    assert int(d["cost"]) == int(np.count_nonzero(a["ulp"]))
    code = main(["table", "report", str(p)])
    out, err = capsys.readouterr()
    assert code == 0 and "BF16" in out + err, (out, err)
