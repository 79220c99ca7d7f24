"""Datapath-aware LUT refinement: tune LUT entries (and below/above) against the
bit-accurate unit instead of the idealized interpolant the solver optimizes.

Coordinate descent: for each LUT entry g, try the FP16 codes within ``radius``
steps of it on the ordered encoding, re-run the exact datapath (the same
:func:`hw_sim.unit._interp_fp32` / ``_interp_fp16`` steps) on the inputs
whose interpolation reads entry g (micro-bins g-1 and g), and keep the best
code if it strictly improves the objective over the whole domain. Sweeps
repeat until none changes or ``sweeps`` is reached. ``below``/``above`` are
chosen among the correctly rounded outputs of the clamped inputs.

Objectives (all over every finite FP16 input of the domain, against RNE16(f(x))
as in :mod:`hw_sim.report`):
* ``mean_rel``: minimize the mean relative error;
* ``pct_cr``: maximize the number correctly rounded, then mean relative error;
* ``max_ulp``: minimize the max ulp error, then the total ulp, then mean rel;
* ``pareto``: accept only changes that make no metric worse (mean relative
  error, number correctly rounded, max ulp) and improve one, so the result is
  never worse than the input on any of the three.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
from tqdm import tqdm

from nli.formats import FP16_NAN, FP16_OVERFLOW
from nli.grid import f16_bits_to_f64, fp16_grid
from nli.table import Table

from .fp import f16_to_f64 as f16_bits_to_f64_nb  # numba-callable decode
from .report import REL_FLOOR, error_report, is_nan_bits, ordered, reference_bits, table_domain
from .unit import _interp_fp16, _interp_fp32, _locate_fp16, _locate_fp32, prepare

OBJECTIVES = ("mean_rel", "pct_cr", "max_ulp", "pareto")
BELOW, ABOVE, NONE = -1, -2, -3


@dataclass(frozen=True)
class RefineConfig:
    """objective: one of OBJECTIVES; radius: codes tried on each side of an entry;
    sweeps: max passes over the LUT; clamps: also choose below/above."""

    objective: str = "mean_rel"
    radius: int = 2
    sweeps: int = 4
    clamps: bool = True

    def __post_init__(self):
        if self.objective not in OBJECTIVES:
            raise ValueError(
                f"objective: must be one of {', '.join(OBJECTIVES)}, got {self.objective!r}"
            )
        for k in ("radius", "sweeps"):
            v = getattr(self, k)
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{k}: must be an integer >= 1, got {v!r}")


@numba.njit(cache=True, nogil=True)
def _locate_all(xs, cut32, cut64, bins, base, mul32, mul16, fp16, g, t):
    """For each input bits xs[j]: g[j] = the LUT index y0 reads (or BELOW/ABOVE/NONE),
    t[j] = the interpolation weight (float64 holding the FP32/FP16 value)."""
    k = cut64.size - 1
    for j in range(xs.size):
        x64 = f16_bits_to_f64_nb(xs[j])
        t[j] = 0.0
        if x64 != x64:
            g[j] = NONE
        elif x64 < cut64[0]:
            g[j] = BELOW
        elif x64 >= cut64[k]:
            g[j] = ABOVE
        elif fp16:
            g[j], t[j] = _locate_fp16(x64, cut64, bins, base, mul16)
        else:
            gg, tt = _locate_fp32(np.float32(x64), cut32, bins, base, mul32)
            g[j], t[j] = gg, np.float64(tt)


@numba.njit(cache=True, nogil=True)
def _interp_subset(idx, g, t, lut64, fp16, out):
    """out[k] = the unit's output bits for input idx[k], with LUT values lut64."""
    for k in range(idx.size):
        j = idx[k]
        gj = g[j]
        if fp16:
            out[k] = _interp_fp16(lut64[gj], lut64[gj + 1], t[j])
        else:
            out[k] = _interp_fp32(
                np.float32(lut64[gj]), np.float32(lut64[gj + 1]), np.float32(t[j])
            )


