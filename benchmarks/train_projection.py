"""The projected cost of benchmarks/train.py's full plan, from a --smoke run's measured times."""

from __future__ import annotations

import numpy as np
from train_plan import main_plan, sweep_plan


def projection(results: list[dict], smoke_max_new: int, full_args) -> dict:
    """Projected cost of the full plan.

    From the smoke run's measured seconds per step / pair / token."""
    per_step = {}
    for r in results:
        key = r["config"]["method"] + ("_grow" if r["config"]["grow_select"] else "")
        per_step.setdefault(key, []).append(
            r["summary"]["train_seconds"] / max(1, r["summary"]["steps_done"])
        )
    per_step = {k: float(np.mean(v)) for k, v in per_step.items()}
    gen = [
        r["eval"]["eval_seconds"]["generate"]
        / sum(v["n"] for v in r["eval"]["scores"]["per_lang"].values())
        for r in results
        if r["eval"]["scores"]["per_lang"]
    ]
    loss = [
        r["eval"]["eval_seconds"]["loss"] / sum(1 for _ in r["eval"]["target_tokens"])
        for r in results
    ]
    worst = max(per_step.values())
    sweep, main_runs = sweep_plan(full_args), main_plan(full_args, {"rho": 0.5, "scale": 8.0})
    train_s = sum(
        c.steps
        * per_step.get(c.method + ("_grow" if c.grow_select else ""), per_step.get(c.method, worst))
        for _, c in sweep + main_runs
    )
    n_lang = 8
    gen_s = (
        len(main_runs)
        * n_lang
        * full_args.gen_per_lang
        * float(np.mean(gen))
        * full_args.max_new
        / smoke_max_new
    )
    # smoke loss pass: 2 test pairs per language;
    # full: 200 test pairs (main) or sweep_dev_per_lang (sweep)
    loss_s = (
        float(np.mean(loss))
        / 2
        * n_lang
        * (len(main_runs) * 200 + len(sweep) * full_args.sweep_dev_per_lang)
    )
    return {
        "label": "PROJECTION from the smoke run's measured times on the shared CPU, "
        "not a measurement",
        "seconds_per_step_batch": per_step,
        "seconds_per_translation": float(np.mean(gen)),
        "runs": len(sweep) + len(main_runs),
        "train_hours": train_s / 3600,
        "generation_hours_upper": gen_s / 3600,
        "loss_eval_hours": loss_s / 3600,
        "total_hours": (train_s + gen_s + loss_s) / 3600,
    }
