"""The markdown of the equal-scope fine-tuning comparison (benchmarks/train_report.py).

Renders what :func:`train_comparison.build_report` computed: the LR choice, the runs,
the comparisons with their intervals, the verdict and the FFN-only table.
"""

from __future__ import annotations


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
    return _interval(b) + (f" (seed std {sd})" if sd else "")


def _interval(d: dict) -> str:
    """'+0.38 [-0.40, +1.14]': a difference and its 95% interval."""
    return f"{d['delta']:+.2f} [{d['lo']:+.2f}, {d['hi']:+.2f}]"


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


def stage_verdict(bleu: dict) -> str:
    """Two-stage minus one-stage SPRI, from its BLEU interval: which is better, if either."""
    if bleu["lo"] > 0:
        return "two-stage better"
    return "one-stage better" if bleu["hi"] < 0 else "no significant difference"


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
    c = rep["comparisons"].get("two_vs_one_stage")
    if c:
        b = c["bleu"]
        side = stage_verdict(b)
        L.append(
            f"- Two-stage SPRI (the default) - one-stage, seed 0: {b['delta']:+.2f} BLEU "
            f"[{b['lo']:+.2f}, {b['hi']:+.2f}]: {side} (one seed each: the interval is over "
            "test sentences, not seeds)."
        )
    else:
        L.append("- Two-stage - one-stage SPRI: not measured.")
    t = rep["long_budget"]
    if t:
        f, b = t["factor"], t["bleu"]
        c1, cf = rep["comparisons"]["spri_vs_dense_seed0"], rep["comparisons"]["spri_vs_dense_long"]
        s1, sf = t["steps"]
        L.append(
            "- Longer budget: the SPRI - dense_full BLEU gap (seed 0) is "
            f"{_interval(c1['bleu'])} at {s1} steps and {_interval(cf['bleu'])} at {sf} ({f}x); "
            f"the change, {_interval(b['change'])} (95% CI, the same test sentences resampled "
            f"for all four runs): {t['reading']}."
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
        "spri_vs_dense_long": "SPRI - dense_full at the long budget ("
        + (f"{rep['long_budget']['factor']}x the steps, " if rep["long_budget"] else "")
        + "seed 0)",
    }
    cmp = ["| comparison | Δ chrF++ [95% CI] | Δ BLEU [95% CI] | device |", "|---|---|---|---|"]
    for k, lab in labels.items():
        c = rep["comparisons"].get(k)
        cmp.append(f"| {lab} | {_ci(c, 'chrf++')} | {_ci(c, 'bleu')} | {device} |")
    B += [
        f"Runs on {device}:",
        _runs_table(rep["rows"]),
        f"chrF++/BLEU: mean over 8 languages of sacrebleu corpus scores on {n_sent} test "
        "sentences (greedy); ± is the seed-to-seed standard deviation. train s: wall seconds "
        "of the training steps, summed over resumed sessions; they grow with the load of a "
        "machine shared with other jobs (these CPU runs shared a 2-core machine), so they "
        "compare only runs made side by side. Differences A - B with "
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
