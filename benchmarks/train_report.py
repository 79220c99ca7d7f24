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
* the same SPRI - dense_full gap at ``--long-factor`` x the steps (seed 0; default the
  largest multiple measured for both);
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

# The parts: train_comparison.py (the numbers), train_comparison_md.py (their markdown); here
# the caches, the devices and the command line.

from __future__ import annotations

import argparse
import functools
import json
from pathlib import Path
import sys

from train_comparison import PAPER, build_report, by_device, load_runs, lr_choice_on
from train_comparison_md import render, render_blocks, stage_verdict
import train_gpu
from train_gpu_plan import run_ids

from moe.finetune.bootstrap import N_RESAMPLES
from nli.argtypes import positive_int
from nli.atomic import atomic_write

from results_io import results_path, write_json

PLAN_LONG_FACTOR = train_gpu.parse_args([]).long_factor  # the default plan's long budget


def expected_runs() -> list[str]:
    """``<name>_s<seed>`` of every run of benchmarks/train_gpu.py's default plan, in order."""
    return run_ids(train_gpu.parse_args([]))


def cache_blocks(title: str, cache: Path, n: int = N_RESAMPLES) -> list[str]:
    """Markdown blocks of one cache: one comparison per device, and what is missing."""
    want = expected_runs()
    have = {p.stem for p in cache.glob("*_s*.json")} if cache.is_dir() else set()
    missing = [w for w in want if w not in have]
    B = [f"### {title} (`{_rel(cache)}/`)"]
    stand_in = set()  # long-budget multiples measured other than the plan's
    if cache.is_dir():
        for device, rep in device_reports(str(cache), n):
            B += render_blocks(rep, device)
            if rep["long_budget"] and rep["long_budget"]["factor"] != PLAN_LONG_FACTOR:
                stand_in.add(rep["long_budget"]["factor"])
    if missing:
        B.append(
            f"Not yet measured: {len(missing)} of {len(want)} runs missing: "
            + ", ".join(f"`{m}`" for m in missing)
            + "."
            + "".join(
                f" The long-budget comparison above is the {f}x pair (`train_gpu.py "
                f"--long-factor {f}`), in place of the plan's {PLAN_LONG_FACTOR}x."
                for f in sorted(stand_in)
            )
        )
    return B


@functools.lru_cache(maxsize=None)
def device_reports(cache: str, n: int = N_RESAMPLES) -> tuple:
    """((device, report), ...) of one cache, one report per device (computed once per
    process: the docs and the README headline read the same numbers)."""
    runs, lr_choice = load_runs(Path(cache))
    return tuple(
        (device, build_report(rs, lr_choice_on(lr_choice, runs, device), None, n=n))
        for device, rs in by_device(runs).items()
    )


CLAIM_ROWS = (
    ("dense", "spri_vs_dense", "SPRI vs dense full fine-tuning"),
    ("upcycling", "spri_vs_best_prior", "SPRI vs the best prior upcycling"),
)


def headline_rows(caches=None, n: int = N_RESAMPLES) -> list[str]:
    """README headline rows: each of the paper's claims measured at equal trainable scope, per
    cache and device that has it: SPRI's BLEU advantage with its 95% paired-bootstrap
    interval, the seeds behind it, and whether the claim reproduces."""
    out = []
    for _, cache in caches or CACHES:
        if not Path(cache).is_dir():
            continue
        for device, rep in device_reports(str(cache), n):
            for key, cmp_key, label in CLAIM_ROWS:
                c, cmp = rep["claims"][key], rep["comparisons"][cmp_key]
                if cmp is None:
                    continue
                a, b = rep["rows"][cmp["a"]], rep["rows"][cmp["b"]]
                verdict = c["status"].split(" (")[0] + (
                    ", the paper's size inside the interval"
                    if c["size_agrees"]
                    else ", the paper's size outside it"
                )
                out.append(
                    f"| {label} ({cmp['b']}), equal trainable scope, {device}, "
                    f"{len(a['seeds'])} + {len(b['seeds'])} seeds, {a['sentences']} test sentences "
                    f"| {c['delta']:+.2f} BLEU [{c['lo']:+.2f}, {c['hi']:+.2f}] (95% CI; paper "
                    f"+{PAPER[key]['bleu']:.2f}): {verdict} |"
                )
            two = rep["comparisons"].get("two_vs_one_stage")
            if two is not None:
                b = two["bleu"]
                out.append(
                    "| SPRI two-stage (the default) vs one-stage, equal trainable scope, "
                    f"{device}, seed 0 each, {rep['rows'][two['a']]['sentences']} test sentences "
                    f"| {b['delta']:+.2f} BLEU [{b['lo']:+.2f}, {b['hi']:+.2f}] (95% CI over test "
                    f"sentences): {stage_verdict(b)} |"
                )
            t = rep["long_budget"]
            if t is not None:
                (s1, sf), b, f = t["steps"], t["bleu"], t["factor"]
                ch, cf = b["change"], rep["comparisons"]["spri_vs_dense_long"]
                out.append(
                    f"| SPRI vs dense full fine-tuning at {f}x the steps ({sf} against "
                    f"{s1}), equal trainable scope, {device}, seed 0 each, "
                    f"{rep['rows'][cf['a']]['sentences']} test sentences | gap "
                    f"{b[f'gap_{f}x']:+.2f} BLEU at {sf} steps, {b['gap_1x']:+.2f} at "
                    f"{s1}; change {ch['delta']:+.2f} [{ch['lo']:+.2f}, {ch['hi']:+.2f}] (95% CI "
                    f"over test sentences): {t['reading']} |"
                )
    return out


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
    p.add_argument(
        "--long-factor", type=positive_int(), default=None, help="default: the largest one measured"
    )
    p.add_argument("--resamples", type=positive_int(), default=N_RESAMPLES)
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
