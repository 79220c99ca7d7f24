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

from __future__ import annotations

import argparse
from dataclasses import dataclass
import json
import math
from pathlib import Path
import shutil
import sys
import time

import numpy as np
import torch

from moe.finetune.train import train
from moe.finetune.train_setup import METHODS, MOE_METHODS, SCOPES, TrainConfig, device_label
from moe.finetune.translate_eval import evaluate_translation, mutual_information

from results_io import write_json

# 0.95 added after 0.9 came out best: is the optimum inside the grid?
SWEEP_RHO = (0.5, 0.75, 0.9, 0.95)
SWEEP_S = (1.0, 2.0, 4.0)
SMOKE_SWEEP = ((0.5, 8.0),)  # the --smoke sweep's one (rho, s) point
GROW_UTILITY = "saliency"
INIT_RHO = (0.25, 0.5, 0.75, 0.9)
INIT_S = (1.0, 2.0, 4.0, 8.0)
METRICS = (
    "chrf++_mean",
    "bleu_mean",
    "loss_mean",
    "ppl_mean",
    "train_seconds",
    "build_seconds",
    "eval_seconds",
    "mi_norm_mean",
    "load_cv_mean",
)

CHOSEN = "chosen"  # RunSpec.upcycle: the SPRI (rho, s) that the sweep chose
SEEDS_FROM = ("all", "first")


@dataclass(frozen=True)
class RunSpec:
    """One entry of the plan; its TrainConfig follows from the arguments and the seed.

    ``name`` may hold ``{rho}`` and ``{scale}``, filled from the upcycling
    options. ``seeds_from``: every ``--seeds`` ("all"), the first of them
    ("first"), or a fixed seed (int). ``steps``: ``--steps`` ("main") or
    ``--sweep-steps`` ("sweep"). ``upcycle``: fixed upcycling options as
    (key, value) pairs, or CHOSEN (the options handed to the expansion).
    ``two_stage``: SPRI's stage 1 takes ``--stage1-frac`` of the steps.
    """

    name: str
    method: str
    seeds_from: str | int = "first"
    steps: str = "main"
    upcycle: tuple[tuple[str, float], ...] | str = ()
    two_stage: bool = False
    grow_select: str | None = None

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"RunSpec {self.name}: unknown method {self.method!r}")
        if not (self.seeds_from in SEEDS_FROM or isinstance(self.seeds_from, int)):
            raise ValueError(f"RunSpec {self.name}: seeds_from {self.seeds_from!r}")
        if self.steps not in ("main", "sweep"):
            raise ValueError(f"RunSpec {self.name}: steps {self.steps!r}")
        if self.upcycle != CHOSEN and not isinstance(self.upcycle, tuple):
            raise ValueError(f"RunSpec {self.name}: upcycle {self.upcycle!r}")

    def seeds(self, seeds: list[int]) -> list[int]:
        if self.seeds_from == "all":
            return list(seeds)
        return seeds[:1] if self.seeds_from == "first" else [self.seeds_from]

    def expand(self, a, seed: int, chosen: dict) -> tuple[str, TrainConfig]:
        """(run name, config) of this entry for ``seed``; ``chosen``: SPRI's (rho, s)."""
        opts = dict(chosen) if self.upcycle == CHOSEN else dict(self.upcycle)
        kw = {}
        if self.upcycle:
            kw["upcycle_opts"] = opts
        if self.two_stage:
            kw["stage1_frac"] = a.stage1_frac
        if self.grow_select is not None:
            kw["grow_select"] = self.grow_select
        steps = a.sweep_steps if self.steps == "sweep" else None
        return self.name.format(**opts), _cfg(a, self.method, seed, steps, **kw)


# The SPRI (rho, s) sweep on dev: this run over SWEEP_RHO x SWEEP_S (SMOKE_SWEEP with --smoke).
SWEEP_RUN = RunSpec(
    "sweep_rho{rho}_s{scale:g}", "spri", 0, steps="sweep", upcycle=CHOSEN, two_stage=True
)
# The comparison, in this order: the "all"-seed runs seed by seed (the whole --smoke plan),
# then the "first"-seed ones. The SPRI runs use the sweep's (rho, s).
MAIN_RUNS = (
    RunSpec("dense_full", "dense_full", "all"),
    RunSpec("sparse", "sparse", "all"),
    RunSpec("spri", "spri", "all", upcycle=CHOSEN, two_stage=True),
    RunSpec("dense_ffn", "dense_ffn"),
    RunSpec("drop", "drop", upcycle=(("ratio", 0.5),)),
    RunSpec("partition", "partition"),
    RunSpec("cluster", "cluster"),
    RunSpec("spri_1stage", "spri", upcycle=CHOSEN),
    RunSpec("grow_uniform", "spri", upcycle=CHOSEN, two_stage=True, grow_select="uniform"),
    RunSpec(
        f"grow_{GROW_UTILITY}", "spri", upcycle=CHOSEN, two_stage=True, grow_select=GROW_UTILITY
    ),
)


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


