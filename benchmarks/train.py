"""Data-constrained En->XX fine-tuning benchmark: SPRI vs dense FT and the other upcycling methods.

Runs in resumable parts: every (run, seed) writes its result JSON to
``<cache>/<name>_s<seed>.json`` and is skipped when rerun with the same
config; a run interrupted mid-training resumes from its checkpoint in
``<runs>/<name>_s<seed>/state.pt`` (bitwise the same result). Order: the
SPRI (rho, s) sweep on a dev subset, then the comparison. When all are
cached, the combined table goes to ``--out`` (default
benchmarks/results/train.json) with the SPRI language-by-expert heatmap.

    python benchmarks/train.py                  # everything (many CPU hours; resumable)
    python benchmarks/train.py --only sweep     # one part
    python benchmarks/train.py --max-runs 1     # at most one new run this session
    python benchmarks/train.py --smoke          # tiny budget end to end + projected full cost
"""

# The parts: train_plan.py (the runs), train_run.py (a run's data, record and cache, shared
# with train_gpu.py), train_init_sweep.py, train_nli_stage.py, train_aggregate.py (over seeds,
# verdict), train_heatmap.py and train_projection.py (--smoke).

from __future__ import annotations

import argparse
import json
from pathlib import Path
import shutil
import sys
import time

import torch
from train_aggregate import aggregate, verdict
from train_heatmap import plot_heatmap
from train_init_sweep import init_sweep
from train_nli_stage import nli_stage
from train_plan import best_spri, main_plan, sweep_plan
from train_projection import projection
from train_run import load_data, per_lang, run_record, same_run

from moe.finetune.train import train
from moe.finetune.train_setup import SCOPES, TrainConfig, device_label
from moe.finetune.translate_eval import evaluate_translation

from results_io import write_json


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--data",
        default="out/data/translation.json",
        help="data file (built by `nli data fetch` if missing)",
    )
    p.add_argument("--model", default="smollm2")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument(
        "--stage1-frac", type=float, default=0.25, help="SPRI stage-1 share of the steps"
    )
    p.add_argument(
        "--seeds", default="0,1", help="seeds of dense_full, sparse and spri (others: the first)"
    )
    p.add_argument("--sweep-steps", type=int, default=50)
    p.add_argument("--sweep-dev-per-lang", type=int, default=25)
    p.add_argument(
        "--gen-per-lang",
        type=int,
        default=25,
        help="test pairs per language translated for chrF++/BLEU",
    )
    p.add_argument("--max-new", type=int, default=64)
    p.add_argument(
        "--nli-per-lang",
        type=int,
        default=25,
        help="test pairs per language of the nli re-evaluation",
    )
    p.add_argument(
        "--nli-gen-per-lang", type=int, default=5, help="of which translated (nli decoding is slow)"
    )
    p.add_argument(
        "--only",
        nargs="*",
        default=None,
        help="run names (or 'init_sweep', 'sweep', 'nli') to run this session; "
        "--only with no name writes the combined report from cached runs",
    )
    p.add_argument("--max-runs", type=int, default=None, help="stop after this many new runs")
    p.add_argument(
        "--cache", default="benchmarks/results/train", help="per-run result JSON directory"
    )
    p.add_argument(
        "--runs",
        default="out/train_runs",
        help="training checkpoints (deleted once a run is cached)",
    )
    p.add_argument("--out", default="benchmarks/results/train.json")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument(
        "--device",
        default="cpu",
        help="cpu, cuda or cuda:N (part of each run's cache key unless cpu)",
    )
    p.add_argument(
        "--scope",
        default="ffn",
        choices=SCOPES,
        help="what the MoE methods train: the upcycled FFNs (ffn) or every parameter (full); "
        "benchmarks/train_gpu.py runs the full-scope comparison",
    )
    p.add_argument(
        "--smoke", action="store_true", help="tiny budget: 2 steps, 2 test pairs/lang, 3 methods"
    )
    a = p.parse_args(argv)
    if a.smoke:
        a.steps, a.sweep_steps, a.seeds, a.sweep_dev_per_lang, a.gen_per_lang, a.max_new = (
            2,
            1,
            "0",
            2,
            1,
            16,
        )
        a.nli_per_lang, a.nli_gen_per_lang = 1, 1
        a.cache, a.out = "benchmarks/results/train_smoke", "benchmarks/results/train_smoke.json"
        a.runs = "out/train_runs_smoke"
    return a


def cached(a, name: str, cfg: TrainConfig) -> dict | None:
    path = Path(a.cache) / f"{name}_s{cfg.seed}.json"
    if not path.is_file():
        return None
    res = json.loads(path.read_text(encoding="utf-8"))
    if not same_run(res, cfg.to_dict(), a.model, a.data_sha256):
        print(
            f"[train bench] {path.name}: cached config differs from this plan; rerunning",
            flush=True,
        )
        return None
    return res


