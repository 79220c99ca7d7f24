"""Plots of MoE routing (matplotlib, Agg backend).

:func:`expert_load_figure` builds the figure (tests check its axes);
:func:`plot_expert_load` writes it as a PNG.
"""

from __future__ import annotations

import os
from pathlib import Path


def expert_load_figure(loads: dict, title: str = "expert load per MoE layer"):
    """Heatmap of expert load: ``loads`` {label: {layer: [fraction per expert]}}, one panel per
    label on a shared colour scale. Returns the matplotlib Figure.

    A label is e.g. a method or ``ref``/``nli``; fractions are of the N*k
    assignments (see :func:`moe.diagnostics.expert_load`), so a uniform router
    gives 1/E everywhere (marked on the colour bar).
    """
    from matplotlib.figure import Figure
    import numpy as np

    if not loads:
        raise ValueError("plot_expert_load: nothing to plot")
    n = len(loads)
    nlayers = max(len(per) for per in loads.values())
    fig = Figure(figsize=(2.9 * n + 1.4, max(3.2, 0.32 * nlayers + 1.9)), layout="constrained")
    axes = fig.subplots(1, n, squeeze=False)[0]
    vmax = max(max(max(v) for v in per.values()) for per in loads.values())
    im, experts = None, 0
    for ax, (label, per) in zip(axes, loads.items()):
        layers = sorted(per, key=int)
        m = np.array([per[k] for k in layers])  # [layers, E]
        experts = m.shape[1]
        im = ax.imshow(m, aspect="auto", cmap="viridis", vmin=0, vmax=vmax, interpolation="nearest")
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("expert")
        ax.set_yticks(range(len(layers)), layers, fontsize=7)
        step = max(1, experts // 8)
        ax.set_xticks(range(0, experts, step))
    axes[0].set_ylabel("MoE layer")
    uniform = experts and 1 / experts <= vmax
    cb = fig.colorbar(
        im,
        ax=list(axes),
        label="fraction of assignments"
        + (f" (white line: uniform 1/{experts})" if uniform else ""),
    )
    if uniform:
        cb.ax.axhline(1 / experts, color="w", lw=1.5)
    fig.suptitle(title, fontsize=10)
    return fig


def plot_expert_load(
    loads: dict, path: str | os.PathLike, title: str = "expert load per MoE layer"
) -> Path:
    """Write :func:`expert_load_figure` as a PNG at ``path``; returns the path."""
    fig = expert_load_figure(loads, title)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path
