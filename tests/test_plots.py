"""Every figure the project writes stays readable: finite axis limits, log axes over a bounded
number of decades, and tick labels that do not overlap once drawn.

The figure builders (hw_sim.plots.error_figure, moe.plots.expert_load_figure,
engine.demo.perplexity_figure) return the Figure; the PNG writers only save it.
"""

import math

from matplotlib.backends.backend_agg import FigureCanvasAgg
import numpy as np
import pytest

from engine.demo import perplexity_figure
from hw_sim.plots import REL_CEIL_PLOT, REL_FLOOR_PLOT, error_figure
from hw_sim.report import error_arrays
from moe.plots import expert_load_figure
import nli

MAX_LOG_DECADES = 12  # a log axis spanning more says nothing a reader can use
MAX_SYMLOG_LABELS = 12


def _decades(lo, hi, linthresh=None):
    """Decades a log axis spans; for symlog, the decades on each side beyond linthresh."""
    if linthresh is None:
        return math.log10(hi / lo)
    side = [math.log10(abs(v) / linthresh) for v in (lo, hi) if abs(v) > linthresh]
    return sum(side)


def assert_readable(fig):
    """Finite limits; log axes <= MAX_LOG_DECADES; no two tick labels of an axis overlap."""
    FigureCanvasAgg(fig)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:
        for name, lim, scale, axis in (
            ("x", ax.get_xlim(), ax.get_xscale(), ax.xaxis),
            ("y", ax.get_ylim(), ax.get_yscale(), ax.yaxis),
        ):
            lo, hi = sorted(lim)
            assert math.isfinite(lo) and math.isfinite(hi) and lo < hi, (ax.get_title(), name, lim)
            if scale == "log":
                assert lo > 0 and _decades(lo, hi) <= MAX_LOG_DECADES, (ax.get_title(), name, lim)
            if scale == "symlog":
                lt = axis.get_transform().linthresh
                assert _decades(lo, hi, lt) <= 2 * MAX_LOG_DECADES, (ax.get_title(), name, lim)
            labels = [t for t in axis.get_ticklabels() if t.get_visible() and t.get_text()]
            if scale == "symlog":
                assert len(labels) <= MAX_SYMLOG_LABELS, (
                    ax.get_title(),
                    name,
                    [t.get_text() for t in labels],
                )
            boxes = [t.get_window_extent(renderer) for t in labels]
            for i in range(len(boxes)):
                for j in range(i + 1, len(boxes)):
                    assert not boxes[i].overlaps(boxes[j]), (
                        f"{ax.get_title()!r} {name}: tick labels {labels[i].get_text()!r} and "
                        f"{labels[j].get_text()!r} overlap"
                    )


def test_error_figure_of_the_shipped_silu_table():
    arrays = error_arrays(nli.default_table("silu", "direct"))
    assert_readable(error_figure(arrays, "silu"))


@pytest.mark.parametrize("dtype", ["fp16", "bf16"])
def test_error_figure_marks_the_cutpoints_inside_the_domain(dtype):
    t = nli.default_table("silu", "direct", dtype)
    arrays = error_arrays(t)
    fig = error_figure(arrays, "silu", t.cutpoint_values())
    assert_readable(fig)
    c = t.cutpoint_values()
    inside = int(np.count_nonzero((c >= arrays["x"].min()) & (c <= arrays["x"].max())))
    plain = error_figure(arrays, "silu")
    for ax, ax0 in zip(fig.axes[:2], plain.axes[:2]):
        assert len(ax.get_lines()) - len(ax0.get_lines()) == inside > 0
        lo, hi = ax.get_xlim()
        assert all(lo <= line.get_xdata()[0] <= hi for line in ax.get_lines())


@pytest.mark.parametrize("fn_mode", [("reciprocal", "reduced"), ("exp", "direct")])
def test_error_figure_of_narrow_and_one_sided_domains(fn_mode):
    assert_readable(error_figure(error_arrays(nli.default_table(*fn_mode)), ":".join(fn_mode)))


@pytest.mark.parametrize("name", ["silu", "exp", "tanh"])
def test_error_figure_of_shipped_bf16_tables(name):
    """BF16 domains span up to 75 decades (1e-38..8.5e37): the x axis switches to encoding
    order, still labelled in values, and stays readable."""
    fig = error_figure(error_arrays(nli.default_table(name, "direct", "bf16")), name)
    assert_readable(fig)
    ax = fig.axes[0]
    assert "BF16" in ax.get_xlabel()
    labels = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
    assert "0" in labels and len(labels) >= 3, labels


def test_error_figure_bounds_extreme_relative_errors():
    """Relative errors of 0, 1e-316 (a float64 residue), 1e12, inf and NaN, as a broken table
    gives, stay inside [REL_FLOOR_PLOT, REL_CEIL_PLOT] on the plot."""
    x = np.concatenate([-np.geomspace(65504, 2**-24, 500), [0.0], np.geomspace(2**-24, 65504, 500)])
    rng = np.random.default_rng(0)
    ulp = rng.integers(0, 20000, x.size).astype(np.int32)
    ulp[::97] = -1
    rel = rng.uniform(0, 1, x.size)
    rel[:5] = [0.0, 1e-316, 1e12, np.inf, np.nan]
    fig = error_figure({"x": x, "ulp": ulp, "rel": rel}, "synthetic")
    assert_readable(fig)
    lo, hi = fig.axes[1].get_ylim()
    assert REL_FLOOR_PLOT / 10 <= lo and hi <= REL_CEIL_PLOT


def test_perplexity_figure_with_nan_and_huge_changes():
    modes = {
        "fp16": -1.7e-5,
        "nli": -6.1e-6,
        "nli_direct": float("nan"),
        "published": 3.7e-5,
        "published_direct": float("nan"),
        "baseline:uniform": 439.0,
        "baseline:curvature": -5.9e-4,
        "baseline:nnlut": 13.6,
    }
    res = {
        "tokens": 1023,
        "ppl_ref": 17.04,
        "modes": {k: {"ppl_rel_change": v} for k, v in modes.items()},
    }
    assert_readable(perplexity_figure(res))


def test_perplexity_figure_with_tiny_changes_only():
    res = {
        "tokens": 511,
        "ppl_ref": 9.0,
        "modes": {"nli": {"ppl_rel_change": 0.0}, "fp16": {"ppl_rel_change": 1e-9}},
    }
    assert_readable(perplexity_figure(res))


@pytest.mark.parametrize(
    "labels,layers,experts",
    [
        (("ref", "nli"), 8, 8),
        (("sparse", "drop", "partition", "spri", "cluster"), 8, 8),
        (("a",), 2, 16),
    ],
)
def test_expert_load_figure(labels, layers, experts):
    rng = np.random.default_rng(1)
    loads = {
        lab: {str(22 + i): list(rng.dirichlet(np.ones(experts))) for i in range(layers)}
        for lab in labels
    }
    assert_readable(expert_load_figure(loads, "expert load"))


def test_readability_check_catches_crowded_symlog_ticks():
    """The check itself fails on the old SiLU plot's x axis (matplotlib's default symlog ticks
    over +-65504 crowd into one unreadable row)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    x = np.linspace(-65504, 65504, 100)
    ax.plot(x, x)
    ax.set_xscale("symlog", linthresh=2.0**-14)
    with pytest.raises(AssertionError):
        assert_readable(fig)
