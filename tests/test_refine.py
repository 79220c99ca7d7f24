"""hw_sim.refine: datapath-aware LUT refinement."""

import numpy as np
import pytest
from sim_tables import standin_tables

from hw_sim import run_elementwise
from hw_sim.refine import RefineConfig, refine_table
from hw_sim.report import error_report

S = standin_tables()


@pytest.mark.parametrize("objective", ["mean_rel", "pct_cr", "max_ulp"])
def test_refinement_improves_its_objective_and_reports_truthfully(objective):
    t = S["exp_below0"]
    new, summary = refine_table(t, RefineConfig(objective=objective, sweeps=2))
    b, a = summary["before"], summary["after"]
    assert a == error_report(new)  # the 'after' numbers are a fresh full run
    assert b == error_report(t)
    key = {
        "mean_rel": ("mean_rel_error", -1),
        "pct_cr": ("pct_correctly_rounded", 1),
        "max_ulp": ("max_ulp", -1),
    }
    k, sign = key[objective]
    assert sign * (a[k] - b[k]) > 0  # strictly better on its objective
    assert (
        new.meta["refined"]["objective"] == objective and new.meta["refined"]["changed_entries"] > 0
    )
    assert new.function == t.function and np.array_equal(new.cutpoints, t.cutpoints)
    assert np.array_equal(new.mul.view(np.uint32), t.mul.view(np.uint32))


def test_refinement_in_fp16_precision_and_on_a_reduced_table():
    t = S["recip_reduced"].with_precision("fp16")
    new, summary = refine_table(t, RefineConfig(objective="mean_rel", sweeps=1, radius=1))
    assert new.precision == "fp16"
    assert summary["after"]["mean_rel_error"] <= summary["before"]["mean_rel_error"]
    # the refined table is a valid table the simulator runs like any other
    x = np.arange(0x3C00, 0x4000, dtype=np.uint16)
    assert run_elementwise(new, x).dtype == np.float16


def test_config_validation():
    with pytest.raises(ValueError, match="objective"):
        RefineConfig(objective="max")
    with pytest.raises(ValueError, match="radius"):
        RefineConfig(radius=0)


def test_pareto_refinement_never_worsens_any_metric():
    for name in ("exp_below0", "silu_wide"):
        t = S[name]
        new, summary = refine_table(t, RefineConfig(objective="pareto", sweeps=2))
        b, a = summary["before"], summary["after"]
        assert a["mean_rel_error"] <= b["mean_rel_error"]
        assert a["pct_correctly_rounded"] >= b["pct_correctly_rounded"]
        assert a["max_ulp"] <= b["max_ulp"]
        assert (
            a["mean_rel_error"] < b["mean_rel_error"]
            or a["pct_correctly_rounded"] > b["pct_correctly_rounded"]
            or a["max_ulp"] < b["max_ulp"]
        )


def test_refining_a_refined_table_changes_nothing_it_cannot_improve():
    t = S["recip_reduced"]
    once, _ = refine_table(t, RefineConfig(objective="pareto", sweeps=20))
    twice, summary = refine_table(once, RefineConfig(objective="pareto"))
    assert summary["refined"]["changed_entries"] == 0 and np.array_equal(twice.lut, once.lut)
