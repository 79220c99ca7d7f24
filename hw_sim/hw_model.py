"""Cycle, area and power MODEL of the NLI unit: calibrated on published synthesis
numbers (NLI paper, SMIC 28 nm @ 1 GHz), NOT a measurement of any hardware.

Cycle model (:class:`UnitConfig`): each lane is the 4-stage pipeline of the
paper (compare -> scale/floor -> dual-port LUT read -> FMA); after a fill of
``depth`` cycles it delivers one result per cycle. Reductions:

* max (softmax step 1): a streaming compare in every lane, then a tree over
  the lanes' partial maxima (ceil(log2 lanes) cycles);
* the FP32 sums (softmax step 3, RMSNorm step 1) are sequential in index
  order by numerics §4, so ONE accumulator per row adds one term every
  ``adder_latency`` cycles: a row spread over many lanes is bound by n x
  adder_latency cycles, while a row owned by one lane streams at one term per
  cycle (the lane interleaves rows to hide a longer adder latency);
* the reciprocal/rsqrt is one more lookup through the pipeline (``depth``
  cycles), plus one cycle of exponent split/scale in ``reduced`` mode; RMSNorm
  adds two scalar FP32 cycles (x 1/n, + eps);
* softmax: max pass + exp pass (its sum overlapped) + scale pass; RMSNorm:
  square-accumulate pass + output pass (two rounding multiplies in one stage).

``softmax_cycles``/``rmsnorm_cycles`` pick the faster of two schedules: rows
spread across lanes one at a time, or whole rows per lane (row-parallel).

Area/power model: ``area = F_a + s_a * (k_c * comparators + words)`` and the
same form for power, where ``words`` = LUT entries + scale registers (16-bit)
and ``k_c`` (default 2) = a comparator with its threshold register in
storage-word units (an ASSUMPTION: the published data have only two distinct
configurations, 10 vs 256 comparators, so only two coefficients per metric
are identifiable). Efficiency = throughput / (area x power), in the published
table's units (1e-3: NLI 1 G/s / (7,787 um^2 x 34 mW) -> 3.78).

Scope: the model prices storage words, i.e. a programmable unit that holds cutpoints,
scales and LUT in registers. It is not a prediction for the table-specialized unit that
``nli hw rtl`` generates: synthesized with Yosys (benchmarks/rtl_synth.py, docs/results.md),
the single-level 259-point unit is far less than the model's ~3x the NLI unit, because
the FP32 datapath that both share dominates once the table is baked into logic.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import math

import numpy as np

from nli.formats import MODES

LABEL = (
    "model calibrated on published synthesis numbers (NLI paper, SMIC 28 nm @ 1 GHz), "
    "not a measurement"
)


# ----------------------------------------------------------------------------- published anchors
@dataclass(frozen=True)
class Design:
    """A unit design: its resources and (for the published ones) its synthesis figures."""

    name: str
    comparators: int
    lut_entries: int
    registers: int
    area_um2: float | None = None  # published
    power_mw: float | None = None  # published
    efficiency: float | None = None  # published, 1e-3 units
    inventory_note: str = ""


PUBLISHED = (
    Design(
        "NLI",
        10,
        259,
        10,
        7787.0,
        34.0,
        3.78,
        "paper: 10 comparators, 259 LUT entries + 10 scale registers",
    ),
    Design(
        "NN-LUT",
        256,
        512,
        0,
        23238.0,
        46.0,
        0.94,
        (
            "assumed: 256 segments x (slope, intercept) = 512 entries; "
            "breakpoints counted in comparators"
        ),
    ),
    Design(
        "RI-LUT",
        256,
        512,
        0,
        23647.0,
        48.0,
        0.88,
        "assumed: as NN-LUT (its inventory is not public)",
    ),
)
PUBLISHED_THROUGHPUT = 1e9  # results/s of one unit at 1 GHz


def efficiency(throughput_per_s: float, area_um2: float, power_mw: float) -> float:
    """throughput / (area x power) in the published table's units (1e-3)."""
    return throughput_per_s / (area_um2 * power_mw) / 1e3


# ----------------------------------------------------------------------------- area / power model
@dataclass(frozen=True)
class AreaPowerModel:
    """Linear resource model fitted on :data:`PUBLISHED` (see module docstring)."""

    comparator_words: float = 2.0
    area_fixed: float = 0.0
    area_per_word: float = 0.0
    power_fixed: float = 0.0
    power_per_word: float = 0.0
    fit: dict = field(default_factory=dict)

    def resources(self, comparators: int, lut_entries: int, registers: int) -> float:
        """Resources in 16-bit storage-word equivalents."""
        return self.comparator_words * comparators + lut_entries + registers

    def area_um2(self, comparators: int, lut_entries: int, registers: int) -> float:
        return self.area_fixed + self.area_per_word * self.resources(
            comparators, lut_entries, registers
        )

    def power_mw(self, comparators: int, lut_entries: int, registers: int) -> float:
        return self.power_fixed + self.power_per_word * self.resources(
            comparators, lut_entries, registers
        )


