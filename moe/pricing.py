"""Pricing the per-token nonlinear work (:mod:`moe.op_counts`) on the NLI unit and on an NN-LUT
unit.

MODEL OUTPUT, not a measurement. :func:`price` uses
``hw_sim.hw_model.price_counts(counts, lanes)`` (the simulator issue's cycle and
area/power model, which counts its own passes per op: e.g. softmax = max,
exp and scale passes). Without it, :func:`price_published` uses the published
synthesis figures (SMIC 28 nm, 1 GHz, 1 G lookups/s
per unit; /work/shared/notes/anchors.md) are used, with this cycle model:

- one lane does one elementwise pass per cycle (pipelined, 4 stages);
- SiLU: 1 pass per element;
- softmax: 2 passes per element (exp lookup; final scale ``e_i * r``) plus
  1 reciprocal lookup per row;
- RMSNorm: 2 passes per element (square-accumulate; ``x * r * w``) plus 1
  rsqrt lookup per row;
- cycles/token = passes/token / lanes (no stalls, rows spread over lanes);
- energy/token = passes/token x power / throughput
  (NLI 34 mW / 1 G/s = 34 pJ per pass; NN-LUT 46 pJ), area = lanes x unit area.
"""

from __future__ import annotations

from .op_counts import OpCount

# published synthesis figures (NLI paper, SMIC 28 nm, 1 GHz, 1 G/s per unit)
UNITS = {
    "nli": {"area_um2": 7787.0, "power_mw": 34.0, "throughput_per_s": 1e9, "comparators": 10},
    "nn_lut": {"area_um2": 23238.0, "power_mw": 46.0, "throughput_per_s": 1e9, "comparators": 256},
}
DEFAULT_LANES = 16
SOURCE = "published synthesis figures (NLI paper table; anchors.md) with moe.pricing's pass model"


def passes_per_token(counts: dict[str, OpCount]) -> float:
    """Elementwise passes through the unit per token (see module docstring)."""
    return (
        counts["silu"].elements
        + 2 * counts["attention_softmax"].elements
        + counts["attention_softmax"].rows
        + 2 * counts["router_softmax"].elements
        + counts["router_softmax"].rows
        + 2 * counts["rmsnorm"].elements
        + counts["rmsnorm"].rows
    )


def price(counts: dict[str, OpCount], lanes: int | None = None) -> dict:
    """{unit: {cycles_per_token, energy_pj_per_token, area_um2, ...}}:
    ``hw_sim.hw_model.price_counts`` when this install has it, else :func:`price_published`."""
    try:
        from hw_sim.hw_model import price_counts  # the simulator issue's cycle/area/power model
    except ImportError:
        return price_published(counts, lanes)
    return price_counts({k: (v.rows, v.elements) for k, v in counts.items()}, lanes)


def price_published(counts: dict[str, OpCount], lanes: int | None = None) -> dict:
    """The fallback pricing from the published figures (module docstring)
    -> same keys as ``price``."""
    lanes = DEFAULT_LANES if lanes is None else int(lanes)
    if lanes < 1:
        raise ValueError(f"lanes must be >= 1, got {lanes}")
    p = passes_per_token(counts)
    out = {}
    for name, u in UNITS.items():
        pj_per_pass = u["power_mw"] * 1e-3 / u["throughput_per_s"] * 1e12
        out[name] = {
            "lanes": lanes,
            "passes_per_token": p,
            "cycles_per_token": p / lanes,
            "energy_pj_per_token": p * pj_per_pass,
            "area_um2": lanes * u["area_um2"],
            "power_mw": lanes * u["power_mw"],
            "source": SOURCE,
        }
    return out
