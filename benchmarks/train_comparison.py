"""The numbers of the equal-scope fine-tuning comparison (benchmarks/train_report.py).

From the per-run JSONs of benchmarks/train_gpu.py: one row per run name (its seeds
summarised), SPRI's differences from dense_full, the best prior upcycling method,
one-stage SPRI and the long budget with paired-bootstrap intervals over test
sentences, and the verdict on each of the paper's two claims. The markdown is
:mod:`train_comparison_md`'s.
"""

from __future__ import annotations

import json
from pathlib import Path
import re

from train_aggregate import seed_stat, train_seconds

from moe.finetune.bootstrap import N_RESAMPLES, SEED, paired_bootstrap, paired_contrast

PAPER = {
    "dense": {"bleu": 2.58, "label": "+2.58 BLEU over the fully fine-tuned dense model"},
    "upcycling": {"bleu": 3.39, "label": "+3.39 BLEU over the best prior upcycling baseline"},
}
PRIOR = ("sparse_full", "drop_full", "cluster_full")
METRICS = ("chrf++", "bleu")


def load_runs(cache: Path) -> tuple[list[dict], dict]:
    """(every run, sweep and test, and lr_choice.json) of ``cache``."""
    runs = []
    for p in sorted(cache.glob("*.json")):
        if p.name == "lr_choice.json":
            continue
        runs.append(json.loads(p.read_text(encoding="utf-8")))
    lr = cache / "lr_choice.json"
    return runs, (json.loads(lr.read_text(encoding="utf-8")) if lr.is_file() else {})


def method_rows(runs: list[dict]) -> dict[str, dict]:
    """{run name: summary over its seeds} of the test-split runs."""
    out: dict[str, dict] = {}
    for name in dict.fromkeys(r["name"] for r in runs if r.get("eval_split") == "test"):
        rs = sorted(
            (r for r in runs if r["name"] == name and r.get("eval_split") == "test"),
            key=lambda r: r["seed"],
        )
        c = rs[0]["config"]
        sc = [r["eval"]["scores"] for r in rs]
        out[name] = {
            "method": c["method"],
            "scope": c.get("scope", "ffn") if c["method"] != "dense_full" else "full",
            "lr": c["lr"],
            "steps": c["steps"],
            "seeds": [r["seed"] for r in rs],
            "chrf++": seed_stat([s["chrf++_mean"] for s in sc]),
            "bleu": seed_stat([s["bleu_mean"] for s in sc]),
            "loss": seed_stat([r["eval"]["loss_mean"] for r in rs]),
            "params": rs[0]["summary"]["params"],
            "train_seconds": seed_stat([train_seconds(r) for r in rs]),
            "threads": rs[0].get("torch_threads"),
            "device": rs[0].get("device", "cpu"),
            "concurrent_workers": rs[0].get("concurrent_workers", 1),
            "sentences": sum(v["n"] for v in sc[0]["per_lang"].values()),
            "_translations": [r["eval"].get("translations") for r in rs],
        }
    return out


def compare(
    rows: dict, a: str, b: str, seeds: list[int] | None = None, n: int = N_RESAMPLES
) -> dict | None:
    """A - B on chrF++ and BLEU with paired-bootstrap intervals.

    ``seeds``: only those seeds of each."""
    if a not in rows or b not in rows:
        return None

    def pick(name):
        return [
            t
            for s, t in zip(rows[name]["seeds"], rows[name]["_translations"])
            if t is not None and (seeds is None or s in seeds)
        ]

    ta, tb = pick(a), pick(b)
    if not ta or not tb:
        return None
    out = {"a": a, "b": b, "seeds": seeds}
    for m in METRICS:
        bs = paired_bootstrap(ta, tb, m, n=n, seed=SEED)
        out[m] = {**bs, "std_a": rows[a][m]["std"], "std_b": rows[b][m]["std"]}
    return out


def claim(cmp: dict | None, paper_bleu: float) -> dict:
    if cmp is None:
        return {"status": "not measured"}
    b = cmp["bleu"]
    if b["lo"] > 0:
        status = "reproduces (SPRI better: interval above 0)"
    elif b["hi"] < 0:
        status = "does not reproduce (SPRI worse: interval below 0)"
    else:
        status = "does not reproduce (no significant difference: interval contains 0)"
    return {
        "status": status,
        "size_agrees": bool(b["lo"] <= paper_bleu <= b["hi"]),
        "delta": b["delta"],
        "lo": b["lo"],
        "hi": b["hi"],
    }


def long_factor_of(rows: dict) -> int | None:
    """The largest N for which both ``spri_full_xN`` and ``dense_full_xN`` were measured (the
    long-budget pair; train_gpu.py ``--long-factor N``), or None."""
    have = {
        m: {int(x.group(1)) for r in rows if (x := re.fullmatch(rf"{m}_full_x(\d+)", r))}
        for m in ("spri", "dense")
    }
    both = have["spri"] & have["dense"]
    return max(both) if both else None


