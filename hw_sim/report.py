"""Bit-accurate error of a table: the simulated unit against the correctly rounded result.

Definitions (used by ``nli table report``, the refinement and the benchmarks):

* inputs: every finite FP16 value of the table's domain (``meta['domain']``,
  else the function's legal FP16 domain), -0 excluded, as from ``nli.fp16_grid``;
* reference: ``RNE16(f(x))`` with f the float64 reference of ``nli.functions``
  (libm accuracy: a value within ~1e-16 relative of an FP16 rounding midpoint
  could be misjudged; for reciprocal and rsqrt this provably cannot happen);
* ulp distance: ``|ord(a) - ord(b)|`` on the ordered FP16 encodings, where ord
  counts representable values from +0 (ord(-0) = ord(+0) = 0, ord(+inf) =
  0x7c00, ord(-inf) = -0x7c00): 1 ulp = one FP16 value apart, an overflow to
  inf next to 65504 is 1 ulp. A NaN on either side is counted in ``nan_mismatch``
  (0 ulp when both are NaN) and left out of the ulp statistics;
* relative error: ``|y - f(x)| / max(|f(x)|, 2^-14)`` (the paper's weighting;
  infinite when y overflows where f(x) is finite);
* correctly rounded: ``ord(y) == ord(RNE16(f(x)))`` (so -0 and +0 agree);
* absolute error ``|y - f(x)|`` (max and RMS) and RMS relative error, over the inputs
  without a NaN.
"""

from __future__ import annotations

import numpy as np

from nli.formats import FP16_NAN, INVERSE_FUNCTIONS
from nli.functions import get_function
from nli.grid import f16_bits_to_f64, fp16_grid, parse_f16_hex

from .unit import run_elementwise

REL_FLOOR = 2.0**-14


def ordered(bits) -> np.ndarray:
    """FP16 bits (any shape) -> int32 position on the number line (-0 and +0 -> 0)."""
    b = np.asarray(bits, dtype=np.uint16).astype(np.int32)
    mag = b & 0x7FFF
    return np.where(b & 0x8000, -mag, mag)


def ulp_distance(a, b) -> np.ndarray:
    """|ord(a) - ord(b)| for FP16 bit patterns (NaNs give meaningless values: mask them)."""
    return np.abs(ordered(a) - ordered(b))


def is_nan_bits(bits) -> np.ndarray:
    b = np.asarray(bits, dtype=np.uint16)
    return (b & 0x7FFF) > 0x7C00


def table_domain(table) -> tuple[float, float]:
    """(lo, hi) of the table's domain: meta['domain'] (FP16 hex pair), else the function's."""
    d = table.meta.get("domain")
    if isinstance(d, (list, tuple)) and len(d) == 2:
        try:
            lo, hi = (float(f16_bits_to_f64(parse_f16_hex(v, "domain"))) for v in d)
            return lo, hi
        except (ValueError, TypeError):
            pass
    return get_function(table.function).default_domain


