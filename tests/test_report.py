"""hw_sim.report: the error report against a brute-force count with the Fraction oracle."""

from fractions import Fraction

from naive import NvVal, nv16, nv_encode16, nv_rne16, nv_unit_all
import numpy as np
import pytest
from sim_tables import standin_tables

from hw_sim.report import (
    composite_inverse_report,
    error_arrays,
    error_report,
    ordered,
    ulp_distance,
)
from nli.grid import fp16_grid

S = standin_tables()


def _naive_position():
    """bits -> index on the sorted list of all non-NaN FP16 values (zeros merged)."""
    vals = sorted(
        {
            (
                float("inf")
                if nv16(b).kind == "inf" and not nv16(b).neg
                else float("-inf")
                if nv16(b).kind == "inf"
                else float(nv16(b).q)
            )
            for b in range(1 << 16)
            if nv16(b).kind != "nan"
        }
    )
    pos = {v: i for i, v in enumerate(vals)}

    def f(b):
        v = nv16(b)
        return pos[
            float("inf")
            if v.kind == "inf" and not v.neg
            else float("-inf")
            if v.kind == "inf"
            else float(v.q)
        ]

    return f


def _rne16_rsqrt_exact(xv):
    """RNE16(1/sqrt(x)) for x in [1, 4], exactly: r < M  <=>  M^2 x > 1 (no ties possible)."""
    lo, hi = 0x3800, 0x3C00  # r in [0.5, 1]: bisect for the last v with v^2 x <= 1
    while lo < hi:
        mid_b = (lo + hi + 1) // 2
        lo, hi = (mid_b, hi) if nv16(mid_b).q ** 2 * xv <= 1 else (lo, mid_b - 1)
    if nv16(lo).q ** 2 * xv == 1:
        return lo
    mid = (nv16(lo).q + nv16(lo + 1).q) / 2
    return lo + 1 if mid**2 * xv < 1 else lo


@pytest.mark.parametrize("name,fn", [("recip_reduced", lambda x: 1 / x), ("rsqrt_single", None)])
def test_report_matches_a_brute_force_count(name, fn):
    t = S[name]
    lo, hi = (1.0, 2.0) if name == "recip_reduced" else (1.0, 4.0)
    x, bits = fp16_grid(lo, hi)
    y = nv_unit_all(t, bits)
    pos = _naive_position()
    ulps, rels = [], []
    for xb, yb in zip(bits, y):
        xv = nv16(xb).q
        if fn is not None:
            ref = nv_encode16(nv_rne16(NvVal("num", Fraction(1) / xv)))
        else:
            ref = _rne16_rsqrt_exact(xv)
        ulps.append(abs(pos(int(yb)) - pos(ref)))
        f = 1 / float(xv) if fn is not None else 1 / float(xv) ** 0.5
        rels.append(abs(float(nv16(int(yb)).q) - f) / max(abs(f), 2.0**-14))
    rep = error_report(t)
    assert rep["inputs"] == len(bits) and rep["domain"] == [lo, hi]
    assert rep["max_ulp"] == max(ulps)
    assert rep["mean_ulp"] == pytest.approx(np.mean(ulps), rel=1e-12)
    assert rep["pct_correctly_rounded"] == pytest.approx(
        100 * np.mean(np.array(ulps) == 0), rel=1e-12
    )
    assert rep["mean_rel_error"] == pytest.approx(np.mean(rels), rel=1e-9)
    assert rep["max_rel_error"] == pytest.approx(max(rels), rel=1e-9)


def test_ordered_ulp_distance_definition():
    assert ulp_distance(np.uint16(0x0000), np.uint16(0x8000)) == 0  # -0 == +0
    assert ulp_distance(np.uint16(0x0001), np.uint16(0x8001)) == 2  # across zero
    assert ulp_distance(np.uint16(0x7BFF), np.uint16(0x7C00)) == 1  # overflow next to 65504
    assert ulp_distance(np.uint16(0x3C00), np.uint16(0x3BFF)) == 1
    assert list(ordered(np.array([0xFC00, 0x8001, 0, 1, 0x7C00], np.uint16))) == [
        -0x7C00,
        -1,
        0,
        1,
        0x7C00,
    ]