class _Scorer:
    """Per-input error terms and the objective's score of a change on a subset."""

    def __init__(self, objective, fx, ref):
        self.objective, self.fx, self.ref = objective, fx, ref
        self.ord_ref = ordered(ref)
        self.ref_nan = is_nan_bits(ref)

    def terms(self, idx, y):
        """(rel, ulp, correct) for inputs idx with output bits y; NaN trouble -> inf/huge."""
        yv = f16_bits_to_f64(y)
        fx = self.fx[idx]
        with np.errstate(invalid="ignore", over="ignore"):
            rel = np.abs(yv - fx) / np.maximum(np.abs(fx), REL_FLOOR)
        bad = is_nan_bits(y) | self.ref_nan[idx]
        rel = np.where(bad | np.isnan(rel), np.inf, rel)
        ulp = np.where(bad, 1 << 20, np.abs(ordered(y) - self.ord_ref[idx]))
        return rel, ulp, ulp == 0

    def key(self, d_rel, d_ok, new_max, cur_max, d_ulp):
        """Sort key of a change (smaller is better; the no-change key is all zeros),
        or None when the ``pareto`` objective does not accept it. d_*: the change
        of the summed relative error, of the number correctly rounded and of the
        summed ulp; new_max/cur_max: the domain's max ulp after/before."""
        if self.objective == "mean_rel":
            return (d_rel,)
        if self.objective == "pct_cr":
            return (-d_ok, d_rel)
        if self.objective == "max_ulp":
            return (new_max - cur_max, d_ulp, d_rel)
        # pareto: no metric may get worse; the key then prefers the most correctly rounded
        if d_rel > 0 or d_ok < 0 or new_max > cur_max:
            return None
        return (-d_ok, d_rel, new_max - cur_max)


def _candidates(bits: int, radius: int) -> list[int]:
    """FP16 codes within ``radius`` steps of ``bits`` on the number line, finite only."""
    o = int(ordered(np.uint16(bits)))
    out = []
    for d in range(-radius, radius + 1):
        v = o + d
        if d == 0 or abs(v) >= 0x7C00:
            continue
        out.append(v if v >= 0 else 0x8000 | -v)
    return out


