"""The equal-scope fine-tuning plan on one accelerator.

LR sweep on dev, then seeds, singles, 4x budget.

Answers "does SPRI beat dense fine-tuning?" with the MoE methods at full scope
(every parameter trains, as in ``dense_full``; ``TrainConfig.scope="full"``):

1. LR sweep: dense_full, sparse and spri at full scope, each at ``--lrs``
   for ``--sweep-steps`` steps, scored by target loss on the dev subset
   (``--dev-per-lang`` pairs per language). Each method's LR is the one
   with the lowest dev loss (test data never seen); written to
   ``<cache>/lr_choice.json``.
2. At the chosen LRs, in this priority order: ``--seeds`` of dense_full and
   spri, then of sparse, then dense_full and spri at ``--long-factor`` x the
   steps (first seed), then drop, cluster and spri_1stage (first seed;
   spri_1stage and drop/cluster use spri's LR). Each is evaluated on the
   whole test split (loss) and translates the first ``--gen-per-lang`` test
   pairs per language, keeping every hypothesis and its sacrebleu
   statistics for paired bootstrap (``benchmarks/train_report.py``).

Runs go to ``--workers`` processes sharing the device (torch threads
``--threads`` each); a run is dispatched as soon as a worker is free and its
LR is known. No run starts after ``--deadline`` seconds; at ``--hard-stop``
seconds the runs still going are ended. After every finished run the
per-run JSONs (``<cache>/<name>_s<seed>.json``, skipped when already cached
with the same config) and ``lr_choice.json`` are packed into
``<out-dir>/train_gpu.tgz``, so a cut-short command still returns them.
The dense model is read once (the GGUF) and handed to the workers as a
torch file. Training seconds of runs sharing a device are not comparable
with a run alone: each JSON records the device, thread count and
``concurrent_workers``.

    python benchmarks/train_gpu.py --device cuda --workers 12 --out-dir "$OUT"
    python benchmarks/train_gpu.py --smoke      # CPU, 2 steps, 2 pairs/lang, 2 workers
"""

# The parts: train_gpu_plan.py (the runs), train_gpu_worker.py (a worker process), train_run.py
# (a run's data, record and cache, shared with train.py); here the arguments and the scheduler.

from __future__ import annotations

import argparse
import io
import json
import multiprocessing as mp
import os
from pathlib import Path
import queue
import sys
import tarfile
import tempfile
import time

from train_gpu_plan import LRS, choose_lrs, main_plan, sweep_plan, task_config
from train_gpu_worker import worker
from train_run import load_data, same_run

from nli.argtypes import finite_float, positive_int, probability
from nli.atomic import atomic_write

from results_io import write_json

TARBALL = "train_gpu.tgz"
CACHE = "benchmarks/results/train_gpu"


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--data", default="out/data/translation.json")
    p.add_argument("--model", default="smollm2")
    p.add_argument("--device", default="cuda", help="cpu, cuda or cuda:N")
    p.add_argument("--workers", type=positive_int(), default=12)
    p.add_argument("--threads", type=positive_int(), default=1, help="torch threads per worker")
    p.add_argument("--steps", type=positive_int(), default=200)
    p.add_argument("--batch", type=positive_int(), default=8)
    p.add_argument("--stage1-frac", type=probability, default=0.25)
    p.add_argument("--lrs", default=",".join(f"{x:g}" for x in LRS))
    p.add_argument("--sweep-steps", type=positive_int(), default=50)
    p.add_argument("--dev-per-lang", type=positive_int(), default=25)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--long-factor", type=positive_int(), default=4)
    p.add_argument(
        "--test-per-lang",
        type=positive_int(),
        default=None,
        help="test pairs per language for the loss (all)",
    )
    p.add_argument("--gen-per-lang", type=positive_int(), default=100)
    p.add_argument("--max-new", type=positive_int(), default=64)
    p.add_argument("--eval-batch", type=positive_int(), default=32)
    p.add_argument("--gen-batch", type=positive_int(), default=200)
    p.add_argument(
        "--deadline",
        type=finite_float(0.0),
        default=400.0,
        help="no run starts after this many seconds",
    )
    p.add_argument(
        "--hard-stop",
        type=finite_float(0.0),
        default=455.0,
        help="end unfinished runs and pack at this time",
    )
    p.add_argument(
        "--only",
        default=None,
        help="comma list of main-plan run ids NAME_sSEED to run (the rest of phase 2 is left "
        "out; the LR sweep still runs or is read from the cache): two invocations can then "
        "share the machine without running the same run twice",
    )
    p.add_argument("--cache", default=CACHE)
    p.add_argument("--runs", default="out/train_full_runs", help="CPU runs' resume checkpoints")
    p.add_argument("--out-dir", default=os.environ.get("OUT", "out/train_gpu_out"))
    p.add_argument(
        "--smoke", action="store_true", help="CPU, 2 steps, 2 pairs/lang, 2 workers, 64 train pairs"
    )
    a = p.parse_args(argv)
    if a.smoke:
        a.device, a.workers, a.steps, a.sweep_steps, a.dev_per_lang = "cpu", 2, 2, 1, 2
        a.test_per_lang, a.gen_per_lang, a.max_new, a.long_factor = 2, 2, 8, 2
        if a.cache == CACHE:
            a.cache = "out/train_gpu_smoke"
    a.lrs = [float(x) for x in a.lrs.split(",")]
    a.seeds = [int(x) for x in a.seeds.split(",")]
    if a.workers < 1 or a.threads < 1 or not a.lrs or not a.seeds:
        raise SystemExit(
            "benchmarks/train_gpu.py: need --workers >= 1, --threads >= 1, some --lrs and --seeds"
        )
    if a.only is not None:
        a.only = [x for x in a.only.split(",") if x]
        main_ids = {f"{t['name']}_s{t['seed']}" for t in main_plan(a)}
        bad = [x for x in a.only if x not in main_ids]
        if bad or not a.only:
            p.error(f"--only: not a run of the main plan: {', '.join(bad) or '(empty)'}")
    return a


