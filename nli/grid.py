"""The FP16 grid of a domain, and the FP16/FP32 bit helpers every package shares.

Everything here is exact: FP16 and FP32 values are held as bit patterns
(``uint16`` / ``uint32``) or as the float64 they equal exactly, and every
rounding from an exact rational goes through :func:`round_fraction`, which
rounds once (round-to-nearest-even, subnormals kept, overflow to infinity).
"""

from __future__ import annotations

from fractions import Fraction
import math
import re

import numpy as np

from .formats import BF16_MAX, BF16_NAN, BF16_OVERFLOW, DTYPES, FP16_MAX
from .strict_json import show


class DomainError(ValueError):
    """A domain that is empty, reversed, non-finite or outside its format (FP16 or BF16)."""


# ----------------------------------------------------------------------------- bits <-> values
def f16_bits_to_f64(bits) -> np.ndarray:
    """uint16 bit patterns (any shape) -> the float64 values they encode exactly."""
    return np.asarray(bits, dtype=np.uint16).view(np.float16).astype(np.float64)


def f64_to_f16_bits(values) -> np.ndarray:
    """float64 (any shape) -> uint16 bits of RNE16(value); numpy rounds double->half once."""
    return np.asarray(values, dtype=np.float64).astype(np.float16).view(np.uint16)


def f32_bits_to_f64(bits) -> np.ndarray:
    """uint32 bit patterns (any shape) -> float64 values (exact)."""
    return np.asarray(bits, dtype=np.uint32).view(np.float32).astype(np.float64)


def bf16_bits_to_f64(bits) -> np.ndarray:
    """uint16 BF16 bit patterns (any shape) -> the float64 values they encode exactly (a BF16
    pattern is the top half of the FP32 pattern of the same value)."""
    b32 = np.asarray(bits, dtype=np.uint16).astype(np.uint32) << np.uint32(16)
    with np.errstate(invalid="ignore"):  # signalling NaN patterns stay NaN
        return b32.view(np.float32).astype(np.float64)


def f32_to_bf16_bits(values) -> np.ndarray:
    """float32 (any shape) -> uint16 bits of RNE_bf16(value), NaN -> 0x7fc0 (numerics §13).

    Integer rounding on the FP32 pattern: adding 0x7fff plus the kept part's lowest bit and
    dropping the low 16 bits rounds to nearest, ties to even; a carry out of the fraction
    bumps the exponent, which is the correct result (up to +-inf, 0x7f80)."""
    b = np.asarray(values, dtype=np.float32).view(np.uint32).astype(np.uint64)
    r = ((b + np.uint64(0x7FFF) + ((b >> np.uint64(16)) & np.uint64(1))) >> np.uint64(16)).astype(
        np.uint16
    )
    nan = (b & np.uint64(0x7FFFFFFF)) > np.uint64(0x7F800000)
    return np.where(nan, np.uint16(BF16_NAN), r)


def f64_to_bf16_bits(values) -> np.ndarray:
    """float64 (any shape) -> uint16 bits of RNE_bf16(value), rounded once; NaN -> 0x7fc0.

    float64 -> float32 -> bf16 would round twice (numerics §13's innocuous double rounding
    covers results of one operation on BF16 operands, not arbitrary doubles). Instead the
    value is rounded at BF16's quantum 2^(max(E, -126) - 7) by ``np.rint`` (ties to even) on
    an exact power-of-two scaling, which is then exact in float32."""
    v = np.asarray(values, dtype=np.float64)
    a = np.abs(v)
    finite = np.isfinite(v) & (a > 0)
    # doubles beyond FP32's range overflow to inf on the way (2^(E+1), the rounded value, the
    # float32 cast); every such value is >= BF16_OVERFLOW and ends as +-inf below
    with np.errstate(over="ignore"):
        e = np.where(finite, np.floor(np.log2(np.where(finite, a, 1.0))), 0.0)
        # log2 can be off by one next to a power of two: fix E so that 2^E <= a < 2^(E+1)
        e = np.where(finite & (np.exp2(e) > a), e - 1, e)
        e = np.where(finite & (np.exp2(e + 1) <= a), e + 1, e)
        q = np.exp2(np.maximum(e, -126.0) - 7.0)
        r = np.where(finite, np.rint(v / q) * q, v)
        r = np.where(np.abs(r) >= 2.0**128, np.copysign(np.inf, v), r)  # carried past BF16's max
        r = np.where(finite & (a >= BF16_OVERFLOW), np.copysign(np.inf, v), r)
        return f32_to_bf16_bits(r.astype(np.float32))  # exact: r is a BF16 value (or +-inf/NaN)


