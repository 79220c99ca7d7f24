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