def _cfg(a, method, seed, steps=None, **kw) -> TrainConfig:
    scope = a.scope if method in MOE_METHODS else "ffn"
    return TrainConfig(
        method=method,
        seed=seed,
        steps=steps or a.steps,
        batch_size=a.batch,
        lr=a.lr,
        scope=scope,
        device=a.device,
        **kw,
    )


def sweep_plan(a) -> list[tuple[str, TrainConfig]]:
    grid = SMOKE_SWEEP if a.smoke else [(r, s) for r in SWEEP_RHO for s in SWEEP_S]
    (seed,) = SWEEP_RUN.seeds([])
    return [SWEEP_RUN.expand(a, seed, {"rho": r, "scale": s}) for r, s in grid]


def init_sweep(a, dense, tok, dev_sub: list[dict]) -> list[dict]:
    """Dev target loss of SPRI at initialization (no training) over a (rho, s) grid.

    Cached, cheap."""
    from moe.finetune.translate_eval import teacher_forced_stats
    from moe.upcycling import upcycle

    path = Path(a.cache) / "init_sweep.json"
    grid = [(r, s) for r in INIT_RHO for s in INIT_S]
    pts = []
    if path.is_file():  # complete or partial (each point is saved as it is measured)
        got = json.loads(path.read_text(encoding="utf-8"))
        if (
            got.get("model") == a.model
            and got.get("data_sha256") == a.data_sha256
            and got.get("dev_pairs") == len(dev_sub)
        ):
            pts = got["points"]
    if len(pts) == len(grid) + 1 or (a.only is not None and "init_sweep" not in a.only):
        return pts
    print(
        f"[train bench] SPRI init sweep: {len(grid) + 1 - len(pts)} of {len(grid) + 1} "
        "dev-loss evaluations "
        f"(dense + {len(grid)} (rho, s) points) left, on {len(dev_sub)} dev pairs",
        flush=True,
    )

    def save():
        write_json(
            path,
            {
                "model": a.model,
                "data_sha256": a.data_sha256,
                "dev_pairs": len(dev_sub),
                "points": pts,
            },
        )

    if not pts:
        pts.append(
            {
                "rho": None,
                "scale": None,
                "method": "dense",
                "dev_loss": teacher_forced_stats(dense, tok, dev_sub)["loss_mean"],
            }
        )
        save()
    for r, sc in grid[len(pts) - 1 :]:
        m = upcycle(dense, "spri", num_experts=8, top_k=2, seed=0, rho=r, scale=sc)
        pts.append(
            {
                "rho": r,
                "scale": sc,
                "method": "spri",
                "dev_loss": teacher_forced_stats(m, tok, dev_sub)["loss_mean"],
            }
        )
        print(f"  rho {r} s {sc:g}: dev loss {pts[-1]['dev_loss']:.3f}", flush=True)
        del m
        save()
    return pts


def main_plan(a, spri_opts: dict) -> list[tuple[str, TrainConfig]]:
    seeds = [int(s) for s in a.seeds.split(",")]
    every = [r for r in MAIN_RUNS if r.seeds_from == "all"]
    runs = [r.expand(a, seed, spri_opts) for seed in seeds for r in every]
    if a.smoke:
        return runs
    rest = [r for r in MAIN_RUNS if r.seeds_from != "all"]
    return runs + [r.expand(a, seed, spri_opts) for r in rest for seed in r.seeds(seeds)]


def load_data(a) -> dict:
    from moe.finetune.data_io import build_dataset, read_dataset, write_dataset

    if not Path(a.data).is_file():
        write_dataset(build_dataset(), a.data)
    return read_dataset(a.data)


def cached(a, name: str, cfg: TrainConfig) -> dict | None:
    path = Path(a.cache) / f"{name}_s{cfg.seed}.json"
    if not path.is_file():
        return None
    res = json.loads(path.read_text(encoding="utf-8"))
    if (
        res["config"] != cfg.to_dict()
        or res.get("model") != a.model
        or res.get("data_sha256") != a.data_sha256
    ):
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
    res = {
        "name": name,
        "seed": cfg.seed,
        "model": a.model,
        "data_sha256": a.data_sha256,
        "config": cfg.to_dict(),
        "summary": {k: v for k, v in summary.items() if k != "config"},
        "eval": ev,
        "eval_split": "dev" if name.startswith("sweep") else "test",
        "torch_threads": torch.get_num_threads(),
        "device": device_label(cfg.device),
    }
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


