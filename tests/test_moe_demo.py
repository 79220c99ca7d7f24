"""moe/demo.py on the tiny model: the demo's pure part and its plot run end to end."""

import math

import pytest

from engine import load_model
from moe.demo import demo_moe
from moe.plots import plot_expert_load


@pytest.fixture(scope="module")
def tiny():
    return load_model("tiny")


def test_demo_moe_reports_and_plots(tiny, tmp_path):
    model, tok = tiny
    res = demo_moe(model, tok, max_tokens=64, window=32)
    assert res["method"] == "spri" and res["experts"] == 8 and res["top_k"] == 2
    assert (
        res["tokens"] > 0
        and math.isfinite(res["moe_ppl_ref"])
        and math.isfinite(res["moe_ppl_nli"])
    )
    assert 0.0 <= res["routing_agreement"] <= 1.0
    # every MoE layer's load is a distribution over the 8 experts, for ref and nli
    for label in ("ref", "nli"):
        assert set(res["expert_load"][label]) == {str(i) for i in res["layers"]}
        for load in res["expert_load"][label].values():
            assert len(load) == 8 and abs(sum(load) - 1.0) < 1e-6
    png = plot_expert_load(res["expert_load"], tmp_path / "load.png")
    assert png.stat().st_size > 1000