def long_trend(rows: dict, cmps: dict, f: int, s0: int, n: int = N_RESAMPLES) -> dict | None:
    """How the SPRI - dense_full gap (seed s0) changes from 1x to f x the steps: both gaps and
    the change (gap at f x - gap at 1x) with its paired-bootstrap interval, per metric (the same
    test sentences resampled for all four runs), and ``reading``: from the BLEU change's
    interval, "grows" (above 0), "shrinks" (below 0) or "no significant change"; ``steps``:
    the two budgets' step counts (1x, f x)."""
    short, long_ = cmps["spri_vs_dense_seed0"], cmps["spri_vs_dense_long"]
    if not (short and long_):
        return None

    def seed_runs(name, seeds=None):
        r = rows[name]
        return [t for s, t in zip(r["seeds"], r["_translations"]) if seeds is None or s in seeds]

    four = [seed_runs(f"spri_full_x{f}"), seed_runs(f"dense_full_x{f}")]
    four += [seed_runs("spri_full", [s0]), seed_runs("dense_full", [s0])]
    out = {"factor": f, "steps": [rows[c["a"]]["steps"] for c in (short, long_)]}
    for m in METRICS:
        ch = paired_contrast(four, [1.0, -1.0, -1.0, 1.0], m, n=n, seed=SEED)
        out[m] = {"gap_1x": short[m]["delta"], f"gap_{f}x": long_[m]["delta"], "change": ch}
    c = out["bleu"]["change"]
    out["reading"] = "grows" if c["lo"] > 0 else "shrinks" if c["hi"] < 0 else (
        "no significant change"
    )  # fmt: skip
    return out


def build_report(
    runs: list[dict],
    lr_choice: dict,
    ffn: dict | None,
    long_factor: int | None = None,
    n: int = N_RESAMPLES,
) -> dict:
    """The comparisons and claims of one device's runs. ``long_factor``: the budget multiple
    of the long-budget pair; default the largest one measured (:func:`long_factor_of`)."""
    rows = method_rows(runs)
    long_factor = long_factor or long_factor_of(rows)  # None: no long-budget pair measured
    prior = [p for p in PRIOR if p in rows]
    best_prior = max(prior, key=lambda p: rows[p]["bleu"]["mean"]) if prior else None
    s0 = min(rows["spri_full"]["seeds"]) if "spri_full" in rows else 0
    cmps = {
        "spri_vs_dense": compare(rows, "spri_full", "dense_full", n=n),
        "spri_vs_best_prior": compare(rows, "spri_full", best_prior, n=n) if best_prior else None,
        "two_vs_one_stage": compare(rows, "spri_full", "spri_1stage_full", seeds=[s0], n=n),
        "spri_vs_dense_seed0": compare(rows, "spri_full", "dense_full", seeds=[s0], n=n),
        "spri_vs_dense_long": compare(
            rows, f"spri_full_x{long_factor}", f"dense_full_x{long_factor}", n=n
        )
        if long_factor
        else None,
    }
    trend = long_trend(rows, cmps, long_factor, s0, n) if long_factor else None
    return {
        "rows": {
            k: {kk: vv for kk, vv in v.items() if kk != "_translations"} for k, v in rows.items()
        },
        "lr_choice": lr_choice,
        "best_prior": best_prior,
        "comparisons": cmps,
        "long_budget": trend,
        "claims": {
            "dense": {**PAPER["dense"], **claim(cmps["spri_vs_dense"], PAPER["dense"]["bleu"])},
            "upcycling": {
                **PAPER["upcycling"],
                **claim(cmps["spri_vs_best_prior"], PAPER["upcycling"]["bleu"]),
            },
        },
        "ffn_only": ffn_rows(ffn),
        "bootstrap": {"resamples": n, "seed": SEED, "ci": 0.95},
    }


def ffn_rows(ffn: dict | None) -> dict:
    """The FFN-only CPU benchmark's methods (benchmarks/results/train.json).

    No per-sentence data."""
    if not ffn or "methods" not in ffn:
        return {}
    out = {}
    for name, m in ffn["methods"].items():
        if "chrf++_mean" not in m:
            continue
        out[name] = {
            "seeds": m["seeds"],
            "chrf++": m["chrf++_mean"],
            "bleu": m["bleu_mean"],
            "loss": m.get("loss_mean"),
            "params": m["params"],
            "train_seconds": m.get("train_seconds"),
            "threads": ffn.get("args", {}).get("threads"),
            "device": "cpu",
            "sentences_per_lang": ffn.get("args", {}).get("gen_per_lang"),
            "lr": ffn.get("args", {}).get("lr"),
        }
    return out


def by_device(runs: list[dict]) -> dict[str, list[dict]]:
    """The runs grouped by their device label, so that no comparison mixes devices."""
    out: dict[str, list[dict]] = {}
    for r in runs:
        out.setdefault(r.get("device", "cpu"), []).append(r)
    return out


def lr_choice_on(lr_choice: dict, runs: list[dict], device: str) -> dict:
    """The entries of ``lr_choice`` whose sweep runs all ran on ``device``."""
    dev = {}
    for r in runs:
        if r.get("eval_split") == "dev":
            dev.setdefault(r["config"]["method"], set()).add(r.get("device", "cpu"))
    return {m: v for m, v in lr_choice.items() if dev.get(m) == {device}}