def run_one(a, name, cfg, dense, tok, train_recs, eval_recs, gen_per_lang) -> dict:
    run_dir = Path(a.runs) / f"{name}_s{cfg.seed}"
    print(
        f"[train bench] {name} seed {cfg.seed}: {cfg.steps} steps x batch {cfg.batch_size}",
        flush=True,
    )
    model, summary = train(dense, tok, train_recs, cfg, run_dir)
    ev = evaluate_translation(
        model, tok, eval_recs, gen_per_lang=gen_per_lang, max_new_tokens=a.max_new, progress=True
    )
    split = "dev" if name.startswith("sweep") else "test"
    res = run_record(
        name, cfg, summary, ev, split, a.model, a.data_sha256, device_label(cfg.device)
    )
    if cfg.method not in ("dense_full", "dense_ffn") and not name.startswith("sweep"):
        from moe.checkpoint import (
            save_checkpoint,
        )  # kept for the `nli` re-evaluation of the best MoE

        save_checkpoint(
            Path(a.runs) / "final" / f"{name}_s{cfg.seed}", model, {"source": a.model, "run": name}
        )
    write_json(Path(a.cache) / f"{name}_s{cfg.seed}.json", res)
    shutil.rmtree(run_dir, ignore_errors=True)
    del model
    return res


def check_only(a) -> None:
    """Reject ``--only`` names that no part of the plan has (a typo would silently run nothing)."""
    if not a.only:  # None: everything; []: no new run, only the combined report
        return
    known = {"init_sweep", "sweep", "nli"} | {n for n, _ in sweep_plan(a) + main_plan(a, {})}
    bad = [n for n in a.only if n not in known]
    if bad:
        raise SystemExit(
            f"benchmarks/train.py: --only: unknown run name(s) {', '.join(bad)}; "
            f"known: {', '.join(sorted(known))}"
        )


def main(argv=None) -> int:
    a = parse_args(argv)
    check_only(a)
    torch.set_num_threads(a.threads)
    import engine

    data = load_data(a.data)
    a.data_sha256 = data["split_sha256"]
    dense, tok = engine.load_model(a.model)
    dense.eval()
    train_recs, dev, test = data["train"], data["dev"], data["test"]
    if a.smoke:
        train_recs = train_recs[:64]
        test = [r for lang in data["languages"] for r in [x for x in test if x["lang"] == lang][:2]]
    dev_sub = per_lang(dev, a.sweep_dev_per_lang)
    new = 0

    def wanted(n: str) -> bool:
        return a.only is None or n in a.only or (n.startswith("sweep") and "sweep" in a.only)

    def do(plan, eval_recs, gen):
        nonlocal new
        out = []
        for name, cfg in plan:
            res = cached(a, name, cfg)
            if res is None and wanted(name) and (a.max_runs is None or new < a.max_runs):
                res = run_one(a, name, cfg, dense, tok, train_recs, eval_recs, gen)
                new += 1
            if res is not None:
                out.append(res)
        return out

    t0 = time.perf_counter()
    init_pts = init_sweep(a, dense, tok, dev_sub)
    sweep = do(sweep_plan(a), dev_sub, 0)
    done_sweep = len(sweep) == len(sweep_plan(a))
    spri_opts = best_spri(sweep) if done_sweep else None
    plan = main_plan(a, spri_opts or {})
    if spri_opts is None:  # SPRI runs wait for the sweep's choice of (rho, s); the others need not
        plan = [(n, c) for n, c in plan if c.method != "spri"]
    results = do(plan, test, a.gen_per_lang)
    todo = len(sweep_plan(a)) - len(sweep) + (len(main_plan(a, spri_opts or {})) - len(results))
    report = {
        "data": {
            k: data[k]
            for k in ("sources", "extracted", "extracted_sha256", "split_sha256", "counts")
        },
        "args": vars(a),
        "init_sweep": init_pts,
        "sweep": [
            {"opts": r["config"]["upcycle_opts"], "dev_loss": r["eval"]["loss_mean"]} for r in sweep
        ],
        "spri_opts": spri_opts,
        "complete": todo == 0,
        "missing_runs": todo,
        "session_seconds": time.perf_counter() - t0,
    }
    if results:
        agg = aggregate(results)
        report.update(methods=agg, verdict=verdict(agg))
        report["nli"] = nli_stage(a, results, tok, test, complete=todo == 0)
        spri0 = next((r for r in results if r["name"] == "spri"), None)
        if spri0 is not None and spri0["eval"]["counts"]:
            report["heatmap"] = str(
                plot_heatmap(spri0, Path(a.out).with_name(Path(a.out).stem + "_spri_heatmap.png"))
            )
    if a.smoke and results:
        report["projection_full"] = projection(sweep + results, a.max_new, parse_args([]))
    write_json(Path(a.out), report)
    print(
        f"[train bench] wrote {a.out}: {len(sweep) + len(results)} runs cached, {todo} missing",
        flush=True,
    )
    if report.get("projection_full"):
        pj = report["projection_full"]
        print(
            f"[train bench] projected full plan: {pj['runs']} runs, "
            f"train {pj['train_hours']:.1f} h, "
            f"generation <= {pj['generation_hours_upper']:.1f} h, "
            f"loss eval {pj['loss_eval_hours']:.1f} h, "
            f"total {pj['total_hours']:.1f} h",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
