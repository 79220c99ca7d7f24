"""Tables and verdict of the equal-scope fine-tuning comparison, as markdown.

The runs are benchmarks/train_gpu.py's, on the GPU or the CPU; no table mixes devices.

Reads the per-run JSONs of ``--cache`` (default benchmarks/results/train_gpu)
and its ``lr_choice.json``, and the FFN-only comparison of ``--ffn``
(benchmarks/results/train.json, the earlier CPU benchmark). Writes the
markdown to ``--out`` and the numbers behind it to ``--json``.

Comparisons (95% paired-bootstrap intervals over test sentences,
:mod:`moe.finetune.bootstrap`, 1000 resamples, seed 0, seeds of a method
averaged; the seed-to-seed standard deviations beside them):

* SPRI vs dense_full, both training every parameter, each at its dev-chosen LR;
* SPRI vs the best prior upcycling method at full scope (sparse, drop,
  cluster; the best by mean test BLEU);
* two-stage vs one-stage SPRI (seed 0 of each);
* the same SPRI - dense_full gap at ``--long-factor`` x the steps (seed 0);
* below, the FFN-only runs (no per-sentence statistics: no intervals).

Each of the paper's two claims (+2.58 BLEU over dense fine-tuning, +3.39
BLEU over the best prior upcycling; /work/shared/notes/anchors.md) is said
to reproduce when the interval of SPRI's BLEU advantage lies above 0, and
its size to agree when the interval contains the paper's number.

:func:`section_equal_scope` gives benchmarks/readme_tables.py the same
comparison for both caches, the GPU's (benchmarks/results/train_gpu) and the
CPU's (benchmarks/results/train_full_cpu), one device per table, with the
runs of benchmarks/train_gpu.py's default plan that are not measured yet.

    python benchmarks/train_report.py
    python benchmarks/train_report.py --cache benchmarks/results/train_full_cpu \\
        --out out/train_cpu_report.md --json out/train_cpu_report.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
import sys

import numpy as np
import train_gpu
from train_gpu_plan import run_ids

from moe.finetune.bootstrap import N_RESAMPLES, SEED, paired_bootstrap
from nli.atomic import atomic_write

from results_io import results_path, write_json

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


def _stat(vals: list[float]) -> dict:
    return {
        "mean": float(np.mean(vals)),
        "std": float(np.std(vals, ddof=1)) if len(vals) > 1 else None,
        "values": vals,
    }


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
            "chrf++": _stat([s["chrf++_mean"] for s in sc]),
            "bleu": _stat([s["bleu_mean"] for s in sc]),
            "loss": _stat([r["eval"]["loss_mean"] for r in rs]),
            "params": rs[0]["summary"]["params"],
            "train_seconds": _stat([r["summary"]["train_seconds"] for r in rs]),
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


def build_report(
    runs: list[dict], lr_choice: dict, ffn: dict | None, long_factor: int = 4, n: int = N_RESAMPLES
) -> dict:
    rows = method_rows(runs)
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
        ),
    }
    short, long_ = cmps["spri_vs_dense_seed0"], cmps["spri_vs_dense_long"]
    trend = None
    if short and long_:
        d0, d1 = short["bleu"]["delta"], long_["bleu"]["delta"]
        trend = {
            "bleu_gap_1x": d0,
            f"bleu_gap_{long_factor}x": d1,
            "chrf_gap_1x": short["chrf++"]["delta"],
            f"chrf_gap_{long_factor}x": long_["chrf++"]["delta"],
            "spri_minus_dense_bleu": "grows" if d1 > d0 else "shrinks" if d1 < d0 else "unchanged",
        }
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


# ---------------------------------------------------------------- markdown
def _pm(s: dict | None, fmt: str = "{:.2f}") -> str:
    if not s:
        return "-"
    return fmt.format(s["mean"]) + ("" if s.get("std") is None else " ± " + fmt.format(s["std"]))


def _m(x: float) -> str:
    return f"{x / 1e6:.0f}M" if x >= 1e6 else f"{x:,}"


def _ci(c: dict | None, m: str) -> str:
    if not c:
        return "not measured"
    b = c[m]
    sd = ", ".join(f"{x:.2f}" for x in (b["std_a"], b["std_b"]) if x is not None)
    return f"{b['delta']:+.2f} [{b['lo']:+.2f}, {b['hi']:+.2f}]" + (
        f" (seed std {sd})" if sd else ""
    )


def _lr_table(lc: dict, device: str) -> str:
    lrs = sorted({k for v in lc.values() for k in v["dev_loss"]}, key=float)
    first = next(iter(lc.values()))
    L = [
        f"LR chosen on dev target loss ({first['sweep_steps']} steps, "
        f"{first['dev_pairs_per_lang']} dev pairs per language; device {device}):",
        "",
        "| method | " + " | ".join(f"dev loss @ {x}" for x in lrs) + " | chosen LR | device |",
        "|---|" + "---|" * (len(lrs) + 2),
    ]
    for m, v in lc.items():
        losses = [f"{v['dev_loss'][x]:.4f}" if x in v["dev_loss"] else "-" for x in lrs]
        L.append(f"| {m} | " + " | ".join(losses) + f" | {v['lr']:g} | {device} |")
    return "\n".join(L)


def _runs_table(rows: dict) -> str:
    L = [
        "| run | scope | LR | steps | seeds | chrF++ | BLEU | test loss | trainable | active "
        "| train s | threads | device (workers sharing it) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        L.append(
            f"| {name} | {r['scope']} | {r['lr']:g} | {r['steps']} | {len(r['seeds'])} "
            f"| {_pm(r['chrf++'])} | {_pm(r['bleu'])} | {_pm(r['loss'], '{:.3f}')} "
            f"| {_m(r['params']['trainable'])} | {_m(r['params']['active'])} "
            f"| {_pm(r['train_seconds'], '{:.0f}')} | {r['threads']} "
            f"| {r['device']} ({r['concurrent_workers']}) |"
        )
    return "\n".join(L)


def _verdict(rep: dict) -> list[str]:
    L = []
    for key in ("dense", "upcycling"):
        c = rep["claims"][key]
        if c["status"] == "not measured":
            L.append(f"- Paper: {c['label']}: not measured.")
            continue
        where = "inside" if c["size_agrees"] else "outside"
        L.append(
            f"- Paper: {c['label']}. Here: {c['delta']:+.2f} BLEU "
            f"[{c['lo']:+.2f}, {c['hi']:+.2f}]: {c['status']}; "
            f"the paper's size is {where} the interval."
        )
    t = rep["long_budget"]
    if t:
        k = [x for x in t if x.startswith("bleu_gap_") and x != "bleu_gap_1x"][0]
        L.append(
            f"- Longer budget: the SPRI - dense_full BLEU gap (seed 0) goes from "
            f"{t['bleu_gap_1x']:+.2f} to {t[k]:+.2f} at {k.split('_')[-1]} the steps "
            f"({t['spri_minus_dense_bleu']})."
        )
    else:
        L.append("- Longer budget: not measured.")
    return L


def _ffn_table(ffn: dict) -> list[str]:
    any_ = next(iter(ffn.values()))
    L = [
        "| method | seeds | chrF++ | BLEU | test loss | trainable | active | train s "
        "| threads | device |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in ffn.items():
        L.append(
            f"| {name} | {len(r['seeds'])} | {_pm(r['chrf++'])} | {_pm(r['bleu'])} "
            f"| {_pm(r['loss'], '{:.3f}')} | {_m(r['params']['trainable'])} "
            f"| {_m(r['params']['active'])} | {_pm(r['train_seconds'], '{:.0f}')} "
            f"| {r['threads']} | {r['device']} |"
        )
    return [
        "### FFN-only scope (the earlier CPU benchmark: the MoE methods and dense_ffn train "
        f"the upcycled FFNs only, dense_full everything; LR {any_['lr']:g} for every method, "
        f"{any_['sentences_per_lang']} test sentences per language; no per-sentence data, "
        "so no intervals)",
        "\n".join(L),
    ]


def render_blocks(rep: dict, device: str) -> list[str]:
    """The comparison of one device's runs as markdown blocks (no heading)."""
    B = []
    if rep["lr_choice"]:
        B.append(_lr_table(rep["lr_choice"], device))
    if not rep["rows"]:
        B.append(f"No test-split run measured yet on {device}.")
        return B
    n_sent = ", ".join(map(str, sorted({r["sentences"] for r in rep["rows"].values()})))
    bs = rep["bootstrap"]
    labels = {
        "spri_vs_dense": "SPRI - dense_full (all seeds)",
        "spri_vs_best_prior": "SPRI - best prior upcycling "
        f"({rep['best_prior'] or 'none measured yet'})",
        "two_vs_one_stage": "SPRI two-stage - one-stage (seed 0)",
        "spri_vs_dense_seed0": "SPRI - dense_full (seed 0)",
        "spri_vs_dense_long": "SPRI - dense_full at the long budget (seed 0)",
    }
    cmp = ["| comparison | Δ chrF++ [95% CI] | Δ BLEU [95% CI] | device |", "|---|---|---|---|"]
    for k, lab in labels.items():
        c = rep["comparisons"].get(k)
        cmp.append(f"| {lab} | {_ci(c, 'chrf++')} | {_ci(c, 'bleu')} | {device} |")
    B += [
        f"Runs on {device}:",
        _runs_table(rep["rows"]),
        f"chrF++/BLEU: mean over 8 languages of sacrebleu corpus scores on {n_sent} test "
        "sentences (greedy); ± is the seed-to-seed standard deviation. Differences A - B with "
        f"95% paired-bootstrap intervals over test sentences ({bs['resamples']} resamples, "
        f"seed {bs['seed']}, stratified by language, seeds of a method averaged; device {device}):",
        "\n".join(cmp),
        f"**Verdict ({device}).**",
        "\n".join(_verdict(rep)),
    ]
    return B


