"""The nli stage of benchmarks/train.py: the best MoE run re-evaluated with every op on `nli`."""

from __future__ import annotations

import json
from pathlib import Path

from train_run import per_lang

from results_io import stamp_tables, write_json


def nli_stage(a, results: list[dict], tok, test: list[dict], complete: bool) -> dict | None:
    """The best MoE run (test chrF++) re-evaluated with every op on `nli`; cached like a run.

    Runs by itself once the comparison is complete; ``--only nli`` runs it on the best MoE
    cached so far (the result records which runs it was chosen from)."""
    from moe.checkpoint import load_checkpoint
    from moe.finetune.translate_eval import nli_comparison

    moe_runs = [
        r
        for r in results
        if r["config"]["method"] not in ("dense_full", "dense_ffn")
        and r["eval"]["scores"]["chrf++_mean"] is not None
    ]
    if not moe_runs:
        return None
    best = max(moe_runs, key=lambda r: r["eval"]["scores"]["chrf++_mean"])
    run_ids = [f"{r['name']}_s{r['seed']}" for r in moe_runs]
    path = Path(a.cache) / f"nli_{best['name']}_s{best['seed']}.json"
    if (
        path.is_file()
    ):  # still the best: say of which runs, now (the file keeps what it was chosen from)
        res = json.loads(path.read_text(encoding="utf-8"))
        return {**res, "best_of": run_ids, "best_of_complete": complete}
    if not (a.only is not None and "nli" in a.only) and not (a.only is None and complete):
        older = sorted(
            Path(a.cache).glob("nli_*.json"), key=lambda p: p.stat().st_mtime
        )  # an earlier best
        if not older:
            return None
        res = json.loads(older[-1].read_text(encoding="utf-8"))
        return {**res, "best_now": f"{best['name']}_s{best['seed']}"}
    ckpt = Path(a.runs) / "final" / f"{best['name']}_s{best['seed']}"
    if not ckpt.is_dir():
        print(
            f"[train bench] no checkpoint {ckpt} for the nli stage; rerun that run to make one",
            flush=True,
        )
        return None
    recs = per_lang(test, a.nli_per_lang)
    print(
        f"[train bench] nli stage: {best['name']} seed {best['seed']} on {len(recs)} test pairs",
        flush=True,
    )
    try:
        cmp = nli_comparison(
            load_checkpoint(ckpt), tok, recs, a.nli_gen_per_lang, a.max_new, progress=True
        )
    except (
        ValueError,
        FileNotFoundError,
        ImportError,
    ) as e:  # e.g. NLI tables not built yet: not cached
        print(f"[train bench] nli stage failed: {e}", flush=True)
        return {"name": best["name"], "seed": best["seed"], "error": str(e)}
    res = {
        "name": best["name"],
        "seed": best["seed"],
        "chosen_from": run_ids,
        "comparison_complete": complete,
        **cmp,
    }
    write_json(path, stamp_tables(res))
    return res
