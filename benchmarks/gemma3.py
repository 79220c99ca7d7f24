"""Gemma 3 270M (native, ref ops): activation ranges, RMSNorm mean squares, perplexity, speed.

Over the shipped held-out text (engine/data/heldout_en.txt, the first ``--tokens`` tokens in
non-overlapping ``--window``-token windows), with every op's inputs recorded
(:class:`engine.evaluate.RecordingOps`, range = +-FP16_MAX so "outside" counts the inputs an FP16
conversion would turn into inf) and a forward hook on each block for the residual stream:

* per layer: the residual stream's max |x| after the block, each RMSNorm's input max |x|, how
  many of its inputs exceed FP16's largest finite value, and its mean-square max (the rsqrt
  argument); the GELU (act) input range;
* ref perplexity and the median forward time of one window.

Token ids come from engine's tokenizer of the GGUF (the same ids as transformers' on this text,
tests/test_gemma3_gguf.py). Writes benchmarks/results/gemma3.json.

    NLI_GEMMA3_GGUF=/path/gemma-3-270m-q4_k_m.gguf .venv/bin/python benchmarks/gemma3.py
"""

from __future__ import annotations

import argparse
import platform
import sys
import time

import torch

from engine import load_gguf_model
from engine.evaluate import (
    ActivationStats,
    attach_recorders,
    detach_recorders,
    evaluate_lm,
    forward_seconds,
)
from engine.experiments import heldout_text, json_safe
from engine.model_files import gemma3_path
from nli.formats import FP16_MAX

from results_io import results_path, stamp_tables, write_json

OUT = results_path("gemma3.json")


def residual_hooks(model) -> tuple[list, dict]:
    """Forward hooks recording max |x| of each block's output (the residual stream)."""
    peak: dict[int, float] = {}

    def hook(i):
        def fn(_m, _inp, out):
            x = out[0] if isinstance(out, tuple) else out
            peak[i] = max(peak.get(i, 0.0), float(x.detach().abs().max()))

        return fn

    return [layer.register_forward_hook(hook(i)) for i, layer in enumerate(model.layers)], peak


def per_layer(model, act: ActivationStats, peak: dict) -> list[dict]:
    """One row per block: residual max |x|, each RMSNorm's input max |x|, count above FP16_MAX,
    mean-square max, and the act input range."""
    rows = []
    for i in range(model.cfg.n_layers):
        row = {"layer": i, "local": model.cfg.is_local(i), "residual_absmax": peak[i]}
        for (op, module), s in act.inputs.items():
            if not module.startswith(f"layers.{i}."):
                continue
            name = module.split(".", 2)[2]
            if op == "rmsnorm":
                ms = act.mean_square[module]
                row[name] = {
                    "input_absmax": max(abs(s.min), abs(s.max)),
                    "inputs_above_fp16_max": s.outside,
                    "mean_square_max": ms.max,
                }
            elif op == "act":
                row["act_input"] = [s.min, s.max]
        rows.append(row)
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=2048, help="tokens scored (default 2048)")
    ap.add_argument("--window", type=int, default=1024, help="window length (default 1024)")
    ap.add_argument("--repeats", type=int, default=3, help="timed forward passes (default 3)")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    path = gemma3_path()
    model, tok = load_gguf_model(path)
    load_s = time.perf_counter() - t0
    ids = torch.tensor(tok.encode(heldout_text()).ids[: args.tokens + 1])
    hooks, peak = residual_hooks(model)
    act = ActivationStats(calibration=(-FP16_MAX, FP16_MAX))  # "outside": would be inf in FP16
    saved = attach_recorders(model, act)
    try:
        summary = evaluate_lm(model, ids, None, args.window, record=False).to_dict()
    finally:
        detach_recorders(saved)
        for h in hooks:
            h.remove()
    layers = per_layer(model, act, peak)
    secs = forward_seconds({"ref": model}, ids[None, : args.window], args.repeats)["ref"]
    out = {
        "model": f"Gemma 3 270M Q4_K_M ({path.name}), dequantized to float32, native engine",
        "text": "engine/data/heldout_en.txt",
        "tokenizer": "engine.tokenizer.tokenizer_from_gguf (BOS first)",
        "tokens": int(ids.numel()),
        "window": args.window,
        "ppl_ref": summary["ppl"],
        "forward_seconds_ref": {"tokens": min(args.window, ids.numel()), "median": secs},
        "load_seconds": load_s,
        "residual_absmax": [peak[i] for i in range(model.cfg.n_layers)],
        "per_layer": layers,
        "activation": act.summary(),
        "torch_threads": torch.get_num_threads(),
        "machine": platform.processor() or platform.machine(),
        "command": " ".join(
            ["python benchmarks/gemma3.py", *(sys.argv[1:] if argv is None else argv)]
        ),
        "seconds": time.perf_counter() - t0,
    }
    write_json(OUT, stamp_tables(json_safe(out)))
    print(f"ppl_ref {out['ppl_ref']:.4f}; forward {secs:.2f} s / {args.window} tokens; -> {OUT}")
    print("residual max |x| per layer:", ", ".join(f"{v:.0f}" for v in out["residual_absmax"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
