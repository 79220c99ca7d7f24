"""Aggregation over seeds and the verdict of benchmarks/train.py (SPRI - dense_full / sparse)."""

from __future__ import annotations

import numpy as np

METRICS = (
    "chrf++_mean",
    "bleu_mean",
    "loss_mean",
    "ppl_mean",
    "train_seconds",
    "build_seconds",
    "eval_seconds",
    "mi_norm_mean",
    "load_cv_mean",
)


def seed_stat(vals: list[float]) -> dict:
    """Mean, seed-to-seed standard deviation (None for one seed) and the values themselves."""
    return {
        "mean": float(np.mean(vals)),
        "std": float(np.std(vals, ddof=1)) if len(vals) > 1 else None,
        "values": vals,
    }


def aggregate(results: list[dict]) -> dict:
    """{name: {metric: {"mean", "std", "seeds"}} , params} over seeds."""
    out: dict = {}
    for name in dict.fromkeys(r["name"] for r in results):
        rs = [r for r in results if r["name"] == name]
        row = {"seeds": [r["seed"] for r in rs], "params": rs[0]["summary"]["params"]}
        for m in METRICS:
            vals = [_metric(r, m) for r in rs]
            vals = [v for v in vals if v is not None]
            if vals:
                row[m] = seed_stat(vals)
        out[name] = row
    return out


def train_seconds(r: dict) -> float:
    """A run's training seconds, less any time its process was stopped (``paused_seconds``,
    recorded in the run's JSON when a run was paused for other measurements)."""
    return r["summary"]["train_seconds"] - r.get("paused_seconds", 0.0)


def _metric(r: dict, m: str):
    ev = r["eval"]
    if m in ("chrf++_mean", "bleu_mean"):
        return ev["scores"][m]
    if m in ("mi_norm_mean", "load_cv_mean"):
        return ev["routing"][m]
    if m == "train_seconds":
        return train_seconds(r)
    if m == "build_seconds":
        return r["summary"][m]
    if m == "eval_seconds":
        return sum(ev["eval_seconds"].values())
    return ev[m]


def verdict(agg: dict) -> dict:
    """SPRI minus dense_full / sparse on chrF++, BLEU and test loss.

    Next to each: the seed-to-seed spread."""
    out = {}
    for base in ("dense_full", "sparse"):
        if "spri" not in agg or base not in agg:
            continue
        for m in ("chrf++_mean", "bleu_mean", "loss_mean"):
            if m in agg["spri"] and m in agg[base]:
                spread = [x for x in (agg["spri"][m]["std"], agg[base][m]["std"]) if x is not None]
                out[f"spri_minus_{base}_{m}"] = {
                    "base": base,
                    "metric": m,
                    "delta": agg["spri"][m]["mean"] - agg[base][m]["mean"],
                    "max_seed_std": max(spread) if spread else None,
                }
    return out
