"""Markdown tables of the benchmark results (pure: JSON dicts in, markdown strings out).

Used by benchmarks/readme_tables.py, which assembles docs/results.md from them.
"""

from __future__ import annotations


def fmt_e(v):
    return "—" if v is None else (f"{v:.2e}" if isinstance(v, float) else str(v))


def tables_md(d) -> str:
    out = [
        "| table | fp32 unit: max ulp | fp32: % CR | fp32: mean rel "
        "| fp16 unit: max ulp | fp16: % CR "
        "| NLI published cutpoints (fp32): max ulp / % CR / mean rel | cutpoints solved |",
        "|---|---|---|---|---|---|---|---|",
    ]
    pub = d.get("published", {})
    for key, v in d["defaults"].items():
        fn, mode = key.split(":")
        a, b = v["fp32"], v.get("fp16", {})
        fp16 = (
            f"{b['max_ulp']} | {b['pct_correctly_rounded']:.2f}%"
            if "max_ulp" in b
            else "invalid (RNE16(mul) overflows) | —"
        )
        p = pub.get(f"{fn}:published") if mode == "direct" else None
        ps = (
            f"{p['fp32']['max_ulp']} / {p['fp32']['pct_correctly_rounded']:.2f}% / "
            f"{p['fp32']['mean_rel_error']:.2e}"
            if p
            else "—"
        )
        out.append(
            f"| {fn} ({mode}) | {a['max_ulp']} | {a['pct_correctly_rounded']:.2f}% | "
            f"{a['mean_rel_error']:.2e} | {fp16} | {ps} | {v.get('solve') or '-'} |"
        )
    return "\n".join(out)