def test_report_of_an_exact_table_is_all_correctly_rounded():
    # a table whose every input is a LUT point returns RNE16(f(x)) exactly: 2 points per bin
    import nli

    cuts = np.array([1.0, 2.0], np.float16).view(np.uint16)
    t = nli.table_from_cutpoints("reciprocal", cuts, [1024], domain=["3c00", "4000"])
    rep = error_report(t)
    assert (
        rep["max_ulp"] == 0 and rep["pct_correctly_rounded"] == 100.0 and rep["nan_mismatch"] == 0
    )


def test_arrays_are_consistent():
    a = error_arrays(S["exp_below0"])
    assert a["x"].shape == a["y"].shape == a["ulp"].shape == a["rel"].shape
    assert (a["ulp"] >= 0).all()


def test_composite_reduced_reciprocal_counts_every_mantissa():
    rep = composite_inverse_report(S["recip_reduced"], "reciprocal", "reduced", stride=4096)
    assert rep["inputs"] == (1 << 23) // 4096
    assert rep["max_ulp"] >= 0 and isinstance(rep["at_most_1_ulp"], bool)
    with pytest.raises(ValueError, match="kind"):
        composite_inverse_report(S["recip_reduced"], "exp", "reduced")


# ----------------------------------------------------------------------------- table_report
def _hex(v):
    return f"{int(np.float16(v).view(np.uint16)):04x}"


def _small(function, lo, hi, bins, domain):
    import nli

    cuts = np.array([lo, hi], np.float16).view(np.uint16)
    return nli.table_from_cutpoints(
        function, cuts, [bins], domain=[_hex(domain[0]), _hex(domain[1])], thinning=1
    )


def test_abs_and_rms_errors_against_a_plain_loop():
    import math

    from nli.grid import f16_bits_to_f64

    t = _small("exp", -8.0, 0.0, 16, (-16.0, 0.0))
    a = error_arrays(t)
    errs, rels = [], []
    for xv, yb in zip(a["x"].tolist(), a["y"].tolist()):
        f = math.exp(xv)
        e = abs(float(f16_bits_to_f64(np.uint16(yb))) - f)
        errs.append(e)
        rels.append(e / max(f, 2.0**-14))
    rep = error_report(t)
    assert rep["max_abs_error"] == max(errs)
    assert rep["rms_abs_error"] == pytest.approx(math.sqrt(sum(e * e for e in errs) / len(errs)))
    assert rep["rms_rel_error"] == pytest.approx(math.sqrt(sum(r * r for r in rels) / len(rels)))


def test_sign_check_flags_a_table_with_the_wrong_sign():
    from hw_sim.report_checks import table_report

    t = _small("tanh", -1.0, 1.0, 8, (-1.0, 1.0))
    good = table_report(t)["sign_check"]
    assert good["ok"] and good["wrong_sign"] == 0 and good["checked"] > 0
    assert good["near_zero"]["negative"]["f_sign"] == -1
    assert good["near_zero"]["positive"]["f_sign"] == 1
    bad = table_report(t.with_lut(t.lut ^ np.uint16(0x8000)))["sign_check"]  # every entry negated
    assert not bad["ok"] and bad["first_wrong_x"] == -1.0
    assert not bad["near_zero"]["negative"]["ok"] and bad["wrong_sign"] > 0.99 * bad["checked"]
    # (x = 0: tanh(0) = 0 has no sign, not counted; a 0 output is not a wrong sign)


def test_tails_check_flags_a_zeroed_tail_where_f_is_not_zero_in_fp16():
    from hw_sim.report_checks import table_report

    t = _small("exp", -8.0, 0.0, 16, (-16.0, 0.0))
    ok = table_report(t)["tails_check"]
    assert ok["ok"] and ok["left"]["range"][0] == -16.0 and -8.0 - 2**-7 <= ok["left"]["range"][1]
    assert ok["left"]["range"][1] < -8.0 and ok["right"]["range"] == [0.0, 0.0]  # x >= c_K
    zeroed = table_report(t.with_lut(t.lut, below=0))["tails_check"]
    assert not zeroed["ok"] and zeroed["left"]["first_zeroed_x"] == -16.0
    assert zeroed["left"]["zeroed"] == zeroed["left"]["inputs"] and zeroed["right"]["zeroed"] == 0
    assert zeroed["zeroed_between_cutpoints"] == 0
    # a LUT of zeros: every input between the cutpoints is a zero where exp is not
    flat = table_report(t.with_lut(np.zeros_like(t.lut), below=0))["tails_check"]
    x = error_arrays(t)["x"]
    assert flat["zeroed_between_cutpoints"] == np.count_nonzero((x >= -8.0) & (x < 0.0))