def reference_bits(function: str, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(f(x) float64, RNE16(f(x)) uint16 bits) for float64 inputs x (any shape)."""
    fx = get_function(function)(x)
    with np.errstate(over="ignore", invalid="ignore"):
        ref = fx.astype(np.float16).view(np.uint16)
    return fx, np.where(np.isnan(fx), np.uint16(FP16_NAN), ref).astype(np.uint16)


def error_arrays(table, domain: tuple[float, float] | None = None) -> dict:
    """Per-input arrays over the domain grid: x (float64[N]), bits, y (uint16 output bits),
    ref (uint16 RNE16(f(x))), fx (float64), ulp (int32, -1 where a NaN is involved),
    rel (float64 relative error)."""
    lo, hi = domain if domain is not None else table_domain(table)
    x, bits = fp16_grid(lo, hi)
    y = run_elementwise(table, bits).view(np.uint16)
    fx, ref = reference_bits(table.function, x)
    nan = is_nan_bits(y) | is_nan_bits(ref)
    ulp = np.where(nan, -1, ulp_distance(y, ref)).astype(np.int32)
    yv = f16_bits_to_f64(y)
    with np.errstate(invalid="ignore", over="ignore"):
        rel = np.abs(yv - fx) / np.maximum(np.abs(fx), REL_FLOOR)
    rel = np.where(nan, np.nan, rel)
    return {"x": x, "bits": bits, "y": y, "ref": ref, "fx": fx, "ulp": ulp, "rel": rel}


def _abs_errors(arrays: dict, ok: np.ndarray) -> dict:
    """max and RMS of |y - f(x)|, and RMS relative error, over the inputs without a NaN."""
    if not ok.any():
        return {"max_abs_error": None, "rms_abs_error": None, "rms_rel_error": None}
    with np.errstate(invalid="ignore", over="ignore"):
        err = np.abs(f16_bits_to_f64(arrays["y"][ok]) - arrays["fx"][ok])
        rel = arrays["rel"][ok]
        return {
            "max_abs_error": float(err.max()),
            "rms_abs_error": float(np.sqrt(np.mean(err * err))),
            "rms_rel_error": float(np.sqrt(np.mean(rel * rel))),
        }


def summarize(arrays: dict) -> dict:
    """The report numbers of :func:`error_arrays`' output."""
    ulp, rel, y, ref = arrays["ulp"], arrays["rel"], arrays["y"], arrays["ref"]
    ok = ulp >= 0
    n = int(ulp.size)
    both_nan = is_nan_bits(y) & is_nan_bits(ref)
    worst = int(np.argmax(np.where(ok, ulp, -1))) if ok.any() else None
    hist = np.bincount(np.minimum(ulp[ok], 16), minlength=17)
    return {
        "inputs": n,
        "max_ulp": int(ulp[ok].max()) if ok.any() else None,
        "mean_ulp": float(ulp[ok].mean()) if ok.any() else None,
        "pct_correctly_rounded": 100.0
        * float(np.count_nonzero(ok & (ulp == 0)) + np.count_nonzero(both_nan))
        / n,
        "max_rel_error": float(np.nanmax(rel)) if ok.any() else None,
        "mean_rel_error": float(np.nanmean(rel)) if ok.any() else None,
        **(_abs_errors(arrays, ok) if "fx" in arrays else {}),
        "nan_mismatch": int(np.count_nonzero(~ok & ~both_nan)),
        "worst_input": None
        if worst is None
        else {
            "x": float(arrays["x"][worst]),
            "bits": f"{int(arrays['bits'][worst]):04x}",
            "output": f"{int(y[worst]):04x}",
            "correctly_rounded": f"{int(ref[worst]):04x}",
        },
        "ulp_histogram": {("16+" if k == 16 else str(k)): int(v) for k, v in enumerate(hist) if v},
    }


def error_report(table, domain: tuple[float, float] | None = None) -> dict:
    """Bit-accurate error of ``table`` over every finite FP16 input of its domain
    (see the module docstring for every definition). Pure: returns a dict."""
    lo, hi = domain if domain is not None else table_domain(table)
    rep = summarize(error_arrays(table, (lo, hi)))
    rep.update(
        {
            "function": table.function,
            "precision": table.precision,
            "domain": [lo, hi],
            "comparators": table.K,
            "lut_entries": table.entries,
            "reference": "RNE16 of the float64 reference f(x)",
            "rel_floor": REL_FLOOR,
        }
    )
    return rep


# ------------------------------------------------------------------------- composite 1/v, 1/sqrt(v)
def _fp32_inputs(exponents, stride: int) -> np.ndarray:
    """Positive FP32 values m * 2^k: every stride-th mantissa for each biased exponent."""
    mant = np.arange(0, 1 << 23, stride, dtype=np.uint32)
    return np.concatenate([((np.uint32(e) << 23) | mant) for e in exponents]).view(np.float32)


def composite_inverse_report(table, kind: str, mode: str, exponents=None, stride: int = 1) -> dict:
    """Error of the section-5 reciprocal (kind 'reciprocal') or rsqrt of FP32 inputs v
    against RNE16(1/v) or RNE16(1/sqrt(v)), over positive FP32 v with the given biased
    exponents (default: the one or two binades that use the whole table), every
    ``stride``-th mantissa. The float64 reference is provably correctly rounded here:
    1/v (1/sqrt(v)) lies at least 2^-36 (2^-49) relative from any FP16 midpoint."""
    from .ops import reciprocal, rsqrt

    if kind not in INVERSE_FUNCTIONS:
        raise ValueError(f"kind: must be reciprocal or rsqrt, got {kind!r}")
    if exponents is None:
        exponents = [127] if kind == "reciprocal" else [127, 128]
    v = _fp32_inputs(exponents, stride)
    y = (reciprocal if kind == "reciprocal" else rsqrt)(v, table, mode).view(np.uint16)
    vd = v.astype(np.float64)
    fx = 1.0 / vd if kind == "reciprocal" else 1.0 / np.sqrt(vd)
    with np.errstate(over="ignore"):
        ref = fx.astype(np.float16).view(np.uint16)
    nan = is_nan_bits(y)
    ulp = np.where(nan, -1, ulp_distance(y, ref)).astype(np.int32)
    yv = f16_bits_to_f64(y)
    with np.errstate(invalid="ignore", over="ignore"):
        rel = np.where(nan, np.nan, np.abs(yv - fx) / np.maximum(np.abs(fx), REL_FLOOR))
    rep = summarize(
        {
            "x": vd,
            "bits": v.view(np.uint32).astype(np.uint16),
            "y": y,
            "ref": ref,
            "ulp": ulp,
            "rel": rel,
        }
    )
    rep.pop("worst_input")
    worst = int(np.argmax(ulp))
    rep.update(
        {
            "kind": kind,
            "mode": mode,
            "fp32_biased_exponents": [int(e) for e in exponents],
            "mantissa_stride": stride,
            "worst_v": float(vd[worst]),
            "at_most_1_ulp": bool(
                rep["max_ulp"] is not None and rep["max_ulp"] <= 1 and rep["nan_mismatch"] == 0
            ),
        }
    )
    return rep
