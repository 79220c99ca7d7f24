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
        "| NLI published cutpoints (fp32): max ulp / % CR / mean rel |",
        "|---|---|---|---|---|---|---|",
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
            f"{a['mean_rel_error']:.2e} | {fp16} | {ps} |"
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


def solver_md(d) -> str:
    """Exact paper-layout optimum vs the shipped table, through the spec datapath (fp32)."""
    out = [
        "| function | grid points | table | paper cost "
        "| mean rel | max rel | mean ulp | max ulp | % CR |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for key, r in d.items():
        if not isinstance(r, dict) or "tables" not in r:
            continue
        for label in ("optimum paper", "shipped default", "NLI published"):
            t = r["tables"].get(label)
            if not t or "mean_rel_error" not in t:
                continue
            out.append(
                f"| {key} | {r['grid_points']} | {label} | {t['paper_cost']:.3e} | "
                f"{t['mean_rel_error']:.2e} | {t['max_rel_error']:.2e} | {t['mean_ulp']:.3f} | "
                f"{t['max_ulp']} | {t['pct_correctly_rounded']:.2f}% |"
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


def solver_times_md(s, solve: str, target: int, extra_cols: bool) -> str:
    """Wall (and CPU) seconds of one exact solve per function, from solver.json."""
    head = (
        "| function | grid points | wall (s) | CPU (s) |"
        + (" paper cost |" if extra_cols else "")
        + " target (s) |"
    )
    out = [head, "|" + "---|" * (head.count("|") - 1)]
    for key, r in s.items():
        v = r.get("solves", {}).get(solve) if isinstance(r, dict) else None
        if not v or not v.get("finished"):
            continue
        row = f"| {key} | {r['grid_points']} | {v['wall_seconds']:.1f} | {v['cpu_seconds']:.0f} |"
        if extra_cols:
            row += f" {v['cost']:.3e} |"
        out.append(row + f" <= {target} |")
    return "\n".join(out)


def exact_solves_md(se, target: int) -> str:
    """One row per run of benchmarks/solver_exact.py (solver_exact.json): function, solve,
    threads, wall and CPU seconds (or how far an unfinished run got), cost, solver commit."""
    head = (
        "| function | solve | threads | grid points | wall (s) | CPU (s) | cost | solver "
        "| target (s) |"
    )
    out = [head, "|" + "---|" * (head.count("|") - 1)]
    for fn, solves in se.items():
        for name, runs in solves.items():
            for r in runs.values():
                if r.get("finished"):
                    wall, cpu = f"{r['wall_seconds']:.0f}", f"{r['cpu_seconds']:.0f}"
                    pts, cost = f"{r['grid_points']:,}", f"{r['cost']:.6e}"
                else:
                    done = len(r["layer_wall"])
                    wall = f"> {r['limit_seconds']:.0f} (stopped, {done} layers done)"
                    cpu, pts, cost = "-", "-", "-"
                out.append(
                    f"| {fn} | {name} | {r['threads']} | {pts} | {wall} | {cpu} | {cost} | "
                    f"{r.get('solver_commit') or '-'} | <= {target} |"
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


def exact_tables_md(summaries: dict) -> str:
    """Per function (benchmarks/build_exact_tables.py summaries): the stride-32 thinned and the
    exact optimum of `mean` + LUT rounding, the exact one refined, and the shipped table, on
    the objective and through the fp32 datapath over every input; whether the exact table
    ships (beats the shipped one on % CR without a worse max ulp)."""
    head = (
        "| function | table | objective (mean + LUT) | vs exact | % CR | max ulp | mean ulp "
        "| mean rel | ships |"
    )
    out = [head, "|" + "---|" * (head.count("|") - 1)]
    names = {
        "thinned_raw": "thinned (stride 32)",
        "exact_raw": "exact",
        "exact_refined": "exact, refined",
        "shipped": "shipped (thinned, refined)",
    }
    for fn, s in summaries.items():
        if "report" not in s or "thinned_solve" not in s:
            continue
        exact = s["solve"]["cost"]
        obj = {
            "thinned_raw": s["thinned_solve"]["cost"],
            "exact_raw": exact,
            "shipped": s["shipped_objective"],
        }
        for key, label in names.items():
            r = s["report"][key]
            o = obj.get(key)
            ov = "-" if o is None else f"{o:.5e}"
            gap = "-" if o is None else f"{100 * (o / exact - 1):+.1f}%"
            ships = ("yes" if s["ships"] else "no") if key == "exact_refined" else ""
            out.append(
                f"| {fn} | {label} | {ov} | {gap} | {r['pct_correctly_rounded']:.2f} | "
                f"{r['max_ulp']} | {r['mean_ulp']:.4f} | {r['mean_rel_error']:.4e} | {ships} |"
            )
    return "\n".join(out)


def exact_table_solves_md(summaries: dict) -> str:
    """The exact solve behind each function's exact table: threads, wall and CPU seconds."""
    out = ["| function | threads | wall (s) | CPU (s) | from |", "|---|---|---|---|---|"]
    for fn, s in summaries.items():
        v = s.get("solve")
        if v and "report" in s:
            src = v.get("from", "benchmarks/build_exact_tables.py")
            out.append(
                f"| {fn} | {v.get('threads') or '-'} | {v['wall_seconds']:.0f} | "
                f"{v['cpu_seconds']:.0f} | {src} |"
            )
    return "\n".join(out)
