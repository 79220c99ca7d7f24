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


MAX_X_TICKS = 9  # value labels on an x axis; adjacent ones at least 1/MAX_X_TICKS of it apart
MAX_SYMLOG_DECADES = 24  # wider domains (BF16's 1e-38..3e38) get an encoding-order x axis


def _spread_ticks(values: list[float], coord, lo: float, hi: float) -> list[float]:
    """A readable subset of ``values`` (0, then +-1, then the largest magnitudes first): those
    inside [lo, hi] whose axis coordinates ``coord(v)`` are at least 1/MAX_X_TICKS of the axis
    apart, so that labels never crowd, whatever part of the axis a decade takes."""
    c_lo, c_hi = coord(lo), coord(hi)
    gap = (c_hi - c_lo) / MAX_X_TICKS
    order = sorted(values, key=lambda v: (v != 0, abs(v) != 1, -abs(v), v))
    chosen: list[tuple[float, float]] = []
    for v in order:
        c = coord(v)
        if lo <= v <= hi and all(abs(c - d) >= gap for _, d in chosen):
            chosen.append((v, c))
    return sorted(v for v, _ in chosen)


def _decade_candidates(lo: float, hi: float) -> list[float]:
    """0 and +-10^k for every power of ten of magnitude inside [lo, hi]."""
    out = [0.0]
    for sign, end in ((1.0, hi), (-1.0, -lo)):
        if end > 0:
            out += [sign * 10.0**k for k in range(-45, math.floor(math.log10(end)) + 1)]
    return out


def _fmt_x(v: float, _pos=None) -> str:
    if v == 0:
        return "0"
    k = round(math.log10(abs(v)))
    if -2 <= k <= 3:
        return f"{v:g}"
    return ("-" if v < 0 else "") + f"1e{k}"


def encoding_order(x: np.ndarray) -> np.ndarray:
    """A monotone coordinate of FP16/BF16 values (both embed exactly in FP32): the signed
    FP32 encoding index, so every binade takes the same width and every input its own step."""
    x = np.asarray(x, dtype=np.float64)
    mag = np.abs(x).astype(np.float32).view(np.int32).astype(np.float64)
    return np.sign(x) * mag


def _symlog_decades(lo: float, hi: float, linthresh: float) -> float:
    return sum(math.log10(abs(v) / linthresh) for v in (lo, hi) if abs(v) > linthresh)


def _set_x(ax, x: np.ndarray, fmt: str = "FP16") -> bool:
    """Linear x for a domain inside one sign within two decades; symlog with spread ticks up to
    MAX_SYMLOG_DECADES; beyond that the encoding order (:func:`encoding_order`), labelled in
    values. Returns True when the caller must plot ``encoding_order(x)`` instead of x."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    lo, hi = float(np.min(x)), float(np.max(x))
    linthresh = 2.0**-14
    ordinal = False
    if lo > 0 and hi / lo <= 100 or hi < 0 and lo / hi <= 100:
        ax.set_xlim(lo, hi)
    elif _symlog_decades(lo, hi, linthresh) <= MAX_SYMLOG_DECADES:
        ax.set_xscale("symlog", linthresh=linthresh)
        ax.set_xlim(lo, hi)
        tr = ax.xaxis.get_transform()
        ticks = _spread_ticks(
            _decade_candidates(lo, hi), lambda v: float(tr.transform([v])[0]), lo, hi
        )
        ax.xaxis.set_major_locator(FixedLocator(ticks))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.xaxis.set_major_formatter(FuncFormatter(_fmt_x))
    else:
        ordinal = True

        def coord(v):
            return float(encoding_order(np.array([v]))[0])

        ticks = _spread_ticks(_decade_candidates(lo, hi), coord, lo, hi)
        at = np.array([coord(v) for v in ticks])
        ax.set_xlim(coord(lo), coord(hi))
        ax.xaxis.set_major_locator(FixedLocator(at))
        ax.xaxis.set_minor_locator(NullLocator())
        # label a coordinate with the value of the nearest tick (the locator's own positions)
        ax.xaxis.set_major_formatter(
            FuncFormatter(lambda c, _pos: _fmt_x(ticks[int(np.argmin(np.abs(at - c)))]))
        )
    ax.set_xlabel(f"x ({fmt} input{', in encoding order' if ordinal else ''})")
    return ordinal


def error_figure(arrays: dict, title: str = "", cutpoints=None):
    """Three panels: |ulp error| vs x, relative error vs x (log, clipped to
    REL_FLOOR_PLOT..REL_CEIL_PLOT), and the histogram of ulp errors; ``cutpoints`` (values),
    if given, as faint vertical lines in the first two, so that errors show their interval.
    Returns the matplotlib Figure (caller closes it)."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    x, ulp, rel = arrays["x"], arrays["ulp"], arrays["rel"]
    fmt = arrays.get("dtype", "fp16").upper()  # FP16 | BF16: the format of inputs and ulps
    floor = "2^-126" if fmt == "BF16" else "2^-14"  # hw_sim.report.REL_FLOORS
    ok = ulp >= 0  # ulp -1 marks a NaN on either side
    fig = Figure(figsize=(14, 4.2))
    a1, a2, a3 = fig.subplots(1, 3)

    xo = x[ok]
    ordinal = _set_x(a1, xo, fmt)
    if ordinal:
        xo = encoding_order(xo)
    if cutpoints is not None and xo.size:
        c = np.asarray(cutpoints, dtype=np.float64)
        c = c[(c >= x[ok].min()) & (c <= x[ok].max())]
        for v in encoding_order(c) if ordinal else c:
            for ax in (a1, a2):
                ax.axvline(float(v), color="0.75", lw=0.6, zorder=0)
    a1.scatter(xo, ulp[ok], s=1, color="tab:blue", rasterized=True)
    a1.set_ylabel(f"{fmt} ulp error vs RNE(f(x))")
    a1.set_ylim(-0.5, max(1, int(ulp[ok].max(initial=0))) * 1.05 + 0.5)
    a1.yaxis.set_major_locator(MaxNLocator(integer=True))
    a1.set_title("ulp error")

    r = rel[ok]
    fin = np.isfinite(r)
    top = min(max(float(r[fin].max(initial=0.0)), REL_FLOOR_PLOT * 10), REL_CEIL_PLOT)
    _set_x(a2, x[ok], fmt)
    a2.scatter(
        xo[fin],
        np.clip(r[fin], REL_FLOOR_PLOT, REL_CEIL_PLOT),
        s=1,
        color="tab:orange",
        rasterized=True,
    )
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


def plot_errors(arrays: dict, path, title: str = "", cutpoints=None) -> None:
    """Write :func:`error_figure` as a PNG to ``path`` (atomically)."""
    fig = error_figure(arrays, title, cutpoints)
    with atomic_target(Path(path)) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