def by_interval_md(rows: list) -> str:
    """A table's error per region (tables.json ``by_interval``: ``nli table report
    --intervals``): the clamps and each macro interval."""
    out = [
        "| region | x from | x to | bins | inputs | not correctly rounded | % CR | max ulp |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lo = "-" if r["from"] is None else f"{r['from']:.6g}"
        hi = "-" if r["to"] is None else f"{r['to']:.6g}"
        out.append(
            f"| {r['region']} | {lo} | {hi} | {r['bins'] or '-'} | {r['inputs']:,} | "
            f"{r['not_correctly_rounded']:,} | {r['pct_correctly_rounded']:.2f}% | {r['max_ulp']} |"
        )
    return "\n".join(out)


def baselines_md(d) -> str:
    out = [
        "| table | uniform: max ulp / % CR | curvature: max ulp / % CR "
        "| NN-LUT-style: max ulp / % CR |",
        "|---|---|---|---|",
    ]
    rows = {}
    for key, v in d["baselines"].items():
        fn, mode, kind = key.split(":")
        rows.setdefault(f"{fn} ({mode})", {})[kind] = v["fp32"]
    for name, kinds in rows.items():
        cells = [
            f"{kinds[k]['max_ulp']} / {kinds[k]['pct_correctly_rounded']:.2f}%"
            if k in kinds
            else "—"
            for k in ("uniform", "curvature", "nnlut")
        ]
        out.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def sim_md(d) -> str:
    out = [
        "| op | simulator (elements/s) | torch FP32 (elements/s) | ratio | target |",
        "|---|---|---|---|---|",
    ]
    for k, v in d["results"].items():
        if v.get("target_ratio") is None:
            continue
        out.append(
            f"| {k} | {v['sim_elements_per_s']:.3g} | {v['torch_fp32_elements_per_s']:.3g} | "
            f"{v['ratio_sim_over_torch']:.2f} | >= {v['target_ratio']} |"
        )
    return "\n".join(out)


def llm_md(d) -> str:
    out = ["| mode | ppl | change vs ref | top-1 agreement | mean KL |", "|---|---|---|---|---|"]
    for k, v in d["modes"].items():
        ppl = v.get("ppl")
        rel = v.get("ppl_rel_change")
        agree = v.get("top1_agreement")
        out.append(
            f"| {k} | {fmt_e(ppl) if ppl is None else f'{ppl:.4f}'} | "
            f"{'NaN' if rel is None else f'{100 * rel:+.4f}%'} | "
            f"{'—' if agree is None else f'{100 * agree:.2f}%'} | "
            f"{fmt_e(v.get('mean_kl'))} |"
        )
    return "\n".join(out)


def _pm(v, fmt):
    """'mean' or 'mean +- std (n seeds)' of an aggregate() metric."""
    if not v:
        return "—"
    if v.get("std") is None:
        return format(v["mean"], fmt)
    return f"{format(v['mean'], fmt)} ± {format(v['std'], fmt)} ({len(v['values'])} seeds)"


def train_md(d) -> str:
    """benchmarks/train.py's combined report: one row per method (mean +- std over seeds)."""
    if not d.get("methods"):
        return "(no cached runs yet)"
    out = [
        "| method | chrF++ | BLEU | test target loss | train time (s) "
        "| trainable / active params (M) | load CV | MI / H(lang) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, v in d["methods"].items():
        pr = v["params"]
        out.append(
            f"| {name} | {_pm(v.get('chrf++_mean'), '.2f')} | {_pm(v.get('bleu_mean'), '.2f')} | "
            f"{_pm(v.get('loss_mean'), '.3f')} | {_pm(v.get('train_seconds'), '.0f')} | "
            f"{pr['trainable'] / 1e6:.1f} / {pr['active'] / 1e6:.1f} | "
            f"{_pm(v.get('load_cv_mean'), '.3f')} | {_pm(v.get('mi_norm_mean'), '.3f')} |"
        )
    names = {"chrf++_mean": "chrF++", "bleu_mean": "BLEU", "loss_mean": "test loss"}
    verdict = d.get("verdict", {})
    if verdict:
        out.append("")
    for v in verdict.values():
        base, m = v["base"], v["metric"]
        sd = "—" if v["max_seed_std"] is None else f"{v['max_seed_std']:.3f}"
        out.append(
            f"- spri minus {base}, {names[m]}: {v['delta']:+.3f} (larger seed std of the two: {sd})"
        )
    nli = d.get("nli")
    if nli and "delta_nli_minus_ref" in nli:
        dl = nli["delta_nli_minus_ref"]
        out.append(
            "\n"
            f"`nli` re-evaluation of {nli['name']} seed {nli['seed']} ({nli['pairs']} test pairs, "
            f"{nli['generated']} translated): loss {nli['ref']['loss_mean']:.4f} -> "
            f"{nli['nli']['loss_mean']:.4f} ({dl['loss_mean']:+.4f}), chrF++ "
            f"{nli['ref']['chrf++_mean']:.2f} -> {nli['nli']['chrf++_mean']:.2f} "
            f"({dl['chrf++_mean']:+.2f}), BLEU {dl['bleu_mean']:+.2f}, routing agreement "
            f"{100 * nli['routing_agreement']:.2f}%"
        )
        if nli.get("best_of_complete"):
            out[-1] += (
                f" (still the best of all {len(nli['best_of'])} MoE runs with the comparison "
                "complete)"
            )
        if nli.get("best_now"):
            out[-1] += (
                f" (chosen when it was the best MoE cached; the best is now {nli['best_now']})"
            )
    missing = d.get("missing_runs")
    if missing:
        out.append(
            "\n"
            f"{missing} planned run{'s' if missing != 1 else ''} not cached yet (`python "
            "benchmarks/train.py --max-runs N` resumes)."
        )
    return "\n".join(out)


def sweep_md(d) -> str:
    """SPRI (rho, s) sweep: dev target loss after the sweep budget, and at init."""
    init = {
        (p["rho"], p["scale"]): p["dev_loss"]
        for p in d.get("init_sweep", [])
        if p["rho"] is not None
    }
    dense = next((p["dev_loss"] for p in d.get("init_sweep", []) if p["rho"] is None), None)
    out = [
        f"| rho | s | dev loss trained | dev loss at init (dense {dense:.3f}) |"
        if dense
        else "| rho | s | dev loss trained | dev loss at init |",
        "|---|---|---|---|",
    ]
    for r in sorted(d.get("sweep", []), key=lambda r: (r["opts"]["rho"], r["opts"]["scale"])):
        rho, sc = r["opts"]["rho"], r["opts"]["scale"]
        ini = init.get((rho, sc))
        out.append(
            f"| {rho} | {sc:g} | {r['dev_loss']:.3f} | {'—' if ini is None else f'{ini:.3f}'} |"
        )
    return "\n".join(out)


def onnx_md(d) -> str:
    out = [
        "| model | torch ref ms | torch nli ms | ONNX ref ms | ONNX nli ms "
        "| ONNX/torch (ref) | ONNX/torch (nli) | max logit diff, ref "
        "| max logit diff, nli / max logit | argmax agreement, nli |",
        "|---|" * 1 + "---|" * 9,
    ]
    for r in d["results"]:
        out.append(
            f"| {r['model']} | {1e3 * r['torch_ref_best_s']:.1f} | "
            f"{1e3 * r['torch_nli_best_s']:.1f} | {1e3 * r['onnx_ref_best_s']:.1f} | "
            f"{1e3 * r['onnx_nli_best_s']:.1f} | {r['ratio_onnx_ref_over_torch_ref']:.2f} | "
            f"{r['ratio_onnx_nli_over_torch_nli']:.2f} | {r['ref_logits_max_abs_diff']:.1e} | "
            f"{r['nli_logits_max_abs_diff']:.2g} / {r['nli_logits_max_abs']:.1f} | "
            f"{100 * r['nli_argmax_agreement']:.1f}% |"
        )
    return "\n".join(out)


def moe_md(d) -> str:
    out = [
        "| method | KL to dense | ppl ref | ppl nli | weight cos | output cos | routing entropy "
        "| routing agreement (all / worst layer) | upcycle s |",
        "|---|" + "---|" * 8,
    ]
    for k, v in d["methods"].items():
        out.append(
            f"| {k} | {v['kl_to_dense']:.3g} | {v['ppl_ref']:.4g} | {v['ppl_nli']:.4g} | "
            f"{v['weight_cosine']:.3f} | {v['output_cosine']:.3f} | {v['routing_entropy']:.3f} | "
            f"**{100 * v['routing_agreement']:.2f}%** / "
            f"{100 * v['routing_agreement_min_layer']:.2f}% | {v['upcycle_s']:.0f} |"
        )
    return "\n".join(out)


def moe_speed_md(d) -> str:
    out = [
        "| method | expert hidden / dense-equivalent hidden | 1 thread | 2 threads |",
        "|---|---|---|---|",
    ]
    lt = d["layer_throughput"]
    for m in d["methods"]:
        a, b = lt.get(f"{m}@1t"), lt.get(f"{m}@2t")
        if not a:
            continue
        out.append(
            f"| {m} | {a['dense_equiv_hidden'] // d['top_k']:,} / {a['dense_equiv_hidden']:,} | "
            f"{a['throughput_ratio']:.2f}x | "
            f"{'—' if not b else format(b['throughput_ratio'], '.2f') + 'x'} |"
        )
    return "\n".join(out)


def cost_md() -> str:
    from hw_sim.hw_model import fit_area_power

    fit = fit_area_power().fit
    out = [
        "| design | model area (um^2) | published | model power (mW) | published "
        "| model efficiency | published |",
        "|---|---|---|---|---|---|---|",
    ]
    for dz in fit["designs"]:
        m, p = dz["model"], dz["published"]
        out.append(
            f"| {dz['design']} ({dz['comparators']} comparators, {dz['lut_entries']} entries) | "
            f"{m['area_um2']:,.0f} | {p['area_um2']:,.0f} | {m['power_mw']:.1f} | "
            f"{p['power_mw']:g} | {m['efficiency']:.2f} | {p['efficiency']} |"
        )
    return "\n".join(out)