def test_provenance_from_meta():
    from hw_sim.report_checks import provenance
    from nli.defaults import default_table

    p = provenance(default_table("silu"))
    assert (
        p["objective"] == "mean" and p["layout"] == "paper" and p["solve"] == "thinned (stride 32)"
    )
    assert p["lut_rounding_in_objective"] is True and p["refined"] == "mean_rel"
    q = provenance(_small("exp", -8.0, 0.0, 16, (-16.0, 0.0)))
    assert q["solve"] == "exact" and q["objective"] is None and q["solver_version"] is None


def test_provenance_of_a_fresh_solve_says_exact_or_thinned_and_the_solver_version():
    from hw_sim.report_checks import provenance
    from nli.defaults import default_table, default_table_names
    from nli.solver import solve, solver_version, table_from_result

    for stride, solve_kind in ((1, "exact"), (7, "thinned (stride 7)")):
        r = solve("sigmoid", "single:6", "paper", domain=(1.0, 4.0), stride=stride)
        p = provenance(table_from_result(r))
        assert p["solve"] == solve_kind and p["thinning"] == stride
        assert p["solver_version"] == solver_version()
        assert p["solver_version"].startswith("nli-engine ")
    for name, mode in default_table_names():  # every shipped table names its solver
        assert provenance(default_table(name, mode))["solver_version"] == "nli-engine 0.1.0"


def test_by_interval_against_a_plain_loop():
    """Regions by exact comparison with each cutpoint (as the comparators do), counts by bit
    comparison; the rows add up to the report."""
    from hw_sim.report_checks import table_report
    import nli

    cuts = np.array([-2.0, -0.5, 0.0, 1.0], np.float16).view(np.uint16)
    t = nli.table_from_cutpoints("tanh", cuts, [4, 2, 8], domain=[_hex(-4.0), _hex(3.0)])
    rep = table_report(t)
    a = error_arrays(t)
    cvals = [nv16(int(c)).q for c in cuts]
    names = ["below"] + [f"interval {m}" for m in range(1, len(cuts))] + ["above"]
    inputs, not_cr, worst = {}, {}, {}
    for xb, yb, rb, u in zip(a["bits"].tolist(), a["y"].tolist(), a["ref"].tolist(), a["ulp"]):
        xv = nv16(xb).q
        m = sum(1 for c in cvals if xv >= c)  # 0: x < c_0; len(cuts): x >= c_K
        zeros = nv16(yb).kind == nv16(rb).kind == "num" and nv16(yb).q == 0 == nv16(rb).q
        same = yb == rb or zeros  # (tanh: no NaN on this domain)
        key = names[m]
        inputs[key] = inputs.get(key, 0) + 1
        not_cr[key] = not_cr.get(key, 0) + (not same)
        worst[key] = max(worst.get(key, 0), int(u))
    rows = rep["by_interval"]
    assert [r["region"] for r in rows] == [n for n in names if n in inputs]
    for r in rows:
        k = r["region"]
        assert (r["inputs"], r["not_correctly_rounded"], r["max_ulp"]) == (
            inputs[k],
            not_cr[k],
            worst[k],
        )
    assert sum(r["inputs"] for r in rows) == rep["inputs"]
    cr = sum(r["inputs"] - r["not_correctly_rounded"] for r in rows)
    assert cr / rep["inputs"] * 100 == pytest.approx(rep["pct_correctly_rounded"], rel=1e-12)
    assert rows[3]["from"] == 0.0 and rows[3]["bins"] == 8 and rows[-1]["to"] is None
    assert 0x0000 in a["bits"]  # x = 0 on the cutpoint 0: interval 3 in the loop, as in the rows