def refine_table(
    table: Table, config: RefineConfig = RefineConfig(), domain=None, progress: bool = False
) -> tuple[Table, dict]:
    """Refine ``table``'s LUT (and below/above) for ``config.objective`` over every finite
    FP16 input of ``domain`` (default: the table's). Returns (new table, summary) where
    summary has the error reports before and after; the table's meta gets ``refined``."""
    if table.dtype != "fp16":
        raise ValueError(f"refine: fp16 tables only, got a {table.dtype} table")
    lo, hi = domain if domain is not None else table_domain(table)
    before = error_report(table, (lo, hi))
    x, bits = fp16_grid(lo, hi)
    fx, ref = reference_bits(table.function, x)
    p = prepare(table)
    fp16 = table.precision == "fp16"
    g = np.empty(bits.size, np.int64)
    t = np.empty(bits.size, np.float64)
    _locate_all(bits, p.cut32, p.cut64, p.bins, p.base, p.mul32, p.mul16, fp16, g, t)
    lut = table.lut.astype(np.uint16).copy()
    lut64 = f16_bits_to_f64(lut)
    sc = _Scorer(config.objective, fx, ref)

    # current per-input terms
    y = np.empty(bits.size, np.uint16)
    inner = np.flatnonzero(g >= 0)
    out = np.empty(inner.size, np.uint16)
    _interp_subset(inner, g, t, lut64, fp16, out)
    y[inner] = out
    y[g == BELOW], y[g == ABOVE], y[g == NONE] = table.below, table.above, FP16_NAN
    rel, ulp, ok = sc.terms(np.arange(bits.size), y)

    order = np.argsort(g, kind="stable")
    gs = g[order]
    changed, sweeps_run = set(), 0

    def try_set(idx, make_y, options, current):
        """Pick the best option for the inputs idx; update the terms; return it.
        Changes are scored by exact deltas on idx (identical outputs give a zero key)."""
        nonlocal rel, ulp, ok
        cur_max = int(ulp.max())
        rest = np.ones(ulp.size, bool)
        rest[idx] = False
        rest_max = int(ulp[rest].max()) if rest.any() else 0
        r0, u0, c0 = rel[idx].sum(), int(ulp[idx].sum()), int(ok[idx].sum())
        best, best_key, best_terms = current, None, None
        for opt in options:
            r, u, c = sc.terms(idx, make_y(opt))
            k = sc.key(
                r.sum() - r0,
                int(c.sum()) - c0,
                max(rest_max, int(u.max())),
                cur_max,
                int(u.sum()) - u0,
            )
            if k is None or not k < (0,) * len(k):
                continue
            if best_key is None or k < best_key:
                best, best_key, best_terms = opt, k, (r, u, c)
        if best_terms is not None:
            rel[idx], ulp[idx], ok[idx] = best_terms
        return best

    for sweep in range(config.sweeps):
        sweeps_run += 1
        moved = 0
        entries = range(lut.size)
        for e in (
            tqdm(entries, desc=f"refine sweep {sweep + 1}", leave=False) if progress else entries
        ):
            lo_i, hi_i = (
                np.searchsorted(gs, [e - 1, e], side="left")[0],
                np.searchsorted(gs, e, side="right"),
            )
            idx = order[lo_i:hi_i]
            if idx.size == 0:
                continue
            nb = [lut64[e - 1] if e > 0 else None, lut64[e + 1] if e + 1 < lut.size else None]
            opts = [
                c
                for c in _candidates(int(lut[e]), config.radius)
                if all(
                    v is None or abs(float(f16_bits_to_f64(np.uint16(c))) - v) < FP16_OVERFLOW
                    for v in nb
                )
            ]
            buf = np.empty(idx.size, np.uint16)

            def make_y(code, e=e, idx=idx, buf=buf):
                old = lut64[e]
                lut64[e] = f16_bits_to_f64(np.uint16(code))
                _interp_subset(idx, g, t, lut64, fp16, buf)
                lut64[e] = old
                return buf

            best = try_set(idx, make_y, opts, int(lut[e]))
            if best != int(lut[e]):
                lut[e], lut64[e] = best, f16_bits_to_f64(np.uint16(best))
                changed.add(e)
                moved += 1
        if moved == 0:
            break

    below, above = table.below, table.above
    if config.clamps:
        for which in (BELOW, ABOVE):
            idx = np.flatnonzero(g == which)
            if idx.size == 0:
                continue
            cur = below if which == BELOW else above
            cands = np.unique(ref[idx][~is_nan_bits(ref[idx])])
            if cands.size > 512:
                cands = cands[np.linspace(0, cands.size - 1, 512).astype(int)]
            choice = try_set(
                idx,
                lambda c, n=idx.size: np.full(n, c, np.uint16),
                [int(c) for c in cands],
                int(cur),
            )
            below, above = (choice, above) if which == BELOW else (below, choice)

    info = {
        "objective": config.objective,
        "radius": config.radius,
        "sweeps_run": sweeps_run,
        "changed_entries": len(changed),
        "below_changed": below != table.below,
        "above_changed": above != table.above,
        "domain": [lo, hi],
    }
    if "refined" in table.meta:  # a refinement of a refined table keeps the earlier record
        info["previous"] = table.meta["refined"]
    new = table.with_lut(lut, below=below, above=above, refined=info)
    after = error_report(new, (lo, hi))
    return new, {"refined": info, "before": before, "after": after}


# numba cache stamp: d69e7d3e03cad725 (nli/kernel_stamps.py)
