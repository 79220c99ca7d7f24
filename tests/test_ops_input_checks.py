"""hw_sim.ops: what Softmax, RMSNorm and the reciprocal/rsqrt ops refuse, with clear errors (bad
dtype, shape, eps, mode, a table of the wrong function or one that does not fit its role and
mode), and what they accept (uint16 and float16 inputs alike, the input left untouched)."""

import numpy as np
import pytest
from sim_tables import standin_tables
from test_ops import MODES, SEED, TABLES

import hw_sim
from hw_sim import SimInputError
import nli

ROW_SUM_TOL = 0.01  # |sum of a softmax row - 1| for the standin tables (FP16 outputs, coarse LUTs)


# ----------------------------------------------------------------------------- errors
def test_bad_inputs_are_rejected_with_clear_errors():
    t = TABLES["standin"]
    x = np.zeros((2, 4), np.float16)
    e, r, q = t[("exp", "direct")], t[("reciprocal", "direct")], t[("rsqrt", "direct")]
    with pytest.raises(SimInputError, match="float16 or uint16"):
        hw_sim.softmax(x.astype(np.float32), e, r, "direct")
    with pytest.raises(SimInputError, match="mode"):
        hw_sim.softmax(x, e, r, "fast")
    with pytest.raises(SimInputError, match="expected a 'exp' table"):
        hw_sim.softmax(x, r, r, "direct")
    with pytest.raises(SimInputError, match="expected a 'reciprocal' table"):
        hw_sim.softmax(x, e, q, "direct")
    with pytest.raises(SimInputError, match="last axis"):
        hw_sim.softmax(np.zeros((2, 0), np.float16), e, r, "direct")
    with pytest.raises(SimInputError, match="scalar"):
        hw_sim.softmax(np.float16(1.0), e, r, "direct")
    w = np.ones(4, np.float16)
    with pytest.raises(SimInputError, match="weight"):
        hw_sim.rmsnorm(x, np.ones(5, np.float16), 1e-5, q, "direct")
    with pytest.raises(SimInputError, match="weight"):
        hw_sim.rmsnorm(x, np.ones(4, np.float32), 1e-5, q, "direct")
    for eps in (float("nan"), float("inf"), 1e39, "1e-5", None):
        with pytest.raises(SimInputError, match="eps"):
            hw_sim.rmsnorm(x, w, eps, q, "direct")
    with pytest.raises(SimInputError, match="expected a 'rsqrt' table"):
        hw_sim.rmsnorm(x, w, 1e-5, r, "direct")
    with pytest.raises(SimInputError, match="mode"):
        hw_sim.rmsnorm(x, w, 1e-5, q, "Direct")
    with pytest.raises(SimInputError, match="float32"):
        hw_sim.reciprocal(np.ones(3, np.float64), r, "direct")


def test_uint16_and_float16_inputs_agree_and_input_is_untouched():
    t = TABLES["standin"]
    rng = np.random.default_rng(SEED)
    x = (rng.standard_normal((3, 9)) * 3).astype(np.float16)
    before = x.copy()
    a = hw_sim.softmax(x, t[("exp", "reduced")], t[("reciprocal", "reduced")], "reduced")
    b = hw_sim.softmax(
        x.view(np.uint16), t[("exp", "reduced")], t[("reciprocal", "reduced")], "reduced"
    )
    assert np.array_equal(a.view(np.uint16), b.view(np.uint16)) and np.array_equal(
        x.view(np.uint16), before.view(np.uint16)
    )
    w = np.ones(9, np.float16)
    c = hw_sim.rmsnorm(x, w, 1e-5, t[("rsqrt", "direct")], "direct")
    d = hw_sim.rmsnorm(x.view(np.uint16), w.view(np.uint16), 1e-5, t[("rsqrt", "direct")], "direct")
    assert np.array_equal(c.view(np.uint16), d.view(np.uint16))


def test_standins_cover_both_table_kinds():
    s = standin_tables()
    assert s["recip_reduced"].function == "reciprocal" and s["rsqrt_single"].function == "rsqrt"


