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

A bf16 table (numerics §13) is measured the same way with BF16 read for FP16: every finite
BF16 value of its domain, reference ``RNE_bf16(f(x))``, ulp distance on the ordered BF16
encodings (ord(+inf) = 0x7f80), relative error floor 2^-126 (BF16's smallest normal,
``REL_FLOORS``).
"""

from __future__ import annotations

import numpy as np

from nli.formats import DTYPE_FORMATS, DTYPES, FP16_NAN, INVERSE_FUNCTIONS
from nli.functions import get_function
from nli.grid import bits_to_f64, dtype_grid, f16_bits_to_f64, f64_to_bits, parse_f16_hex

from .unit import run_elementwise

REL_FLOOR = 2.0**-14
REL_FLOORS = {d: DTYPE_FORMATS[d].min_normal for d in DTYPES}  # fp16: REL_FLOOR; bf16: 2^-126
_REFERENCE = {"fp16": "RNE16", "bf16": "RNE_bf16"}


def ordered(bits) -> np.ndarray:
    """FP16 bits (any shape) -> int32 position on the number line (-0 and +0 -> 0)."""
    b = np.asarray(bits, dtype=np.uint16).astype(np.int32)
    mag = b & 0x7FFF
    return np.where(b & 0x8000, -mag, mag)


def ulp_distance(a, b) -> np.ndarray:
    """|ord(a) - ord(b)| for FP16 (or BF16) bit patterns (NaNs give meaningless values: mask
    them)."""
    return np.abs(ordered(a) - ordered(b))


def is_nan_bits(bits, dtype: str = "fp16") -> np.ndarray:
    b = np.asarray(bits, dtype=np.uint16)
    return (b & 0x7FFF) > (0x7C00 if dtype == "fp16" else 0x7F80)


def table_domain(table) -> tuple[float, float]:
    """(lo, hi) of the table's domain: meta['domain'] (hex pair of the table's dtype), else the
    function's default domain for that dtype."""
    dtype = getattr(table, "dtype", "fp16")
    d = table.meta.get("domain")
    if isinstance(d, (list, tuple)) and len(d) == 2:
        try:
            lo, hi = (float(bits_to_f64(parse_f16_hex(v, "domain"), dtype)) for v in d)
            return lo, hi
        except (ValueError, TypeError):
            pass
    return get_function(table.function).default_domain_for(dtype)


def reference_bits(
    function: str, x: np.ndarray, dtype: str = "fp16"
) -> tuple[np.ndarray, np.ndarray]:
    """(f(x) float64, RNE16(f(x)) uint16 bits) for float64 inputs x (any shape); RNE_bf16 bits
    (NaN 0x7fc0) for ``dtype='bf16'``."""
    fx = get_function(function)(x)
    if dtype != "fp16":
        return fx, f64_to_bits(fx, dtype)
    with np.errstate(over="ignore", invalid="ignore"):
        ref = fx.astype(np.float16).view(np.uint16)
    return fx, np.where(np.isnan(fx), np.uint16(FP16_NAN), ref).astype(np.uint16)


def error_arrays(table, domain: tuple[float, float] | None = None) -> dict:
    """Per-input arrays over the domain grid: x (float64[N]), bits, y (uint16 output bits),
    ref (uint16 RNE16(f(x)), or RNE_bf16 for a bf16 table), fx (float64), ulp (int32, -1 where
    a NaN is involved), rel (float64 relative error), dtype."""
    dtype = table.dtype
    lo, hi = domain if domain is not None else table_domain(table)
    x, bits = dtype_grid(lo, hi, dtype)
    y = run_elementwise(table, bits).view(np.uint16)
    fx, ref = reference_bits(table.function, x, dtype)
    nan = is_nan_bits(y, dtype) | is_nan_bits(ref, dtype)
    ulp = np.where(nan, -1, ulp_distance(y, ref)).astype(np.int32)
    yv = bits_to_f64(y, dtype)
    with np.errstate(invalid="ignore", over="ignore"):
        rel = np.abs(yv - fx) / np.maximum(np.abs(fx), REL_FLOORS[dtype])
    rel = np.where(nan, np.nan, rel)
    return {
        "x": x,
        "bits": bits,
        "y": y,
        "ref": ref,
        "fx": fx,
        "ulp": ulp,
        "rel": rel,
        "dtype": dtype,
    }


def _abs_errors(arrays: dict, ok: np.ndarray) -> dict:
    """max and RMS of |y - f(x)|, and RMS relative error, over the inputs without a NaN."""
    if not ok.any():
        return {"max_abs_error": None, "rms_abs_error": None, "rms_rel_error": None}
    with np.errstate(invalid="ignore", over="ignore"):
        err = np.abs(bits_to_f64(arrays["y"][ok], arrays.get("dtype", "fp16")) - arrays["fx"][ok])
        rel = arrays["rel"][ok]
        return {
            "max_abs_error": float(err.max()),
            "rms_abs_error": float(np.sqrt(np.mean(err * err))),
            "rms_rel_error": float(np.sqrt(np.mean(rel * rel))),
        }


def correctly_rounded(arrays: dict) -> np.ndarray:
    """bool[N] over :func:`error_arrays`' inputs: the output is RNE16(f(x)) (0 ulp), or both
    are NaN."""
    dtype = arrays.get("dtype", "fp16")
    both_nan = is_nan_bits(arrays["y"], dtype) & is_nan_bits(arrays["ref"], dtype)
    return (arrays["ulp"] == 0) | both_nan


def summarize(arrays: dict) -> dict:
    """The report numbers of :func:`error_arrays`' output."""
    ulp, rel, y, ref = arrays["ulp"], arrays["rel"], arrays["y"], arrays["ref"]
    ok = ulp >= 0
    n = int(ulp.size)
    dtype = arrays.get("dtype", "fp16")
    both_nan = is_nan_bits(y, dtype) & is_nan_bits(ref, dtype)
    worst = int(np.argmax(np.where(ok, ulp, -1))) if ok.any() else None
    hist = np.bincount(np.minimum(ulp[ok], 16), minlength=17)
    return {
        "inputs": n,
        "max_ulp": int(ulp[ok].max()) if ok.any() else None,
        "mean_ulp": float(ulp[ok].mean()) if ok.any() else None,
        "pct_correctly_rounded": 100.0 * float(np.count_nonzero(correctly_rounded(arrays))) / n,
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
    """Bit-accurate error of ``table`` over every finite FP16 (BF16 for a bf16 table) input of
    its domain (see the module docstring for every definition). Pure: returns a dict."""
    domain = domain if domain is not None else table_domain(table)
    return report_of_arrays(table, error_arrays(table, domain), domain)


def report_of_arrays(table, arrays: dict, domain: tuple[float, float]) -> dict:
    """:func:`error_report` from ``arrays = error_arrays(table, domain)`` already computed (a
    caller that also needs the per-input arrays runs the datapath once)."""
    lo, hi = domain
    rep = summarize(arrays)
    rep.update(
        {
            "function": table.function,
            "precision": table.precision,
            "domain": [lo, hi],
            "comparators": table.K,
            "lut_entries": table.entries,
            "reference": f"{_REFERENCE[table.dtype]} of the float64 reference f(x)",
            "rel_floor": REL_FLOORS[table.dtype],
        }
    )
    if table.dtype != "fp16":  # fp16 reports keep their keys (and the docs their numbers)
        rep["dtype"] = table.dtype
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