def fit_area_power(comparator_words: float = 2.0) -> AreaPowerModel:
    """Least-squares fit of the area and power lines on the published designs; the
    returned model's ``fit`` holds the per-design predictions and residuals."""
    if not comparator_words > 0:
        raise ValueError(f"comparator_words must be > 0, got {comparator_words}")
    r = np.array(
        [comparator_words * d.comparators + d.lut_entries + d.registers for d in PUBLISHED]
    )
    A = np.stack([np.ones_like(r), r], axis=1)  # (3 designs, 2 coefficients)
    area = np.array([d.area_um2 for d in PUBLISHED])
    power = np.array([d.power_mw for d in PUBLISHED])
    (a0, a1), *_ = np.linalg.lstsq(A, area, rcond=None)
    (p0, p1), *_ = np.linalg.lstsq(A, power, rcond=None)
    a0, a1, p0, p1 = float(a0), float(a1), float(p0), float(p1)
    rows = []
    for d, ri in zip(PUBLISHED, r.tolist()):
        pa, pp = a0 + a1 * ri, p0 + p1 * ri
        pe = efficiency(PUBLISHED_THROUGHPUT, pa, pp)
        rows.append(
            {
                "design": d.name,
                "comparators": d.comparators,
                "lut_entries": d.lut_entries,
                "registers": d.registers,
                "inventory": d.inventory_note,
                "published": {
                    "area_um2": d.area_um2,
                    "power_mw": d.power_mw,
                    "efficiency": d.efficiency,
                },
                "model": {"area_um2": pa, "power_mw": pp, "efficiency": pe},
                "residual": {
                    "area_um2": pa - d.area_um2,
                    "power_mw": pp - d.power_mw,
                    "efficiency": pe - d.efficiency,
                },
                "relative_residual": {
                    "area": (pa - d.area_um2) / d.area_um2,
                    "power": (pp - d.power_mw) / d.power_mw,
                    "efficiency": (pe - d.efficiency) / d.efficiency,
                },
            }
        )
    fit = {
        "label": LABEL,
        "comparator_words": comparator_words,
        "designs": rows,
        "coefficients": {
            "area_fixed_um2": a0,
            "area_per_word_um2": a1,
            "power_fixed_mw": p0,
            "power_per_word_mw": p1,
        },
    }
    return AreaPowerModel(comparator_words, a0, a1, p0, p1, fit)


# ----------------------------------------------------------------------------- cycle model
@dataclass(frozen=True)
class UnitConfig:
    """Lanes, clock and pipeline parameters of the modelled unit."""

    lanes: int = 1
    clock_hz: float = 1e9
    depth: int = 4  # pipeline stages = fill latency in cycles
    adder_latency: int = 1  # cycles between dependent FP32 accumulations
    reduce_cycles: int = 1  # extra cycles of a reduced-mode reciprocal/rsqrt

    def __post_init__(self):
        for name in ("lanes", "depth", "adder_latency"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{name}: must be an integer >= 1, got {v!r}")
        if not (isinstance(self.reduce_cycles, (int, np.integer)) and self.reduce_cycles >= 0):
            raise ValueError(f"reduce_cycles: must be an integer >= 0, got {self.reduce_cycles!r}")
        if not (math.isfinite(self.clock_hz) and self.clock_hz > 0):
            raise ValueError(f"clock_hz: must be positive and finite, got {self.clock_hz!r}")


def _check_n(n, name="n"):
    if not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"{name}: must be an integer >= 0, got {n!r}")


def elementwise_cycles(n: int, cfg: UnitConfig = UnitConfig()) -> int:
    """Cycles for n independent lookups: depth fill, then lanes results per cycle."""
    _check_n(n)
    return 0 if n == 0 else cfg.depth + math.ceil(n / cfg.lanes) - 1


def _pass(n, lanes, cfg):
    return cfg.depth + math.ceil(n / lanes) - 1


def _inverse_cycles(cfg, mode):
    if mode not in MODES:
        raise ValueError(f"mode: must be direct or reduced, got {mode!r}")
    return cfg.depth + (cfg.reduce_cycles if mode == "reduced" else 0)


def _schedule(rows: int, spread: int, own: int, cfg: UnitConfig) -> dict:
    """The faster of the two schedules for ``rows`` rows: each row spread over all lanes
    (``spread`` cycles a row, rows in sequence) or one lane per row (``own`` cycles a row,
    cfg.lanes rows at a time); ties go to spread."""
    a, b = rows * spread, math.ceil(rows / cfg.lanes) * own
    return {
        "cycles": min(a, b),
        "schedule": "spread" if a <= b else "row_parallel",
        "per_row": spread if a <= b else own,
    }


