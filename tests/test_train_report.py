"""benchmarks/train_report.py: tables and verdict from per-run JSONs (synthetic runs, real
sacrebleu)."""

import importlib.util
from pathlib import Path

from test_bootstrap import HYP_A, HYP_B, _recs, _translations

from moe.finetune.translate_eval import score_translations

_spec = importlib.util.spec_from_file_location(
    "train_report", Path(__file__).parents[1] / "benchmarks/train_report.py"
)
train_report = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(train_report)


def _run(name, method, seed, hyps, steps=200):
    t = _translations(hyps)
    sc = score_translations(t["hyps"], _recs())
    return {
        "name": name,
        "seed": seed,
        "eval_split": "test",
        "config": {
            "method": method,
            "lr": 1e-4,
            "steps": steps,
            **({"scope": "full"} if method != "dense_full" else {}),
        },
        "summary": {"params": {"total": 10, "trainable": 10, "active": 8}, "train_seconds": 5.0},
        "eval": {"scores": sc, "loss_mean": 2.0, "translations": t},
        "torch_threads": 1,
        "device": "cuda:Test GPU",
        "concurrent_workers": 12,
    }


def test_verdict_follows_the_interval():
    runs = [_run("spri_full", "spri", s, HYP_A) for s in (0, 1)] + [
        _run("dense_full", "dense_full", s, HYP_B) for s in (0, 1)
    ]
    runs += [_run("sparse_full", "sparse", 0, HYP_A), _run("spri_1stage_full", "spri", 0, HYP_B)]
    lr = {
        "spri": {
            "lr": 1e-4,
            "dev_loss": {"0.0001": 2.0, "0.0003": 2.1},
            "sweep_steps": 50,
            "dev_pairs_per_lang": 25,
        }
    }
    rep = train_report.build_report(runs, lr, None, n=50)
    d = rep["comparisons"]["spri_vs_dense"]["bleu"]
    assert d["lo"] > 0  # A is much better than B on every sentence
    assert rep["claims"]["dense"]["status"].startswith("reproduces")
    assert rep["best_prior"] == "sparse_full"
    up = rep["comparisons"]["spri_vs_best_prior"]["bleu"]
    assert up["delta"] == up["lo"] == up["hi"] == 0.0  # same hypotheses
    assert rep["claims"]["upcycling"]["status"].startswith("does not reproduce (no significant")
    assert rep["comparisons"]["spri_vs_dense_long"] is None and rep["long_budget"] is None
    md = train_report.render(rep)
    assert "cuda:Test GPU (12)" in md and "Longer budget: not measured" in md and "| spri | " in md