def pack(cache: Path, out_dir: Path) -> None:
    """Every JSON of ``cache`` into ``out_dir/train_gpu.tgz`` (written atomically)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for p in sorted(cache.glob("*.json")):
            tf.add(p, arcname=f"{cache.name}/{p.name}")
    atomic_write(out_dir / TARBALL, buf.getvalue())


def _cached(path: Path, cfg_dict: dict, a) -> dict | None:
    if not path.is_file():
        return None
    res = json.loads(path.read_text(encoding="utf-8"))
    return res if same_run(res, cfg_dict, a.model, a.data_sha256) else None


# ---------------------------------------------------------------- driver
def main(argv=None) -> int:
    a = parse_args(argv)
    t0 = time.monotonic()
    out_dir, cache = Path(a.out_dir), Path(a.cache)
    out_dir.mkdir(parents=True, exist_ok=True)
    cache.mkdir(parents=True, exist_ok=True)

    def log(msg):
        line = f"[train_gpu {time.monotonic() - t0:6.1f}s] {msg}"
        print(line, flush=True)
        with open(out_dir / "train_gpu.log", "a", encoding="utf-8") as f:
            f.write(line + "\n")

    import torch

    import engine

    if a.device != "cpu" and not torch.cuda.is_available():
        raise SystemExit(
            f"benchmarks/train_gpu.py: --device {a.device} but torch sees no CUDA device"
        )
    a.data_sha256 = load_data(a.data)["split_sha256"]
    dense, tok = engine.load_model(a.model)
    model_file = (
        Path(tempfile.gettempdir()) / f"train_gpu_dense_{os.getpid()}.pt"
    )  # not /dev/shm: often tiny
    torch.save(
        {"cfg": dense.cfg.to_dict(), "state": dense.state_dict(), "tokenizer": tok.to_str()},
        model_file,
    )
    del dense
    log(
        f"dense model loaded and shared ({model_file}); device {a.device}, "
        f"{a.workers} workers x {a.threads} threads"
    )

    main = main_plan(a)
    if a.only is not None:
        main = [t for t in main if f"{t['name']}_s{t['seed']}" in a.only]
    pending = sweep_plan(a) + main
    sweep_done: dict[str, dict] = {}
    sweep_failed: set[str] = set()
    lr_choice: dict[str, dict] = {}
    finished, failed, skipped = [], [], []

    def note_sweep(res):
        sweep_done[res["name"]] = res
        update_choice()

    def update_choice():
        for m, c in choose_lrs(sweep_done).items():
            n_m = sum(1 for r in sweep_done.values() if r["config"]["method"] == m)
            fails = sum(1 for n in sweep_failed if n.startswith(f"lrsweep_{m}_"))
            if n_m + fails == len(a.lrs) and m not in lr_choice:
                lr_choice[m] = {
                    **c,
                    "sweep_steps": a.sweep_steps,
                    "dev_pairs_per_lang": a.dev_per_lang,
                }
                if fails:  # chosen from a partial sweep: recorded, and re-chosen on resume
                    lr_choice[m]["failed_sweep_runs"] = fails
                log(
                    f"LR of {m}: {c['lr']:g} (dev loss {c['dev_loss']})"
                    + (f"; {fails} sweep run(s) FAILED, re-run on resume" if fails else "")
                )
        write_json(cache / "lr_choice.json", lr_choice)

    def ready(task) -> dict | None:
        """The task with its config filled in, or None while its LR is unknown."""
        if task["lr_of"] is None:
            return task
        if task["lr_of"] not in lr_choice:
            return None
        return {**task, "cfg": task_config(a, task, lr_choice[task["lr_of"]]["lr"])}

    ctx = mp.get_context("spawn")
    tasks, results = ctx.Queue(), ctx.Queue()
    procs = [
        ctx.Process(target=worker, args=(i, a, str(model_file), tasks, results), daemon=True)
        for i in range(a.workers)
    ]
    for p in procs:
        p.start()
    idle, alive, running = 0, a.workers, {}
    per_step: list[tuple[float, float]] = []
    pack(cache, out_dir)
    try:
        while alive > 0:
            now = time.monotonic() - t0
            dispatching = now < a.deadline
            while dispatching and idle > 0:
                pick = next(
                    (
                        (i, r)
                        for i, r in ((i, ready(t)) for i, t in enumerate(pending))
                        if r is not None
                    ),
                    None,
                )
                if pick is None:
                    break
                i, r = pick
                pending.pop(i)
                cfg_d = r["cfg"].to_dict()
                got = _cached(cache / f"{r['name']}_s{r['seed']}.json", cfg_d, a)
                if got is not None:
                    log(f"{r['name']} s{r['seed']}: cached")
                    if r["split"] == "dev":
                        note_sweep(got)
                    continue
                # slowest training seconds/step and evaluation seconds of the test runs so far
                est = (
                    r["cfg"].steps * max(s for s, _ in per_step) + max(e for _, e in per_step)
                    if per_step
                    else 0.0
                )
                if now + est > a.hard_stop:
                    skipped.append(f"{r['name']} s{r['seed']}")
                    log(f"skip {r['name']} s{r['seed']}: ~{est:.0f}s would end past the hard stop")
                    continue
                tasks.put({**{k: v for k, v in r.items() if k not in ("cfg", "kw")}, "cfg": cfg_d})
                running[(r["name"], r["seed"])] = now
                idle -= 1
                log(f"start {r['name']} s{r['seed']} ({r['cfg'].steps} steps, lr {r['cfg'].lr:g})")
            if (
                not running
                and idle == alive
                and (not dispatching or all(ready(t) is None for t in pending))
            ):
                break
            if now >= a.hard_stop:
                log(f"hard stop: {len(running)} runs unfinished: {sorted(running)}")
                break
            try:
                kind, wid, info = results.get(timeout=max(0.1, min(5.0, a.hard_stop - now)))
            except queue.Empty:
                continue
            if kind == "ready":
                idle += 1
            elif kind == "dead":
                alive -= 1
                log(f"worker {wid} failed to start:\n{info}")
            elif kind == "done":
                idle += 1
                began = running.pop((info["name"], info["seed"]), now)
                res = json.loads(Path(info["path"]).read_text(encoding="utf-8"))
                finished.append(info["name"])
                took = time.monotonic() - t0 - began
                if res["eval_split"] == "test":
                    per_step.append(
                        (
                            res["summary"]["train_seconds"] / res["config"]["steps"],
                            sum(res["eval"]["eval_seconds"].values()),
                        )
                    )
                sc = res["eval"]["scores"]
                log(
                    f"done {info['name']} s{info['seed']} in {took:.0f}s: "
                    f"loss {res['eval']['loss_mean']:.4f} "
                    f"chrF++ {sc['chrf++_mean']} BLEU {sc['bleu_mean']} "
                    f"train {res['summary']['train_seconds']:.0f}s"
                )
                if res["eval_split"] == "dev":
                    note_sweep(res)
                pack(cache, out_dir)
            elif kind == "error":
                idle += 1
                running.pop((info["name"], info["seed"]), None)
                failed.append(info["name"])
                log(f"FAILED {info['name']} s{info['seed']}:\n{info['trace']}")
                if info["name"].startswith("lrsweep_"):
                    sweep_failed.add(info["name"])
                    update_choice()
    finally:
        for _ in procs:
            tasks.put(None)
        end = time.monotonic() + 5.0
        for p in procs:
            p.join(timeout=max(0.1, end - time.monotonic()))
        for p in procs:
            if p.is_alive():
                p.terminate()
        model_file.unlink(missing_ok=True)
        pack(cache, out_dir)
        left = [f"{t['name']} s{t['seed']}" for t in pending] + skipped
        log(
            f"packed {out_dir / TARBALL}: {len(finished)} runs finished this session, "
            f"{len(failed)} failed, "
            f"not started: {left or 'none'}"
        )
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main())
