"""Exported-model latency in onnxruntime against torch, measured in the same run.

For each model (tiny, smollm2 when its GGUF is installed, ``moe:METHOD`` for
SmolLM2 upcycled by ``moe.upcycle`` with its defaults, or a checkpoint path) and one input of
``--seq`` tokens, four forward passes are timed: torch with the FP32 reference
ops, torch with all three ops on the NLI unit (engine.substitute, hw_sim), and
the ONNX exports of both (engine.onnx_model_export) in stock onnxruntime (CPU
provider, default graph optimizations). Runs alternate between the four and
each keeps its best and median time, so a busy machine slows all alike. Both
runtimes (and numba, for hw_sim) get the same thread count. Also recorded: export and
session-creation time, the model size, and how far the ONNX logits are from torch's.

Tables: the shipped defaults (recorded in the JSON).

Usage: python benchmarks/onnx_latency.py [--models tiny,smollm2,moe:sparse] [--seq 128]
       [--repeats 5] [--reciprocal-mode reduced] [--out benchmarks/results/onnx.json]
"""

from __future__ import annotations

import argparse
import time

import numba
import numpy as np
import onnxruntime as ort
import torch
from tqdm import tqdm

import engine
from engine.onnx_model_export import export_model
from engine.substitution import substitute
import moe  # (registers MoE checkpoints and the MoE ONNX writer)
import nli
from nli.defaults import default_table_path
from nli.formats import INVERSE_FUNCTIONS, MODES, OPS, UNIT_FUNCTIONS

from results_io import results_path, write_results

SEED = 0
# one thread per runtime: on the shared 2-core box, 2 torch threads measured 40x slower (OMP waits)
THREADS = 1


def tables(mode: str) -> tuple[dict, dict]:
    """{function: Table}: the shipped defaults for silu, exp, and reciprocal, rsqrt in ``mode``,
    and their files."""
    out, source = {}, {}
    for fn in UNIT_FUNCTIONS:
        key = (fn, mode if fn in INVERSE_FUNCTIONS else "direct")
        out[fn], source[fn] = nli.default_table(*key), f"shipped {default_table_path(*key).name}"
    return out, source


def _session(proto) -> tuple[ort.InferenceSession, float]:
    so = ort.SessionOptions()
    so.intra_op_num_threads = THREADS
    so.inter_op_num_threads = 1
    so.add_session_config_entry(
        "session.intra_op.allow_spinning", "0"
    )  # idle threads must not eat torch's cores
    t0 = time.perf_counter()
    s = ort.InferenceSession(proto.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return s, time.perf_counter() - t0


def bench_model(name: str, seq: int, repeats: int, mode: str, tabs: dict) -> dict:
    """Times torch ref / torch nli / onnx ref / onnx nli on one [1, seq] input of ``name``."""
    if name.startswith("moe:"):
        model = moe.upcycle(engine.load_model("smollm2")[0], method=name[4:])
    else:
        model, _ = engine.load_model(name)
    ids = torch.randint(
        0, model.cfg.vocab_size, (1, seq), generator=torch.Generator().manual_seed(SEED)
    )
    feed = {"input_ids": ids.numpy()}
    torch_nli = substitute(model, ops=OPS, variant="nli", tables=tabs, reciprocal_mode=mode)
    res = {"model": name, "seq": seq, "params": sum(p.numel() for p in model.parameters())}
    runners = {}
    for label, ops in (("onnx_ref", ()), ("onnx_nli", OPS)):
        t0 = time.perf_counter()
        proto = export_model(model, ops, tabs, reciprocal_mode=mode)
        res[f"{label}_export_s"] = time.perf_counter() - t0
        res[f"{label}_bytes"] = proto.ByteSize()
        sess, res[f"{label}_session_s"] = _session(proto)
        del proto
        runners[label] = lambda s=sess: s.run(None, feed)[0]

    def torch_run(m):
        with torch.no_grad():
            return m(ids).numpy()

    runners["torch_ref"] = lambda: torch_run(model)
    runners["torch_nli"] = lambda: torch_run(torch_nli)
    outs = {k: f() for k, f in runners.items()}  # warm-up (numba/ORT first calls)
    times = {k: [] for k in runners}
    for _ in tqdm(range(repeats), desc=f"{name} seq {seq}", leave=False):
        for k, f in runners.items():
            t0 = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t0)
    for k, ts in times.items():
        res[f"{k}_best_s"] = min(ts)
        res[f"{k}_median_s"] = float(np.median(ts))
    res["ratio_onnx_nli_over_torch_nli"] = res["onnx_nli_best_s"] / res["torch_nli_best_s"]
    res["ratio_onnx_ref_over_torch_ref"] = res["onnx_ref_best_s"] / res["torch_ref_best_s"]
    res["ratio_onnx_nli_over_onnx_ref"] = res["onnx_nli_best_s"] / res["onnx_ref_best_s"]
    res["ratio_torch_nli_over_torch_ref"] = res["torch_nli_best_s"] / res["torch_ref_best_s"]
    for kind in ("ref", "nli"):
        a, b = outs[f"onnx_{kind}"], outs[f"torch_{kind}"]
        res[f"{kind}_logits_max_abs_diff"] = float(np.max(np.abs(a - b)))
        res[f"{kind}_logits_max_abs"] = float(np.max(np.abs(b)))
        res[f"{kind}_logits_bit_equal_fraction"] = float(np.mean(a == b))
        res[f"{kind}_argmax_agreement"] = float(np.mean(a.argmax(-1) == b.argmax(-1)))
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="tiny,smollm2")
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--reciprocal-mode", default="reduced", choices=MODES)
    ap.add_argument("--out", default=str(results_path("onnx.json")))
    args = ap.parse_args(argv)
    torch.set_num_threads(THREADS)
    numba.set_num_threads(THREADS)
    tabs, source = tables(args.reciprocal_mode)
    results = []
    for name in [m.strip() for m in args.models.split(",") if m.strip()]:
        try:
            r = bench_model(name, args.seq, args.repeats, args.reciprocal_mode, tabs)
        except (FileNotFoundError, ImportError) as e:  # smollm2 GGUF not installed
            print(f"{name}: skipped ({e})")
            continue
        results.append(r)
        print(
            f"{name} (seq {args.seq}): torch ref {r['torch_ref_best_s'] * 1e3:.1f} ms, torch nli "
            f"{r['torch_nli_best_s'] * 1e3:.1f} ms, onnx ref {r['onnx_ref_best_s'] * 1e3:.1f} ms, "
            f"onnx nli {r['onnx_nli_best_s'] * 1e3:.1f} ms; onnx nli / torch nli = "
            f"{r['ratio_onnx_nli_over_torch_nli']:.2f}, onnx nli / onnx ref = "
            f"{r['ratio_onnx_nli_over_onnx_ref']:.2f}; logits |onnx - torch| max: ref "
            f"{r['ref_logits_max_abs_diff']:.3g}, nli {r['nli_logits_max_abs_diff']:.3g}"
        )
    doc = {
        "benchmark": "onnx",
        "threads": THREADS,
        "repeats": args.repeats,
        "reciprocal_mode": args.reciprocal_mode,
        "tables": source,
        "onnxruntime": ort.__version__,
        "torch": torch.__version__,
    }
    return write_results(args.out, doc, results)


if __name__ == "__main__":
    raise SystemExit(main())
