"""moe/commands.py (CLI), moe/op_counts.py, moe/pricing.py, moe/plots.py, moe/eval_report.py
(via engine.eval_report_for) on the tiny model."""

import json

import pytest
import torch

import engine
from engine.model import LlamaConfig
from moe.checkpoint import load_checkpoint
from moe.config import MoEConfig
from moe.op_counts import lookups, nonlinear_counts
from moe.pricing import UNITS, price, price_published
from nli.cli import main


def test_counts_hand_computed():
    cfg = LlamaConfig.tiny()  # 2 layers, dim 64, 4 heads, hidden 128
    dense = nonlinear_counts(cfg, None, seq=9)
    assert dense["silu"].elements == 2 * 128
    assert dense["rmsnorm"].rows == 5 and dense["rmsnorm"].elements == 5 * 64
    assert dense["attention_softmax"].rows == 8 and dense["attention_softmax"].elements == 8 * 5
    assert dense["router_softmax"].rows == 0
    moe = nonlinear_counts(
        cfg, MoEConfig(layers=(1,), num_experts=8, top_k=2, expert_hidden_dim=16), seq=9
    )
    assert moe["silu"].elements == 128 + 2 * 16
    assert moe["router_softmax"].rows == 1 and moe["router_softmax"].elements == 8
    lk = lookups(moe)
    assert lk == {"silu": 160.0, "exp": 48.0, "reciprocal": 9.0, "rsqrt": 5.0}


def test_published_pricing_hand_computed():
    c = nonlinear_counts(LlamaConfig.tiny(), None, seq=9)
    p1, p4 = price_published(c, 1), price_published(c, 4)
    passes = (
        256 + (2 * 40 + 8) + (2 * 320 + 5)
    )  # silu + softmax (2 passes + 1 reciprocal/row) + rmsnorm
    assert p1["nli"]["passes_per_token"] == passes
    assert p4["nli"]["cycles_per_token"] == pytest.approx(passes / 4)
    assert p1["nli"]["energy_pj_per_token"] == pytest.approx(passes * 34.0)
    assert p1["nn_lut"]["energy_pj_per_token"] / p1["nli"]["energy_pj_per_token"] == pytest.approx(
        46 / 34
    )
    assert p4["nn_lut"]["area_um2"] == 4 * UNITS["nn_lut"]["area_um2"]


def test_price_uses_the_simulator_model_when_present():
    hw_model = pytest.importorskip("hw_sim.hw_model")
    moe_cfg = MoEConfig(layers=(1,), num_experts=8, top_k=2, expert_hidden_dim=16)
    c = nonlinear_counts(LlamaConfig.tiny(), moe_cfg, seq=9)
    p = price(c, 4)
    assert p == hw_model.price_counts({k: (v.rows, v.elements) for k, v in c.items()}, 4)
    assert p["nli"]["cycles_per_token"] == pytest.approx(price(c, 1)["nli"]["cycles_per_token"] / 4)
    assert p["nn_lut"]["energy_pj_per_token"] > p["nli"]["energy_pj_per_token"]


def test_cli_upcycle_grow_report_cost(tmp_path, capsys):
    ck, ck2 = tmp_path / "ck", tmp_path / "ck2"
    assert (
        main(
            [
                "moe",
                "upcycle",
                "--model",
                "tiny",
                "--method",
                "drop",
                "--experts",
                "4",
                "--top-k",
                "2",
                "--layers",
                "1",
                "--opt",
                "ratio=0.25",
                "-o",
                str(ck),
            ]
        )
        == 0
    )
    m = load_checkpoint(ck)
    assert m.moe_config.layers == (1,) and m.moe_config.options["ratio"] == 0.25
    assert (ck / "tokenizer.json").is_file()
    assert (
        main(["moe", "grow", str(ck), "--factor", "2", "--select", "weight_norm", "-o", str(ck2)])
        == 0
    )
    assert load_checkpoint(ck2).moe_config.num_experts == 8
    assert (
        main(
            [
                "moe",
                "report",
                str(ck2),
                "--dense",
                "tiny",
                "--windows",
                "1",
                "--json",
                str(tmp_path / "r.json"),
            ]
        )
        == 0
    )
    rep = json.loads((tmp_path / "r.json").read_text())
    assert len(rep["layers"]["1"]["expert_load"]) == 8
    assert (
        main(
            [
                "eval",
                "cost",
                "--model",
                str(ck2),
                "--seq",
                "16",
                "--lanes",
                "2",
                "--json",
                str(tmp_path / "c.json"),
            ]
        )
        == 0
    )
    cost = json.loads((tmp_path / "c.json").read_text())
    assert cost["per_token"]["router_softmax"]["elements"] == 8 and "model output" in cost["label"]
    capsys.readouterr()
    assert (
        main(
            [
                "moe",
                "upcycle",
                "--model",
                "tiny",
                "--method",
                "drop",
                "--opt",
                "nope=1",
                "-o",
                str(ck),
            ]
        )
        == 2
    )
    assert "bad --opt" in capsys.readouterr().err
    assert (
        main(
            [
                "moe",
                "upcycle",
                "--model",
                "tiny",
                "--method",
                "sparse",
                "--layers",
                "7",
                "-o",
                str(ck),
            ]
        )
        == 2
    )


def test_eval_report_on_checkpoint(tmp_path):
    pytest.importorskip("engine.substitution")
    assert (
        main(
            [
                "moe",
                "upcycle",
                "--model",
                "tiny",
                "--method",
                "sparse",
                "--experts",
                "4",
                "-o",
                str(tmp_path / "c"),
            ]
        )
        == 0
    )
    m = load_checkpoint(tmp_path / "c")
    report = engine.eval_report_for(m)  # registered for MoE models by `import moe`
    assert (
        report is not None and engine.eval_report_for(engine.load_tiny()[0]) is None
    )  # dense: none
    ids = torch.randint(0, 256, (40,), generator=torch.Generator().manual_seed(0))
    rep = report(m, ids, variant="ref", window=20)
    assert rep["routing_agreement"] == 1.0  # ref vs ref: identical routes
    assert set(rep["expert_load"]) == {"ref"} and len(rep["expert_load"]["ref"]["1"]) == 4
    rep = report(m, ids, variant="fp16", window=20)
    assert 0.5 <= rep["routing_agreement"] <= 1.0 and set(rep["expert_load"]) == {"ref", "fp16"}


def test_plot_expert_load(tmp_path):
    from moe.plots import plot_expert_load

    path = plot_expert_load(
        {"a": {"0": [0.5, 0.5], "1": [0.9, 0.1]}, "b": {"0": [0.2, 0.8], "1": [0.5, 0.5]}},
        tmp_path / "load.png",
    )
    assert path.stat().st_size > 1000
    with pytest.raises(ValueError):
        plot_expert_load({}, tmp_path / "x.png")