def softmax_cycles(
    n: int, rows: int = 1, mode: str = "direct", cfg: UnitConfig = UnitConfig()
) -> dict:
    """Cycles for ``rows`` softmax rows of length n: {'cycles', 'schedule', 'per_row'}."""
    _check_n(n)
    _check_n(rows, "rows")
    if n == 0 or rows == 0:
        return {"cycles": 0, "schedule": "none", "per_row": 0}
    inv = _inverse_cycles(cfg, mode)
    spread = (
        math.ceil(n / cfg.lanes)
        + math.ceil(math.log2(cfg.lanes))  # max
        + max(_pass(n, cfg.lanes, cfg), n * cfg.adder_latency + cfg.depth - 1)  # exp + serial sum
        + inv
        + _pass(n, cfg.lanes, cfg)
    )  # 1/s, scale
    own = n + max(_pass(n, 1, cfg), n + cfg.depth - 1) + inv + _pass(n, 1, cfg)  # one lane per row
    return _schedule(rows, spread, own, cfg)


def rmsnorm_cycles(
    n: int, rows: int = 1, mode: str = "direct", cfg: UnitConfig = UnitConfig()
) -> dict:
    """Cycles for ``rows`` RMSNorm rows of length n: {'cycles', 'schedule', 'per_row'}."""
    _check_n(n)
    _check_n(rows, "rows")
    if n == 0 or rows == 0:
        return {"cycles": 0, "schedule": "none", "per_row": 0}
    inv = _inverse_cycles(cfg, mode) + 2  # x 1/n, + eps
    spread = (
        max(_pass(n, cfg.lanes, cfg), n * cfg.adder_latency + cfg.depth - 1)
        + inv
        + _pass(n, cfg.lanes, cfg)
        + 1
    )
    own = (n + cfg.depth - 1) + inv + _pass(n, 1, cfg) + 1
    return _schedule(rows, spread, own, cfg)


def seconds(cycles: int, cfg: UnitConfig = UnitConfig()) -> float:
    return cycles / cfg.clock_hz


# ----------------------------------------------------------------------------- pricing
def _passes(op: str, rows: float, elements: float) -> float:
    """Steady-state lane-cycles of an op (row-parallel, pipeline full)."""
    if "softmax" in op:
        return 3 * elements + rows  # max, exp(+sum), scale passes; 1 reciprocal lookup per row
    if "rmsnorm" in op:
        return 2 * elements + 3 * rows  # square-accumulate, output passes; rsqrt + 2 scalar cycles
    return elements  # elementwise (silu, gelu, ...)


def price_counts(
    counts: dict,
    lanes: int | None = None,
    cfg: UnitConfig | None = None,
    model: AreaPowerModel | None = None,
) -> dict:
    """Price per-token op counts {op: (rows, elements)} on NLI-, NN-LUT- and RI-LUT-style
    units with ``lanes`` lanes. Returns {unit: {lanes, passes_per_token,
    cycles_per_token, energy_pj_per_token, area_um2, power_mw, source}}.
    Steady state (rows spread over lanes, fill amortized). Model output."""
    cfg = cfg or UnitConfig()
    lanes = int(16 if lanes is None else lanes)
    if lanes < 1:
        raise ValueError(f"lanes must be >= 1, got {lanes}")
    model = model or fit_area_power()
    passes = float(sum(_passes(op, float(r), float(e)) for op, (r, e) in counts.items()))
    out = {}
    for d in PUBLISHED:
        key = d.name.lower().replace("-", "_")
        area = model.area_um2(d.comparators, d.lut_entries, d.registers)
        power = model.power_mw(d.comparators, d.lut_entries, d.registers)
        out[key] = {
            "lanes": lanes,
            "passes_per_token": passes,
            "cycles_per_token": passes / lanes,
            "energy_pj_per_token": passes * power * 1e-3 / cfg.clock_hz * 1e12,
            "area_um2": lanes * area,
            "power_mw": lanes * power,
            "source": LABEL,
        }
    return out


def table_hw_cost(
    table, cfg: UnitConfig | None = None, model: AreaPowerModel | None = None
) -> dict:
    """Modelled area, power and efficiency of one lane holding ``table`` (comparators = K,
    LUT entries, K scale registers), with ``cfg.lanes`` lanes at ``cfg.clock_hz``."""
    cfg = cfg or UnitConfig()
    model = model or fit_area_power()
    c, e, r = table.K, table.entries, table.K
    area = cfg.lanes * model.area_um2(c, e, r)
    power = cfg.lanes * model.power_mw(c, e, r)
    thr = cfg.lanes * cfg.clock_hz
    return {
        "label": LABEL,
        "comparators": c,
        "lut_entries": e,
        "registers": r,
        "lanes": cfg.lanes,
        "clock_hz": cfg.clock_hz,
        "area_um2": area,
        "power_mw": power,
        "throughput_per_s": thr,
        "efficiency": efficiency(thr, area, power),
    }