# -------------------------------------------------------------------- table fits role and mode
def _span_table(function, lo, hi):
    """A ``function`` table whose cutpoints span [lo, hi] (10 intervals, 8 bins each)."""
    cuts = np.geomspace(lo, hi, 11).astype(np.float16)
    cuts[0], cuts[-1] = lo, hi
    return nli.table_from_cutpoints(function, cuts.view(np.uint16), [8] * 10)


def _mismatches():
    """(call name, table slot, given table, mode, the given table's function): every role/mode
    misfit."""
    s = standin_tables()
    e, rr, rd = s["exp_below0"], s["recip_reduced"], s["recip_direct"]
    qr, qd, silu = s["rsqrt_single"], s["rsqrt_direct"], s["silu_wide"]
    return [
        (
            "softmax",
            "reciprocal",
            rr,
            "direct",
            "reciprocal",
        ),  # reduced-domain table in direct mode
        ("softmax", "reciprocal", rd, "reduced", "reciprocal"),  # direct table in reduced mode
        (
            "softmax",
            "reciprocal",
            _span_table("reciprocal", 1, 1.5),
            "reduced",
            "reciprocal",
        ),  # misses [1.5, 2)
        ("softmax", "reciprocal", e, "direct", "exp"),  # exp where a reciprocal is expected
        ("softmax", "reciprocal", qr, "reduced", "rsqrt"),
        ("softmax", "exp", rd, "direct", "reciprocal"),  # a reciprocal where exp is expected
        ("softmax", "exp", silu, "reduced", "silu"),
        ("rmsnorm", "rsqrt", qr, "direct", "rsqrt"),
        ("rmsnorm", "rsqrt", qd, "reduced", "rsqrt"),
        (
            "rmsnorm",
            "rsqrt",
            _span_table("rsqrt", 1, 2),
            "reduced",
            "rsqrt",
        ),  # the reciprocal's [1, 2]
        ("rmsnorm", "rsqrt", rr, "reduced", "reciprocal"),
        ("rmsnorm", "rsqrt", e, "direct", "exp"),
    ]


def _call(name, slot, table, mode, f32=False):
    s = standin_tables()
    good = {
        "exp": s["exp_below0"],
        "reciprocal": s["recip_" + mode],
        "rsqrt": s["rsqrt_single" if mode == "reduced" else "rsqrt_direct"],
    }
    good[slot] = table
    x = (np.random.default_rng(SEED).standard_normal((3, 8)) * 3).astype(
        np.float32 if f32 else np.float16
    )
    w = np.ones(8, np.float16)
    if name == "softmax":
        return (hw_sim.softmax_f32 if f32 else hw_sim.softmax)(
            x, good["exp"], good["reciprocal"], mode
        )
    return (hw_sim.rmsnorm_f32 if f32 else hw_sim.rmsnorm)(x, w, 1e-5, good["rsqrt"], mode)


@pytest.mark.parametrize("case", range(len(_mismatches())))
@pytest.mark.parametrize("f32", [False, True])
def test_table_that_does_not_fit_its_role_and_mode_is_rejected(case, f32):
    name, slot, table, mode, function = _mismatches()[case]
    with pytest.raises(SimInputError) as err:
        _call(name, slot, table, mode, f32)
    msg = str(err.value)
    assert f"{slot} table" in msg and f"'{function}'" in msg and f"{mode} mode" in msg, msg


def test_tables_that_fit_are_accepted():
    s = standin_tables()
    for mode in MODES:
        for name, slot in (("softmax", "reciprocal"), ("rmsnorm", "rsqrt")):
            table = (
                s["recip_" + mode]
                if slot == "reciprocal"
                else s["rsqrt_single" if mode == "reduced" else "rsqrt_direct"]
            )
            assert np.all(np.isfinite(_call(name, slot, table, mode)))
    # the silent misuse the check prevents: a reduced table in direct mode gives rows that do not
    # sum to 1
    x = np.zeros((1, 4), np.float16)
    good = hw_sim.softmax(x, s["exp_below0"], s["recip_direct"], "direct").astype(np.float64).sum()
    assert abs(good - 1) < ROW_SUM_TOL
    with pytest.raises(SimInputError, match="reduced-domain table"):
        hw_sim.softmax(x, s["exp_below0"], s["recip_reduced"], "direct")
