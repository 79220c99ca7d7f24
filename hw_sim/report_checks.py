"""Checks hardware people ask of a table, beside its error numbers (``nli table report``).

* sign: over every input where RNE16(f(x)) is not zero (its sign is known), the output must
  not have the opposite sign; the smallest-magnitude input on each side of 0 (of the domain)
  is shown with f's sign and the output;
* tails: the clamp regions (numerics §3: x < c_0 outputs ``below``, x >= c_K ``above``)
  must not output 0 where RNE16(f(x)) is not 0 (such zeros between the cutpoints are
  counted too, not flagged);
* by interval: where the error is, the report's numbers over each region the unit treats
  alike (the left clamp, each macro interval with its bins, the right clamp);
* provenance: how the table was made, from its ``meta`` (objective, layout, LUT rounding in
  the objective, solver version if recorded, exact or thinned, refinement, method).

Pure: arrays and tables in, dicts out. :func:`table_report` is the whole report.
"""

from __future__ import annotations

import numpy as np

from nli.grid import bits_to_f64

from .report import (
    correctly_rounded,
    error_arrays,
    is_nan_bits,
    ordered,
    report_of_arrays,
    summarize,
    table_domain,
)


def _sign(bits) -> np.ndarray:
    return np.sign(ordered(bits))  # -1, 0 (either zero), +1


def sign_check(arrays: dict) -> dict:
    """Wrong-sign outputs over the domain, and the inputs nearest 0 on each side."""
    x, y, ref = arrays["x"], arrays["y"], arrays["ref"]
    dtype = arrays.get("dtype", "fp16")
    sy, sr = _sign(y), _sign(ref)
    known = (sr != 0) & ~is_nan_bits(ref, dtype) & ~is_nan_bits(y, dtype)
    wrong = known & (sy == -sr)
    near = {}
    for side, mask in (("negative", x < 0), ("positive", x > 0)):
        if mask.any():
            i = int(np.flatnonzero(mask)[np.argmin(np.abs(x[mask]))])
            near[side] = {
                "x": float(x[i]),
                "f_sign": int(np.sign(arrays["fx"][i])),
                "output": float(bits_to_f64(y[i], dtype)),
                "ok": bool(not wrong[i]),
            }
    return {
        "checked": int(known.sum()),
        "wrong_sign": int(wrong.sum()),
        "first_wrong_x": float(x[np.argmax(wrong)]) if wrong.any() else None,
        "near_zero": near,
        "ok": bool(not wrong.any()),
    }


def tails_check(table, arrays: dict) -> dict:
    """Zero outputs in the clamp regions where RNE16(f(x)) is not zero."""
    x, y, ref = arrays["x"], arrays["y"], arrays["ref"]
    c = table.cutpoint_values()
    zeroed = (ordered(y) == 0) & (ordered(ref) != 0) & ~is_nan_bits(ref, table.dtype)
    out = {}
    for side, mask, value in (
        ("left", x < c[0], table.below),
        ("right", x >= c[-1], table.above),
    ):
        z = mask & zeroed
        out[side] = {
            "inputs": int(mask.sum()),
            "range": [float(x[mask].min()), float(x[mask].max())] if mask.any() else None,
            "output": float(bits_to_f64(np.uint16(value), table.dtype)),
            "zeroed": int(z.sum()),
            "first_zeroed_x": float(x[np.argmax(z)]) if z.any() else None,
            "max_ulp": int(arrays["ulp"][mask].max()) if mask.any() else None,
        }
    out["ok"] = bool(out["left"]["zeroed"] == 0 and out["right"]["zeroed"] == 0)
    inside = zeroed & (x >= c[0]) & (x < c[-1])  # reported, not flagged: interpolated zeros
    out["zeroed_between_cutpoints"] = int(inside.sum())
    return out


def by_interval(table, arrays: dict) -> list[dict]:
    """The report's numbers per region of the input line (numerics §3): ``below`` (x < c_0),
    ``interval m`` ([c_{m-1}, c_m), m = 1..K, with its bins) and ``above`` (x >= c_K), in
    order; regions without an input of the domain are left out. Region bounds compare as
    the unit's comparators do (floats: -0 = +0)."""
    c = table.cutpoint_values()
    region = np.searchsorted(c, arrays["x"], side="right")  # 0 below, m interval m, K+1 above
    cr = correctly_rounded(arrays)
    rows = []
    for m in range(len(c) + 1):
        mask = region == m
        if not mask.any():
            continue
        s = summarize({k: v[mask] if isinstance(v, np.ndarray) else v for k, v in arrays.items()})
        inner = 0 < m < len(c)
        rows.append(
            {
                "region": "below" if m == 0 else f"interval {m}" if inner else "above",
                "from": float(c[m - 1]) if m else None,  # inclusive
                "to": float(c[m]) if m < len(c) else None,  # exclusive
                "bins": int(table.bins[m - 1]) if inner else None,
                "inputs": s["inputs"],
                "not_correctly_rounded": int(np.count_nonzero(mask & ~cr)),
                "pct_correctly_rounded": s["pct_correctly_rounded"],
                "max_ulp": s["max_ulp"],
                "mean_rel_error": s["mean_rel_error"],
            }
        )
    return rows


def _solve_kind(meta: dict) -> str | None:
    """'exact' or 'thinned (stride S)' from meta's ``thinning`` (the solver writes null for an
    exact solve, older files 1); None where the file does not record it."""
    if "thinning" not in meta:
        return None
    thin = meta["thinning"]
    return "exact" if thin is None or thin == 1 else f"thinned (stride {thin})"


def provenance(table) -> dict:
    """How the table was made, from its meta (None where the file does not say)."""
    m = table.meta
    prov = m.get("provenance") if isinstance(m.get("provenance"), dict) else {}
    refined = m.get("refined") if isinstance(m.get("refined"), dict) else None
    thin = m.get("thinning")
    return {
        "objective": m.get("objective"),
        "layout": m.get("layout"),
        "lut_rounding_in_objective": m.get("lut_rounding_in_objective"),
        "solver_version": m.get("solver_version", prov.get("solver_version")),
        "thinning": 1 if thin is None and "thinning" in m else thin,  # stride; 1: exact
        "solve": _solve_kind(m),
        "grid_points": m.get("grid_points"),
        "refined": None if refined is None else refined.get("objective"),
        "method": prov.get("method"),
    }


def table_report(table, domain: tuple[float, float] | None = None) -> dict:
    """The full report: ``error_report``'s numbers, the sign and tails checks, the numbers by
    interval and the provenance."""
    lo, hi = domain if domain is not None else table_domain(table)
    arrays = error_arrays(table, (lo, hi))
    rep = report_of_arrays(table, arrays, (lo, hi))
    rep["sign_check"] = sign_check(arrays)
    rep["tails_check"] = tails_check(table, arrays)
    rep["by_interval"] = by_interval(table, arrays)
    rep["provenance"] = provenance(table)
    return rep
