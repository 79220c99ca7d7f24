"""benchmarks/train_report.py: tables and verdict from per-run JSONs.

Synthetic runs, real sacrebleu."""

import json
from pathlib import Path
import sys

import pytest
from test_bootstrap import HYP_A, HYP_B, _recs, _translations

from moe.finetune.translate_eval import score_translations

# the benchmark scripts import their siblings (results_io, train_gpu), as they do when run
# as `python benchmarks/X.py`
sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
import train_report  # noqa: E402  (needs benchmarks/ on the path, set just above)


def _run(name, method, seed, hyps, steps=200, device="cuda:Test GPU"):
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
        "device": device,
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


def _sweep_run(method, lr, loss, device):
    return {
        "name": f"lrsweep_{method}_lr{lr:g}",
        "seed": 0,
        "eval_split": "dev",
        "config": {"method": method, "lr": lr, "steps": 50},
        "eval": {"loss_mean": loss},
        "device": device,
    }


def _write(cache: Path, runs: list[dict], lr_choice: dict | None = None) -> None:
    cache.mkdir(parents=True)
    for r in runs:
        (cache / f"{r['name']}_s{r['seed']}.json").write_text(json.dumps(r))
    if lr_choice is not None:
        (cache / "lr_choice.json").write_text(json.dumps(lr_choice))


def test_section_equal_scope_keeps_devices_apart_and_lists_what_is_missing(tmp_path):
    lr = {
        "dense_full": {
            "lr": 1e-4,
            "dev_loss": {"5e-05": 2.5, "0.0001": 2.25, "0.0003": 2.75},
            "sweep_steps": 50,
            "dev_pairs_per_lang": 25,
        }
    }
    sweep = [
        _sweep_run("dense_full", x, y, "cpu") for x, y in ((5e-5, 2.5), (1e-4, 2.25), (3e-4, 2.75))
    ]
    test = [_run("spri_full", "spri", 0, HYP_A, device="cpu")]
    test += [_run("dense_full", "dense_full", 0, HYP_B, device="cpu")]
    # the same cache, another device
    other = [_run("dense_full", "dense_full", 1, HYP_A, device="cuda:Other")]
    _write(tmp_path / "cpu", sweep + test + other, lr)
    caches = (("GPU", tmp_path / "gpu"), ("CPU", tmp_path / "cpu"))  # no GPU cache at all
    blocks = train_report.section_equal_scope(caches, n=50)
    md = "\n\n".join(blocks)
    want = train_report.expected_runs()
    assert len(want) == 23 and len(set(want)) == 23
    gpu, cpu = md.index("### GPU"), md.index("### CPU")
    assert f"Not yet measured: 23 of 23 runs missing: `{want[0]}`" in md[gpu:cpu]
    have = [f"{r['name']}_s{r['seed']}" for r in sweep + test + other]
    missing = [w for w in want if w not in have]
    assert len(missing) == 23 - 6
    gpu_line, cpu_line = [b for b in blocks if b.startswith("Not yet measured")]
    assert gpu_line.startswith(f"Not yet measured: 23 of 23 runs missing: `{want[0]}`, ")
    assert cpu_line == (
        "Not yet measured: 17 of 23 runs missing: " + ", ".join(f"`{m}`" for m in missing) + "."
    )
    # one comparison per device: the CPU one has SPRI and dense_full, the other only dense_full
    cpu_at, other_at = md.index("Runs on cpu:"), md.index("Runs on cuda:Other:")
    assert cpu_at < other_at  # runs in file-name order: dense_full_s0 (cpu) first
    cpu_part, other_part = md[cpu_at:other_at], md[other_at:]
    assert "| SPRI - dense_full (all seeds) | +" in cpu_part  # measured, A better
    assert "| cpu |" in cpu_part and "cuda:Other" not in cpu_part
    assert "| SPRI - dense_full (all seeds) | not measured | not measured | cuda:Other |" in (
        other_part
    )
    assert "| cpu " not in other_part and "cpu (12)" not in other_part
    # the CPU LR sweep is labelled with its device and not repeated for the other device
    assert md.count("| dense_full | 2.5000 | 2.2500 | 2.7500 | 0.0001 | cpu |") == 1


def test_lr_choice_only_for_the_device_that_swept():
    runs = [_sweep_run("dense_full", 1e-4, 2.0, "cpu"), _sweep_run("spri", 1e-4, 2.0, "cuda:X")]
    runs.append(_sweep_run("sparse", 1e-4, 2.0, "cpu"))
    runs.append(_sweep_run("sparse", 3e-4, 2.0, "cuda:X"))  # a mixed sweep belongs to no device
    lc = {m: {"lr": 1e-4} for m in ("dense_full", "spri", "sparse")}
    assert train_report.lr_choice_on(lc, runs, "cpu") == {"dense_full": {"lr": 1e-4}}
    assert train_report.lr_choice_on(lc, runs, "cuda:X") == {"spri": {"lr": 1e-4}}