def nli_stage(a, results: list[dict], tok, test: list[dict], complete: bool) -> dict | None:
    """The best MoE run (test chrF++) re-evaluated with every op on `nli`; cached like a run.

    Runs by itself once the comparison is complete; ``--only nli`` runs it on the best MoE
    cached so far (the result records which runs it was chosen from)."""
    from moe.checkpoint import load_checkpoint
    from moe.finetune.translate_eval import nli_comparison

    moe_runs = [
        r
        for r in results
        if r["config"]["method"] not in ("dense_full", "dense_ffn")
        and r["eval"]["scores"]["chrf++_mean"] is not None
    ]
    if not moe_runs:
        return None
    best = max(moe_runs, key=lambda r: r["eval"]["scores"]["chrf++_mean"])
    run_ids = [f"{r['name']}_s{r['seed']}" for r in moe_runs]
    path = Path(a.cache) / f"nli_{best['name']}_s{best['seed']}.json"
    if (
        path.is_file()
    ):  # still the best: say of which runs, now (the file keeps what it was chosen from)
        res = json.loads(path.read_text(encoding="utf-8"))
        return {**res, "best_of": run_ids, "best_of_complete": complete}
    if not (a.only is not None and "nli" in a.only) and not (a.only is None and complete):
        older = sorted(
            Path(a.cache).glob("nli_*.json"), key=lambda p: p.stat().st_mtime
        )  # an earlier best
        if not older:
            return None
        res = json.loads(older[-1].read_text(encoding="utf-8"))
        return {**res, "best_now": f"{best['name']}_s{best['seed']}"}
    ckpt = Path(a.runs) / "final" / f"{best['name']}_s{best['seed']}"
    if not ckpt.is_dir():
        print(
            f"[train bench] no checkpoint {ckpt} for the nli stage; rerun that run to make one",
            flush=True,
        )
        return None
    by = {}
    for r in test:
        by.setdefault(r["lang"], []).append(r)
    recs = [r for rs in by.values() for r in rs[: a.nli_per_lang]]
    print(
        f"[train bench] nli stage: {best['name']} seed {best['seed']} on {len(recs)} test pairs",
        flush=True,
    )
    try:
        cmp = nli_comparison(
            load_checkpoint(ckpt), tok, recs, a.nli_gen_per_lang, a.max_new, progress=True
        )
    except (
        ValueError,
        FileNotFoundError,
        ImportError,
    ) as e:  # e.g. NLI tables not built yet: not cached
        print(f"[train bench] nli stage failed: {e}", flush=True)
        return {"name": best["name"], "seed": best["seed"], "error": str(e)}
    res = {
        "name": best["name"],
        "seed": best["seed"],
        "chosen_from": run_ids,
        "comparison_complete": complete,
        **cmp,
    }
    write_json(path, res)
    return res


def best_spri(sweep: list[dict]) -> dict:
    best = min(sweep, key=lambda r: r["eval"]["loss_mean"])
    o = best["config"]["upcycle_opts"]
    return {"rho": o["rho"], "scale": o["scale"]}


def aggregate(results: list[dict]) -> dict:
    """{name: {metric: {"mean", "std", "seeds"}} , params} over seeds."""
    out: dict = {}
    for name in dict.fromkeys(r["name"] for r in results):
        rs = [r for r in results if r["name"] == name]
        row = {"seeds": [r["seed"] for r in rs], "params": rs[0]["summary"]["params"]}
        for m in METRICS:
            vals = [_metric(r, m) for r in rs]
            vals = [v for v in vals if v is not None]
            if vals:
                row[m] = {
                    "mean": float(np.mean(vals)),
                    "std": float(np.std(vals, ddof=1)) if len(vals) > 1 else None,
                    "values": vals,
                }
        out[name] = row
    return out


def _metric(r: dict, m: str):
    ev = r["eval"]
    if m in ("chrf++_mean", "bleu_mean"):
        return ev["scores"][m]
    if m in ("mi_norm_mean", "load_cv_mean"):
        return ev["routing"][m]
    if m in ("train_seconds", "build_seconds"):
        return r["summary"][m]
    if m == "eval_seconds":
        return sum(ev["eval_seconds"].values())
    return ev[m]


