"""The SPRI initialization sweep of benchmarks/train.py: dev loss over (rho, s), no training."""

from __future__ import annotations

import json
from pathlib import Path

from results_io import write_json

INIT_RHO = (0.25, 0.5, 0.75, 0.9)
INIT_S = (1.0, 2.0, 4.0, 8.0)


def init_sweep(a, dense, tok, dev_sub: list[dict]) -> list[dict]:
    """Dev target loss of SPRI at initialization (no training) over a (rho, s) grid.

    Cached, cheap."""
    from moe.finetune.translate_eval import teacher_forced_stats
    from moe.upcycling import upcycle

    path = Path(a.cache) / "init_sweep.json"
    grid = [(r, s) for r in INIT_RHO for s in INIT_S]
    pts = []
    if path.is_file():  # complete or partial (each point is saved as it is measured)
        got = json.loads(path.read_text(encoding="utf-8"))
        if (
            got.get("model") == a.model
            and got.get("data_sha256") == a.data_sha256
            and got.get("dev_pairs") == len(dev_sub)
        ):
            pts = got["points"]
    if len(pts) == len(grid) + 1 or (a.only is not None and "init_sweep" not in a.only):
        return pts
    print(
        f"[train bench] SPRI init sweep: {len(grid) + 1 - len(pts)} of {len(grid) + 1} "
        "dev-loss evaluations "
        f"(dense + {len(grid)} (rho, s) points) left, on {len(dev_sub)} dev pairs",
        flush=True,
    )

    def save():
        write_json(
            path,
            {
                "model": a.model,
                "data_sha256": a.data_sha256,
                "dev_pairs": len(dev_sub),
                "points": pts,
            },
        )

    if not pts:
        pts.append(
            {
                "rho": None,
                "scale": None,
                "method": "dense",
                "dev_loss": teacher_forced_stats(dense, tok, dev_sub)["loss_mean"],
            }
        )
        save()
    for r, sc in grid[len(pts) - 1 :]:
        m = upcycle(dense, "spri", num_experts=8, top_k=2, seed=0, rho=r, scale=sc)
        pts.append(
            {
                "rho": r,
                "scale": sc,
                "method": "spri",
                "dev_loss": teacher_forced_stats(m, tok, dev_sub)["loss_mean"],
            }
        )
        print(f"  rho {r} s {sc:g}: dev loss {pts[-1]['dev_loss']:.3f}", flush=True)
        del m
        save()
    return pts
