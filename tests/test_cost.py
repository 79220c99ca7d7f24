"""hw_sim.hw_model: the cycle model's counts and the area/power model's calibration."""

import math

import pytest

from hw_sim import hw_model
from hw_sim.hw_model import UnitConfig


def test_published_efficiency_formula_reproduces_the_table():
    for d in hw_model.PUBLISHED:
        assert hw_model.efficiency(
            hw_model.PUBLISHED_THROUGHPUT, d.area_um2, d.power_mw
        ) == pytest.approx(d.efficiency, abs=0.005)


def test_fit_residuals_and_labels():
    m = hw_model.fit_area_power()
    assert "not a measurement" in m.fit["label"]
    rows = {d["design"]: d for d in m.fit["designs"]}
    # NLI is the only 10-comparator design: a 2-coefficient line goes through it
    assert rows["NLI"]["residual"]["area_um2"] == pytest.approx(0, abs=1e-6)
    # NN-LUT and RI-LUT share an inventory: the model sits at their mean, residual = half their gap
    assert rows["NN-LUT"]["residual"]["area_um2"] == pytest.approx((23647 - 23238) / 2)
    assert rows["RI-LUT"]["residual"]["power_mw"] == pytest.approx(-1.0)
    for d in rows.values():
        assert (
            abs(d["relative_residual"]["area"]) < 0.01
            and abs(d["relative_residual"]["power"]) < 0.025
        )
    nli = next(p for p in hw_model.PUBLISHED if p.name == "NLI")
    assert m.area_um2(nli.comparators, nli.lut_entries, nli.registers) == pytest.approx(7787)
    # more comparators and entries cost more, in both metrics
    assert m.area_um2(16, 513, 16) > m.area_um2(10, 259, 10) and m.power_mw(16, 513, 16) > 34
    with pytest.raises(ValueError):
        hw_model.fit_area_power(0)


def test_cycle_counts():
    one = UnitConfig()
    assert hw_model.elementwise_cycles(0, one) == 0
    assert hw_model.elementwise_cycles(1, one) == 4  # the 4-cycle fill
    assert hw_model.elementwise_cycles(1000, one) == 1003  # then one result per cycle
    assert hw_model.elementwise_cycles(1000, UnitConfig(lanes=16)) == 4 + math.ceil(1000 / 16) - 1
    s1 = hw_model.softmax_cycles(1024, 1, "direct", one)
    assert s1["cycles"] == 1024 + (1024 + 3) + 4 + (1024 + 3)  # max, exp+sum, 1/s, scale
    assert hw_model.softmax_cycles(1024, 1, "reduced", one)["cycles"] == s1["cycles"] + 1
    r1 = hw_model.rmsnorm_cycles(576, 1, "direct", one)
    assert r1["cycles"] == (576 + 3) + (4 + 2) + (576 + 3) + 1
    wide = UnitConfig(lanes=16)
    one_row = hw_model.softmax_cycles(1024, 1, "direct", wide)
    assert one_row["schedule"] == "spread" and one_row["cycles"] >= 1024  # the sequential sum binds
    many = hw_model.softmax_cycles(1024, 64, "direct", wide)
    assert many["schedule"] == "row_parallel" and many["cycles"] == 4 * s1["cycles"]
    slow_adder = UnitConfig(lanes=16, adder_latency=4)
    assert hw_model.softmax_cycles(1024, 1, "direct", slow_adder)["cycles"] > one_row["cycles"]
    assert hw_model.seconds(1000, UnitConfig(clock_hz=2e9)) == pytest.approx(5e-7)


def test_config_validation():
    for bad in (
        dict(lanes=0),
        dict(depth=0),
        dict(clock_hz=0.0),
        dict(clock_hz=float("inf")),
        dict(adder_latency=0),
    ):
        with pytest.raises(ValueError):
            UnitConfig(**bad)
    with pytest.raises(ValueError, match="mode"):
        hw_model.softmax_cycles(8, 1, "fast")
    with pytest.raises(ValueError):
        hw_model.elementwise_cycles(-1)


def test_price_counts_for_the_moe_package():
    counts = {"silu": (1.0, 1536.0), "attention_softmax": (9.0, 2304.0), "rmsnorm": (2.0, 1152.0)}
    p = hw_model.price_counts(counts, lanes=8)
    assert set(p) == {"nli", "nn_lut", "ri_lut"}
    passes = 1536 + 3 * 2304 + 9 + 2 * 1152 + 3 * 2
    assert p["nli"]["passes_per_token"] == passes and p["nli"]["cycles_per_token"] == passes / 8
    assert p["nli"]["energy_pj_per_token"] == pytest.approx(
        passes * 34.0
    )  # 34 mW at 1 GHz: 34 pJ/pass
    assert p["nn_lut"]["energy_pj_per_token"] > p["nli"]["energy_pj_per_token"]
    assert "not a measurement" in p["nli"]["source"]
    with pytest.raises(ValueError):
        hw_model.price_counts(counts, lanes=0)


def test_table_hw_cost_of_the_paper_layout_matches_nli():
    import numpy as np

    import nli

    cuts = np.array([-8, -4, -2, -1, -0.5, 0, 0.5, 1, 2, 4, 8], np.float16).view(np.uint16)
    t = nli.table_from_cutpoints("silu", cuts, [1] + [32] * 8 + [1])
    c = hw_model.table_hw_cost(t)
    assert (c["comparators"], c["lut_entries"], c["registers"]) == (10, 259, 10)
    assert c["area_um2"] == pytest.approx(7787) and c["efficiency"] == pytest.approx(
        3.777, abs=0.01
    )
