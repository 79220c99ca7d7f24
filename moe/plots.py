"""Plots of MoE routing (matplotlib, Agg backend)."""
from __future__ import annotations

import os
from pathlib import Path


def plot_expert_load(loads: dict, path: str | os.PathLike, title: str = "expert load per MoE layer") -> Path:
    """Heatmap of expert load: ``loads`` {label: {layer: [fraction per expert]}} (one panel per label).

    A label is e.g. a method or ``ref``/``nli``; fractions are of the N*k
    assignments (see :func:`moe.diagnostics.expert_load`). Writes a PNG; returns its path.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    if not loads:
        raise ValueError("plot_expert_load: nothing to plot")
    n = len(loads)
    fig, axes = plt.subplots(1, n, figsize=(3.2 * n + 1, 3.6), squeeze=False)
    vmax = max(max(max(v) for v in per.values()) for per in loads.values())
    im = None
    for ax, (label, per) in zip(axes[0], loads.items()):
        layers = sorted(per, key=int)
        m = np.array([per[k] for k in layers])  # [layers, E]
        im = ax.imshow(m, aspect="auto", cmap="viridis", vmin=0, vmax=vmax)
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("expert")
        ax.set_yticks(range(len(layers)), layers, fontsize=7)
        ax.set_xticks(range(m.shape[1]))
    axes[0][0].set_ylabel("layer")
    fig.colorbar(im, ax=axes[0].tolist(), label="fraction of assignments")
    fig.suptitle(title, fontsize=10)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