def verdict(agg: dict) -> dict:
    """SPRI minus dense_full / sparse on chrF++, BLEU and test loss.

    Next to each: the seed-to-seed spread."""
    out = {}
    for base in ("dense_full", "sparse"):
        if "spri" not in agg or base not in agg:
            continue
        for m in ("chrf++_mean", "bleu_mean", "loss_mean"):
            if m in agg["spri"] and m in agg[base]:
                spread = [x for x in (agg["spri"][m]["std"], agg[base][m]["std"]) if x is not None]
                out[f"spri_minus_{base}_{m}"] = {
                    "base": base,
                    "metric": m,
                    "delta": agg["spri"][m]["mean"] - agg[base][m]["mean"],
                    "max_seed_std": max(spread) if spread else None,
                }
    return out


def plot_heatmap(res: dict, path: Path) -> Path:
    """p(expert | language) per MoE layer of one run, MI in each panel title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = res["eval"]["counts"]
    langs = res["eval"]["langs"]
    layers = sorted(counts, key=int)
    n = len(layers)
    cols = min(4, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(3.2 * cols + 1, 2.8 * rows), squeeze=False, layout="constrained"
    )
    probs = {}
    for layer in layers:
        c = np.array(counts[layer], dtype=np.float64)  # [L, E]
        probs[layer] = c / np.maximum(1, c.sum(1, keepdims=True))  # [L, E] p(expert | language)
    vmax = max(float(p.max()) for p in probs.values())
    im = None
    for ax, layer in zip(axes.flat, layers):
        c = np.array(counts[layer], dtype=np.float64)  # [L, E]
        im = ax.imshow(probs[layer], aspect="auto", cmap="magma", vmin=0, vmax=vmax)
        ax.set_title(f"layer {layer}  MI/H={mutual_information(c)[1]:.3f}", fontsize=8)
        ax.set_yticks(range(len(langs)), langs, fontsize=7)
        ax.set_xticks(range(c.shape[1]))
        ax.set_xlabel("expert", fontsize=7)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.colorbar(im, ax=axes.ravel().tolist(), label="p(expert | language)")
    fig.suptitle(
        f"{res['name']} (seed {res['seed']}): share of target-token assignments per expert",
        fontsize=9,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def projection(results: list[dict], smoke_max_new: int, full_args) -> dict:
    """Projected cost of the full plan.

    From the smoke run's measured seconds per step / pair / token."""
    per_step = {}
    for r in results:
        key = r["config"]["method"] + ("_grow" if r["config"]["grow_select"] else "")
        per_step.setdefault(key, []).append(
            r["summary"]["train_seconds"] / max(1, r["summary"]["steps_done"])
        )
    per_step = {k: float(np.mean(v)) for k, v in per_step.items()}
    gen = [
        r["eval"]["eval_seconds"]["generate"]
        / sum(v["n"] for v in r["eval"]["scores"]["per_lang"].values())
        for r in results
        if r["eval"]["scores"]["per_lang"]
    ]
    loss = [
        r["eval"]["eval_seconds"]["loss"] / sum(1 for _ in r["eval"]["target_tokens"])
        for r in results
    ]
    worst = max(per_step.values())
    sweep, main_runs = sweep_plan(full_args), main_plan(full_args, {"rho": 0.5, "scale": 8.0})
    train_s = sum(
        c.steps
        * per_step.get(c.method + ("_grow" if c.grow_select else ""), per_step.get(c.method, worst))
        for _, c in sweep + main_runs
    )
    n_lang = 8
    gen_s = (
        len(main_runs)
        * n_lang
        * full_args.gen_per_lang
        * float(np.mean(gen))
        * full_args.max_new
        / smoke_max_new
    )
    # smoke loss pass: 2 test pairs per language;
    # full: 200 test pairs (main) or sweep_dev_per_lang (sweep)
    loss_s = (
        float(np.mean(loss))
        / 2
        * n_lang
        * (len(main_runs) * 200 + len(sweep) * full_args.sweep_dev_per_lang)
    )
    return {
        "label": "PROJECTION from the smoke run's measured times on the shared CPU, "
        "not a measurement",
        "seconds_per_step_batch": per_step,
        "seconds_per_translation": float(np.mean(gen)),
        "runs": len(sweep) + len(main_runs),
        "train_hours": train_s / 3600,
        "generation_hours_upper": gen_s / 3600,
        "loss_eval_hours": loss_s / 3600,
        "total_hours": (train_s + gen_s + loss_s) / 3600,
    }


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

    data = load_data(a)
    a.data_sha256 = data["split_sha256"]
    dense, tok = engine.load_model(a.model)
    dense.eval()
    train_recs, dev, test = data["train"], data["dev"], data["test"]
    if a.smoke:
        train_recs = train_recs[:64]
        test = [r for lang in data["languages"] for r in [x for x in test if x["lang"] == lang][:2]]
    by = {}
    for r in dev:
        by.setdefault(r["lang"], []).append(r)
    dev_sub = [r for rs in by.values() for r in rs[: a.sweep_dev_per_lang]]
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
