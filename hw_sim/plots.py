"""Plots of a table's bit-accurate error (matplotlib, Agg backend): ulp error and
relative error against x, and the ulp histogram, from :func:`hw_sim.report.error_arrays`.

:func:`error_figure` builds the figure (tests check its axes); :func:`plot_errors`
writes it as a PNG.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from nli.atomic import atomic_target

# Relative errors below this are drawn at it: an exact result has relative error 0
# (no place on a log axis) and a float64 rounding residue of 1e-300 says nothing a
# reader needs; FP16 itself resolves 2^-11 ~ 4.9e-4, so 1e-7 is far below any step.
REL_FLOOR_PLOT = 1e-7
# ... and errors above this at it: a result off by more than 1000x its value (a broken table
# near a zero of f) needs no finer scale, and the axis stays within ~10 decades.
REL_CEIL_PLOT = 1e3
HIST_CAP = 16  # ulp errors >= this share the last histogram bar


def _symlog_ticks(lo: float, hi: float, linthresh: float, max_per_side: int = 4) -> list[float]:
    """At most ``max_per_side`` powers of ten on each side of 0 (every 2nd, 3rd, ... decade),
    plus 0: a symlog axis's default labels for +-65504 crowd into an unreadable row."""
    ticks = [0.0]
    for sign, end in ((1.0, hi), (-1.0, -lo)):
        if end <= linthresh:
            continue
        k0 = math.ceil(math.log10(linthresh))
        k1 = math.floor(math.log10(end))
        decades = list(range(k0, k1 + 1))
        step = max(1, math.ceil(len(decades) / max_per_side))
        ticks += [sign * 10.0**k for k in decades[::-1][::step]]
    return sorted(ticks)


def _fmt_x(v: float, _pos=None) -> str:
    if v == 0:
        return "0"
    k = round(math.log10(abs(v)))
    if -2 <= k <= 3:
        return f"{v:g}"
    return ("-" if v < 0 else "") + f"1e{k}"


def _set_x(ax, x: np.ndarray, fmt: str = "FP16") -> None:
    """Linear x for a domain inside one sign within two decades; symlog otherwise, with sparse
    ticks."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    lo, hi = float(np.min(x)), float(np.max(x))
    if lo > 0 and hi / lo <= 100 or hi < 0 and lo / hi <= 100:
        ax.set_xlim(lo, hi)
    else:
        linthresh = 2.0**-14
        ax.set_xscale("symlog", linthresh=linthresh)
        ax.set_xlim(lo, hi)
        ax.xaxis.set_major_locator(FixedLocator(_symlog_ticks(lo, hi, linthresh)))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.xaxis.set_major_formatter(FuncFormatter(_fmt_x))
    ax.set_xlabel(f"x ({fmt} input)")


def error_figure(arrays: dict, title: str = ""):
    """Three panels: |ulp error| vs x, relative error vs x (log, clipped to
    REL_FLOOR_PLOT..REL_CEIL_PLOT), and the histogram of ulp errors. Returns the matplotlib
    Figure (caller closes it)."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    x, ulp, rel = arrays["x"], arrays["ulp"], arrays["rel"]
    fmt = arrays.get("dtype", "fp16").upper()  # FP16 | BF16: the format of inputs and ulps
    floor = "2^-126" if fmt == "BF16" else "2^-14"  # hw_sim.report.REL_FLOORS
    ok = ulp >= 0  # ulp -1 marks a NaN on either side
    fig = Figure(figsize=(14, 4.2))
    a1, a2, a3 = fig.subplots(1, 3)

    a1.scatter(x[ok], ulp[ok], s=1, color="tab:blue", rasterized=True)
    _set_x(a1, x[ok], fmt)
    a1.set_ylabel(f"{fmt} ulp error vs RNE(f(x))")
    a1.set_ylim(-0.5, max(1, int(ulp[ok].max(initial=0))) * 1.05 + 0.5)
    a1.yaxis.set_major_locator(MaxNLocator(integer=True))
    a1.set_title("ulp error")

    r = rel[ok]
    fin = np.isfinite(r)
    top = min(max(float(r[fin].max(initial=0.0)), REL_FLOOR_PLOT * 10), REL_CEIL_PLOT)
    a2.scatter(
        x[ok][fin],
        np.clip(r[fin], REL_FLOOR_PLOT, REL_CEIL_PLOT),
        s=1,
        color="tab:orange",
        rasterized=True,
    )
    _set_x(a2, x[ok], fmt)
    a2.set_yscale("log")
    a2.set_ylim(REL_FLOOR_PLOT / 2, 10 ** math.ceil(math.log10(top)))
    a2.set_ylabel(f"relative error (clipped to [{REL_FLOOR_PLOT:.0e}, {REL_CEIL_PLOT:.0e}])")
    a2.set_title(f"relative error |y - f(x)| / max(|f(x)|, {floor})", fontsize=9)

    counts = np.bincount(np.minimum(ulp[ok], HIST_CAP), minlength=HIST_CAP + 1)
    a3.bar(np.arange(HIST_CAP + 1), np.maximum(counts, 0), color="tab:blue")
    a3.set_yscale("log")
    a3.set_ylim(0.5, max(2, int(counts.max())) * 2)
    a3.set_xticks(np.arange(0, HIST_CAP + 1, 2))
    a3.set_xticklabels([str(k) for k in range(0, HIST_CAP, 2)] + [f"{HIST_CAP}+"])
    a3.set_xlabel("ulp error")
    a3.set_ylabel(f"{fmt} inputs")
    a3.set_title("histogram of ulp errors")

    fig.suptitle(title or "bit-accurate error of the simulated unit")
    fig.tight_layout()
    return fig


def plot_errors(arrays: dict, path, title: str = "") -> None:
    """Write :func:`error_figure` as a PNG to ``path`` (atomically)."""
    fig = error_figure(arrays, title)
    with atomic_target(Path(path)) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