def render(rep: dict, device: str | None = None) -> str:
    """The whole report of one device as markdown (with the FFN-only table if given)."""
    if device is None:
        device = ", ".join(sorted({r["device"] for r in rep["rows"].values()})) or "unknown"
    B = ["## Fine-tuning at equal trainable scope", *render_blocks(rep, device)]
    if rep["ffn_only"]:
        B += _ffn_table(rep["ffn_only"])
    return "\n\n".join(B) + "\n"


# ---------------------------------------------------------------- caches and devices
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


def expected_runs() -> list[str]:
    """``<name>_s<seed>`` of every run of benchmarks/train_gpu.py's default plan, in order."""
    return run_ids(train_gpu.parse_args([]))


def cache_blocks(title: str, cache: Path, n: int = N_RESAMPLES) -> list[str]:
    """Markdown blocks of one cache: one comparison per device, and what is missing."""
    want = expected_runs()
    have = {p.stem for p in cache.glob("*_s*.json")} if cache.is_dir() else set()
    missing = [w for w in want if w not in have]
    B = [f"### {title} (`{_rel(cache)}/`)"]
    if cache.is_dir():
        runs, lr_choice = load_runs(cache)
        for device, rs in by_device(runs).items():
            rep = build_report(rs, lr_choice_on(lr_choice, runs, device), None, n=n)
            B += render_blocks(rep, device)
    if missing:
        B.append(
            f"Not yet measured: {len(missing)} of {len(want)} runs missing: "
            + ", ".join(f"`{m}`" for m in missing)
            + "."
        )
    return B