def is_nan_bf16(bits) -> np.ndarray:
    b = np.asarray(bits, dtype=np.uint16)
    return ((b & 0x7F80) == 0x7F80) & ((b & 0x007F) != 0)


def is_finite_bf16(bits) -> np.ndarray:
    return (np.asarray(bits, dtype=np.uint16) & 0x7F80) != 0x7F80


def f16_hex(bits: int) -> str:
    """One FP16 bit pattern -> 4-digit lowercase hex, as in numerics §6."""
    return f"{int(bits) & 0xFFFF:04x}"


def f32_hex(value) -> str:
    """One FP32 value (np.float32 or float already representable) -> 8-digit lowercase hex."""
    return f"{int(np.float32(value).view(np.uint32)):08x}"


_HEX4 = re.compile(r"[0-9A-Fa-f]{4}")
_HEX8 = re.compile(r"[0-9A-Fa-f]{8}")


def parse_f16_hex(text: str, field: str = "value") -> int:
    """'3c00' -> 0x3c00: exactly 4 ASCII hex digits (what :func:`f16_hex` writes; either
    case), nothing else (no 0x, sign, space, '_' or non-ASCII digits), with an error naming
    ``field``."""
    if not isinstance(text, str) or _HEX4.fullmatch(text) is None:
        raise ValueError(f"{field}: expected a 4-digit hex FP16 string, got {show(text)}")
    return int(text, 16)


def parse_f32_hex(text: str, field: str = "value") -> np.float32:
    """'3f800000' -> np.float32(1.0): exactly 8 ASCII hex digits, as :func:`parse_f16_hex`."""
    if not isinstance(text, str) or _HEX8.fullmatch(text) is None:
        raise ValueError(f"{field}: expected an 8-digit hex FP32 string, got {show(text)}")
    return np.uint32(int(text, 16)).view(np.float32)


def is_nan16(bits) -> np.ndarray:
    b = np.asarray(bits, dtype=np.uint16)
    return ((b & 0x7C00) == 0x7C00) & ((b & 0x03FF) != 0)


def is_finite16(bits) -> np.ndarray:
    return (np.asarray(bits, dtype=np.uint16) & 0x7C00) != 0x7C00


# ----------------------------------------------------------------------------- exact rounding
def round_fraction(q: Fraction | int | float, mant_bits: int, emin: int, emax: int) -> float:
    """Round the exact rational ``q`` once, to nearest even, into a binary format.

    The format has ``mant_bits`` fraction bits, smallest normal exponent ``emin``
    and largest exponent ``emax`` (FP16: 10, -14, 15; FP32: 23, -126, 127).
    Subnormals are kept; overflow gives +-inf. Returns a Python float (exact).
    """
    q = Fraction(q)
    if q == 0:
        return 0.0
    sign = -1.0 if q < 0 else 1.0
    a = abs(q)
    # exponent e with 2^e <= a < 2^(e+1)
    e = a.numerator.bit_length() - a.denominator.bit_length()
    if Fraction(2) ** e > a:
        e -= 1
    e = max(e, emin)  # subnormal range shares the quantum of emin
    quantum = Fraction(2) ** (e - mant_bits)
    n, rem = divmod(a, quantum)  # n integer, rem in [0, quantum)
    n = int(n)
    if rem * 2 > quantum or (rem * 2 == quantum and n % 2 == 1):
        n += 1
    value = n * quantum
    if value >= Fraction(2) ** (emax + 1):
        return sign * math.inf
    return sign * float(value)


def rne16(q) -> float:
    """RNE16 of an exact rational (or float), as a float64 holding the FP16 value."""
    return round_fraction(q, 10, -14, 15)


def rne_bf16(q) -> float:
    """RNE_bf16 of an exact rational (or float), as a float64 holding the BF16 value."""
    return round_fraction(q, 7, -126, 127)


def rne32(q) -> float:
    """RNE32 of an exact rational (or float), as a float64 holding the FP32 value."""
    return round_fraction(q, 23, -126, 127)


