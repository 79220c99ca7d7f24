"""Plots of a table's bit-accurate error (matplotlib, Agg backend): error against x
and the ulp histogram, from :func:`hw_sim.report.error_arrays`."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from nli.atomic import atomic_target


def plot_errors(arrays: dict, path, title: str = "") -> None:
    """Write a two-panel PNG to ``path`` (atomically): |ulp error| and relative error
    against x (symlog x axis), and the histogram of ulp errors."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x, ulp, rel = arrays["x"], arrays["ulp"], arrays["rel"]
    ok = ulp >= 0
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 4.2))
    a1.scatter(x[ok], np.maximum(ulp[ok], 0), s=1, label="ulp error", color="tab:blue")
    a1.set_xscale("symlog", linthresh=2.0 ** -14)
    a1.set_xlabel("x")
    a1.set_ylabel("ulp error vs RNE16(f(x))")
    ax = a1.twinx()
    ax.scatter(x[ok], np.where(np.isfinite(rel[ok]), rel[ok], np.nan), s=1, color="tab:orange", alpha=0.4)
    ax.set_yscale("log")
    ax.set_ylabel("relative error (orange)")
    cap = 16
    counts = np.bincount(np.minimum(ulp[ok], cap), minlength=cap + 1)
    a2.bar(np.arange(cap + 1), counts, color="tab:blue")
    a2.set_yscale("log")
    a2.set_xticks(np.arange(cap + 1))
    a2.set_xticklabels([str(k) for k in range(cap)] + [f"{cap}+"], fontsize=7)
    a2.set_xlabel("ulp error")
    a2.set_ylabel("inputs")
    fig.suptitle(title or "bit-accurate error of the simulated unit")
    fig.tight_layout()
    path = Path(path)
    try:
        with atomic_target(path) as tmp:
            fig.savefig(tmp, dpi=110, format="png")
    finally:
        plt.close(fig)