def _rel(p: Path) -> str:
    try:
        return str(p.resolve().relative_to(results_path("").parents[1]))
    except ValueError:
        return str(p)


CACHES = (
    ("GPU", results_path("train_gpu")),
    ("CPU", results_path("train_full_cpu")),
)


def section_equal_scope(caches=CACHES, n: int = N_RESAMPLES) -> list[str]:
    """The equal-scope comparison for docs/results.md: per cache (GPU, CPU), per device."""
    B = [
        "## Fine-tuning at equal trainable scope",
        "`benchmarks/train_gpu.py` trains dense_full and the MoE methods with every parameter "
        "trainable, each at the LR it chose on dev, and `benchmarks/train_report.py` compares "
        "them with paired-bootstrap intervals. The GPU and CPU runs are kept apart: each "
        "table is one device's.",
    ]
    for title, cache in caches:
        B += cache_blocks(title, Path(cache), n)
    return B


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--cache", default="benchmarks/results/train_gpu")
    p.add_argument("--ffn", default="benchmarks/results/train.json")
    p.add_argument("--out", default="benchmarks/results/train_gpu_report.md")
    p.add_argument("--json", default="benchmarks/results/train_gpu_report.json")
    p.add_argument("--long-factor", type=int, default=4)
    p.add_argument("--resamples", type=int, default=N_RESAMPLES)
    a = p.parse_args(argv)
    cache = Path(a.cache)
    if not cache.is_dir():
        print(
            f"train_report: {cache}: no such directory (run benchmarks/train_gpu.py first)",
            file=sys.stderr,
        )
        return 2
    runs, lr_choice = load_runs(cache)
    ffn = json.loads(Path(a.ffn).read_text(encoding="utf-8")) if Path(a.ffn).is_file() else None
    devices = by_device(runs)
    reps = {
        d: build_report(rs, lr_choice_on(lr_choice, runs, d), ffn, a.long_factor, a.resamples)
        for d, rs in devices.items()
    }
    md = "".join(render(rep, d) for d, rep in reps.items()) or "No runs in the cache.\n"
    atomic_write(a.out, md)
    write_json(a.json, reps)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
