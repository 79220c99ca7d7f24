"""Field checks of :class:`nli.table.Table` (numerics §2, §13): integer lists, 16-bit patterns,
and the value rules that depend on the table's ``dtype``.

Every check raises :class:`TableError` naming the field, so an invalid table never exists in
memory and a bad file is rejected with the offending key.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from .formats import DTYPE_FORMATS, DTYPES, FP16_OVERFLOW, FP32
from .grid import bits_to_f64, is_finite_bits, is_nan_bits
from .strict_json import show

FP32_OVERFLOW = FP32.overflow  # (2 - 2^-24) 2^127: RNE32 of |v| >= this is inf
_NEAR_FP32_OVERFLOW = 2.0**126  # below this a float64 difference cannot reach FP32_OVERFLOW


class TableError(ValueError):
    """A table (in memory or in a file) that breaks a rule of numerics §2, 6 or 13."""


def int_list(name: str, values, max_len: int) -> list[int]:
    """A 1-D integer array or sequence -> Python ints (no bool, no float), at most max_len of
    them."""
    if isinstance(values, np.ndarray):
        if values.ndim != 1 or values.dtype.kind not in "iu":
            raise TableError(f"{name}: must be a 1-D array of integers")
        seq = values
    elif isinstance(values, (list, tuple)):
        seq = values
    else:
        raise TableError(f"{name}: must be a list of integers, got {type(values).__name__}")
    if len(seq) > max_len:
        raise TableError(f"{name}: at most {max_len} entries, got {len(seq)}")
    if isinstance(seq, np.ndarray):
        return [int(v) for v in seq.tolist()]
    out = []
    for i, v in enumerate(seq):
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
            raise TableError(f"{name}: every entry must be an integer, {name}[{i}] = {show(v)}")
        out.append(int(v))
    return out


def bit_patterns(name: str, values, max_len: int) -> np.ndarray:
    """A 1-D sequence of 16-bit patterns (integers 0..0xFFFF) -> read-write uint16 array."""
    if isinstance(values, np.ndarray) and values.dtype == np.uint16:
        if values.ndim != 1 or values.size > max_len:
            raise TableError(f"{name}: must be a 1-D array of at most {max_len} bit patterns")
        return values.astype(np.uint16)  # a copy
    ints = int_list(name, values, max_len)
    for i, v in enumerate(ints):
        if not 0 <= v <= 0xFFFF:
            raise TableError(f"{name}: not a 16-bit pattern: {name}[{i}] = {v}")
    return np.array(ints, dtype=np.uint16)


def check_dtype(dtype, precision) -> None:
    """dtype is in DTYPES; a bf16 table has precision fp32 (numerics §13)."""
    if not isinstance(dtype, str) or dtype not in DTYPES:
        raise TableError(f"dtype: must be one of {', '.join(DTYPES)}, got {show(dtype)}")
    if dtype == "bf16" and precision != "fp32":
        raise TableError(
            f"precision: a bf16 table must have precision 'fp32', got {show(precision)}"
        )


def _exact_widths_reach(hi: np.ndarray, lo: np.ndarray, limit: float) -> np.ndarray:
    """bool mask: |hi - lo| >= limit for the exact difference of float64 values. The float64
    difference is the exact one rounded once (monotone), so only those at or above 2^126
    (far below the limits used here) are decided in exact arithmetic."""
    d = np.abs(hi - lo)
    out = d >= limit
    for i in np.flatnonzero(d >= min(limit, _NEAR_FP32_OVERFLOW)):
        out[i] = abs(Fraction(float(hi[i])) - Fraction(float(lo[i]))) >= Fraction(limit)
    return out


def check_cutpoints(c: np.ndarray, dtype: str) -> np.ndarray:
    """Finite, strictly increasing cutpoints of ``dtype``; for bf16 every macro interval
    narrower than FP32's overflow threshold. Returns their float64 values."""
    if not np.all(is_finite_bits(c, dtype)):
        raise TableError("cutpoints: every cutpoint must be finite")
    cv = bits_to_f64(c, dtype)
    if not np.all(np.diff(cv) > 0):
        raise TableError("cutpoints: must be strictly increasing")
    if dtype == "bf16" and np.any(_exact_widths_reach(cv[1:], cv[:-1], FP32_OVERFLOW)):
        raise TableError(
            "cutpoints: a macro interval c[I+1] - c[I] reaches FP32's overflow threshold"
        )
    return cv


def check_mul(mul: np.ndarray) -> None:
    """Every mul[I] is finite: RNE32(bins/(c[I+1] - c[I])) overflows only for a bf16 interval
    narrower than about bins * 2^-128, which steps 5 and 6 cannot index (u = 0 * inf)."""
    bad = np.flatnonzero(~np.isfinite(mul))
    if bad.size:
        raise TableError(
            f"mul: RNE32(bins[I] / (c[I+1] - c[I])) overflows FP32 for I = {int(bad[0])} "
            f"(the macro interval is too narrow for its bins)"
        )


def check_lut(lut: np.ndarray, dtype: str) -> None:
    """Finite entries whose neighbouring differences stay below the overflow threshold of the
    step 8 register: FP16's (65520, numerics §2) or FP32's (bf16, numerics §13)."""
    if not np.all(is_finite_bits(lut, dtype)):
        raise TableError("lut: every entry must be finite")
    lv = bits_to_f64(lut, dtype)
    if dtype == "fp16":
        if np.any(np.abs(np.diff(lv)) >= FP16_OVERFLOW):  # RNE16 of the exact difference is inf
            raise TableError("lut: a neighbouring difference lut[g+1] - lut[g] overflows FP16")
    elif np.any(_exact_widths_reach(lv[1:], lv[:-1], FP32_OVERFLOW)):
        raise TableError("lut: a neighbouring difference lut[g+1] - lut[g] overflows FP32")


def check_end_value(name: str, v, dtype: str) -> int:
    """below / above: a 16-bit pattern of ``dtype`` that is not NaN (infinities allowed)."""
    fmt = DTYPE_FORMATS[dtype].name.upper()
    if (
        isinstance(v, (bool, np.bool_))
        or not isinstance(v, (int, np.integer))
        or not 0 <= int(v) <= 0xFFFF
    ):
        raise TableError(f"{name}: not a valid {fmt} bit pattern: {show(v)}")
    v = int(v)
    if is_nan_bits(v, dtype):
        raise TableError(f"{name}: must not be NaN")
    return v