def test_headline_rows_state_each_measured_claim_with_its_interval(tmp_path):
    runs = [_run("spri_full", "spri", s, HYP_A, device="cpu") for s in (0, 1)]
    runs += [_run("dense_full", "dense_full", 0, HYP_B, device="cpu")]
    _write(tmp_path / "cpu", runs)
    rows = train_report.headline_rows((("CPU", tmp_path / "cpu"),), n=50)
    rep = train_report.build_report(runs, {}, None, n=50)
    c = rep["claims"]["dense"]
    assert c["lo"] > 0  # A is much better than B on every sentence
    n_sent = rep["rows"]["dense_full"]["sentences"]
    assert rows == [  # no prior upcycling run: that claim has no row
        "| SPRI vs dense full fine-tuning (dense_full), equal trainable scope, cpu, 2 + 1 seeds, "
        f"{n_sent} test sentences | {c['delta']:+.2f} BLEU [{c['lo']:+.2f}, {c['hi']:+.2f}] "
        "(95% CI; paper +2.58): reproduces, the paper's size "
        + ("inside the interval |" if c["size_agrees"] else "outside it |")
    ]
    assert train_report.headline_rows((("GPU", tmp_path / "none"),), n=50) == []


def test_stage_verdict_reads_the_interval():
    from train_comparison_md import stage_verdict

    assert stage_verdict({"lo": 0.1, "hi": 0.9}) == "two-stage better"
    assert stage_verdict({"lo": -1.45, "hi": -0.37}) == "one-stage better"
    assert stage_verdict({"lo": -0.2, "hi": 0.3}) == "no significant difference"


def test_long_budget_pairs_the_largest_multiple_measured_for_both(tmp_path):
    runs = [_run("spri_full", "spri", 0, HYP_A), _run("dense_full", "dense_full", 0, HYP_B)]
    runs += [
        _run("spri_full_x2", "spri", 0, HYP_B, steps=400),
        _run("dense_full_x2", "dense_full", 0, HYP_A, steps=400),
        _run("spri_full_x4", "spri", 0, HYP_B, steps=800),  # its dense partner is missing
    ]
    rep = train_report.build_report(runs, {}, None, n=50)
    t = rep["long_budget"]
    assert t["factor"] == 2 and rep["comparisons"]["spri_vs_dense_long"]["a"] == "spri_full_x2"
    b = t["bleu"]
    assert b["gap_1x"] > 0 > b["gap_2x"] and t["reading"] == "shrinks"
    assert b["change"]["delta"] == pytest.approx(b["gap_2x"] - b["gap_1x"], abs=1e-9)
    assert b["change"]["hi"] < 0  # A beats B on every sentence: the swap is significant
    md = train_report.render(rep)
    assert "at the long budget (2x the steps, seed 0)" in md
    assert "at 400 (2x); the change, " in md and "all four runs): shrinks." in md
    # the same runs at 1x and 2x: no change at all
    same = runs[:2] + [{**r, "name": r["name"] + "_x2"} for r in runs[:2]]
    flat = train_report.build_report(same, {}, None, n=50)["long_budget"]
    ch = flat["bleu"]["change"]  # float noise of the four means' sums only
    assert max(abs(ch["lo"]), abs(ch["hi"])) <= 1e-12
    assert flat["reading"] == "no significant change"
    # named explicitly, a multiple with no pair is not measured
    assert train_report.build_report(runs, {}, None, long_factor=4, n=50)["long_budget"] is None
    _write(tmp_path / "cpu", runs)
    rows = train_report.headline_rows((("CPU", tmp_path / "cpu"),), n=50)
    assert len(rows) == 2 and rows[1].startswith(
        "| SPRI vs dense full fine-tuning at 2x the steps (400 against 200), equal trainable "
    )
    assert rows[1].endswith("(95% CI over test sentences): shrinks |")
    md = "\n\n".join(train_report.section_equal_scope((("CPU", tmp_path / "cpu"),), n=50))
    assert "`spri_full_x4_s0`" not in md.split("Not yet measured")[1]  # measured, unpaired
    assert md.endswith(
        ". The long-budget comparison above is the 2x pair (`train_gpu.py --long-factor 2`), in "
        "place of the plan's 4x."
    )