# ----------------------------------------------------------------------------- the grid
def all_finite_f16_bits() -> np.ndarray:
    """Every finite FP16 bit pattern except -0, sorted by value: uint16[63487]."""
    return _all_finite_bits("fp16")


def all_finite_bf16_bits() -> np.ndarray:
    """Every finite BF16 bit pattern except -0, sorted by value: uint16[65279]."""
    return _all_finite_bits("bf16")


def _all_finite_bits(dtype: str) -> np.ndarray:
    bits = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)
    bits = bits[is_finite_bits(bits, dtype) & (bits != 0x8000)]
    return bits[np.argsort(bits_to_f64(bits, dtype), kind="stable")]


_ALL: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # dtype -> (values, bits), every finite


def fp16_grid(lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
    """Every finite FP16 value in ``[lo, hi]``, ascending, -0 excluded.

    Returns ``(x, bits)``: float64[N] values and their uint16[N] patterns.
    Raises :class:`DomainError` for an empty, reversed or non-FP16 domain.
    """
    return dtype_grid(lo, hi, "fp16")


def bf16_grid(lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
    """Every finite BF16 value in ``[lo, hi]``, ascending, -0 excluded (numerics §13).

    Returns ``(x, bits)``: float64[N] values and their uint16[N] BF16 patterns.
    Raises :class:`DomainError` for an empty, reversed or non-BF16 domain.
    """
    return dtype_grid(lo, hi, "bf16")


# ----------------------------------------------------------------------------- per dtype
# One name per operation for a table's 16-bit format (``dtype``, numerics §13), so callers
# that handle both formats do not branch on it themselves.
def _check_dtype(dtype: str) -> str:
    if dtype not in DTYPES:
        raise ValueError(f"dtype: must be one of {', '.join(DTYPES)}, got {show(dtype)}")
    return dtype


def bits_to_f64(bits, dtype: str) -> np.ndarray:
    """16-bit patterns of ``dtype`` (any shape) -> the float64 values they encode exactly."""
    return f16_bits_to_f64(bits) if _check_dtype(dtype) == "fp16" else bf16_bits_to_f64(bits)


def f64_to_bits(values, dtype: str) -> np.ndarray:
    """float64 (any shape) -> uint16 patterns of the value rounded once (RNE) to ``dtype``."""
    return f64_to_f16_bits(values) if _check_dtype(dtype) == "fp16" else f64_to_bf16_bits(values)


def is_nan_bits(bits, dtype: str) -> np.ndarray:
    return is_nan16(bits) if _check_dtype(dtype) == "fp16" else is_nan_bf16(bits)


def is_finite_bits(bits, dtype: str) -> np.ndarray:
    return is_finite16(bits) if _check_dtype(dtype) == "fp16" else is_finite_bf16(bits)


def rne_dtype(q, dtype: str) -> float:
    """RNE16 or RNE_bf16 of an exact rational (or float), as a float64."""
    return rne16(q) if _check_dtype(dtype) == "fp16" else rne_bf16(q)


def dtype_grid(lo: float, hi: float, dtype: str) -> tuple[np.ndarray, np.ndarray]:
    """Every finite value of ``dtype`` (FP16 or BF16) in ``[lo, hi]``, ascending, -0 excluded:
    ``(x, bits)``, float64[N] values and their uint16[N] patterns. Raises
    :class:`DomainError` for an empty, reversed or out-of-format domain."""
    name, fmax = ("FP16", FP16_MAX) if _check_dtype(dtype) == "fp16" else ("BF16", BF16_MAX)
    lo, hi = float(lo), float(hi)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise DomainError(f"domain [{lo}, {hi}] is not finite")
    if lo < -fmax or hi > fmax:
        raise DomainError(f"domain [{lo}, {hi}] lies outside {name} (|x| <= {fmax:g})")
    if lo > hi:
        raise DomainError(f"domain [{lo}, {hi}] is reversed")
    if dtype not in _ALL:
        b = _all_finite_bits(dtype)
        _ALL[dtype] = (bits_to_f64(b, dtype), b)
    x_all, b_all = _ALL[dtype]
    i0 = int(np.searchsorted(x_all, lo, side="left"))
    i1 = int(np.searchsorted(x_all, hi, side="right"))
    if i1 <= i0:
        raise DomainError(f"domain [{lo}, {hi}] holds no finite {name} value")
    return x_all[i0:i1].copy(), b_all[i0:i1].copy()
