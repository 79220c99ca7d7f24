"""The SPRI language-by-expert heatmap of benchmarks/train.py (one run's routing counts)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from moe.finetune.translate_eval import mutual_information


def plot_heatmap(res: dict, path: Path) -> Path:
    """p(expert | language) per MoE layer of one run, MI in each panel title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = res["eval"]["counts"]
    langs = res["eval"]["langs"]
    layers = sorted(counts, key=int)
    n = len(layers)
    cols = min(4, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(3.2 * cols + 1, 2.8 * rows), squeeze=False, layout="constrained"
    )
    probs = {}
    for layer in layers:
        c = np.array(counts[layer], dtype=np.float64)  # [L, E]
        probs[layer] = c / np.maximum(1, c.sum(1, keepdims=True))  # [L, E] p(expert | language)
    vmax = max(float(p.max()) for p in probs.values())
    im = None
    for ax, layer in zip(axes.flat, layers):
        c = np.array(counts[layer], dtype=np.float64)  # [L, E]
        im = ax.imshow(probs[layer], aspect="auto", cmap="magma", vmin=0, vmax=vmax)
        ax.set_title(f"layer {layer}  MI/H={mutual_information(c)[1]:.3f}", fontsize=8)
        ax.set_yticks(range(len(langs)), langs, fontsize=7)
        ax.set_xticks(range(c.shape[1]))
        ax.set_xlabel("expert", fontsize=7)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.colorbar(im, ax=axes.ravel().tolist(), label="p(expert | language)")
    fig.suptitle(
        f"{res['name']} (seed {res['seed']}): share of target-token assignments per expert",
        fontsize=9,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
