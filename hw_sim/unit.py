"""The elementwise datapath of the NLI Engine (numerics §3, §13), bit-accurate.

``_unit_fp32`` / ``_unit_fp16`` evaluate one FP16 input exactly as the ten
steps of numerics §3 say; ``_unit_bf16`` one BF16 input of a bf16 table (numerics §13:
the same FP32 steps 1-9, step 10 ``RNE_bf16(RNE32(y0 + p))``, NaN -> 0x7fc0).
Because the unit is a unary function of a 16-bit input, the
public path evaluates it once for all 65,536 encodings (the *output LUT*,
built by the exact kernel and cached per table object) and then gathers;
``method="direct"`` runs the kernel on every element instead. Both are the
same function; the tests compare both against the Fraction oracle.

Project choices numerics 1 left open (stated in numerics §3, mirrored by the oracle):

* ``a = min(floor(u), bins[I] - 1)`` is taken as a float (``floor(-0) = -0``),
  so ``t = u - a`` is +0 whenever ``u`` is a zero; t is never -0.
* The comparisons of step 2/3 are numeric on float values (-0 == +0).
"""

from __future__ import annotations

from dataclasses import dataclass
import functools
import weakref

import numba
from numba import prange
import numpy as np

from nli.formats import BF16_NAN, FP16_NAN
from nli.table import Table

from .fp import (
    bf16_decode_table,
    bf16_to_f32,
    f16_decode_table,
    f16_to_f64,
    fma16_f64,
    rne16_f32,
    rne16_f64,
    rne_bf16_f32,
)
from .inputs import SimInputError, as_bits

PARALLEL_MIN = 1 << 15  # below this many elements a serial loop beats thread start-up


@dataclass(frozen=True, eq=False)
class Prepared:
    """A table unpacked for the kernels. Arrays: cut32/cut64 [K+1], bins/base int64[K],
    mul32 float32[K], mul16 float64[K] (value of RNE16(mul)), lut32/lut64 [entries]."""

    cut32: np.ndarray
    cut64: np.ndarray
    bins: np.ndarray
    base: np.ndarray
    mul32: np.ndarray
    mul16: np.ndarray
    lut32: np.ndarray
    lut64: np.ndarray
    below: int
    above: int
    fp16: bool
    bf16: bool  # a bf16 table (numerics §13): inputs, entries and outputs are BF16
    outputs: np.ndarray  # uint16[65536]: the unit's output for every input encoding
    values: np.ndarray  # float32[65536]: the same outputs as the FP32 values they encode

    def args(self):
        return (
            self.cut32,
            self.cut64,
            self.bins,
            self.base,
            self.mul32,
            self.mul16,
            self.lut32,
            self.lut64,
            np.uint16(self.below),
            np.uint16(self.above),
            self.fp16,
        )


# ----------------------------------------------------------------------------- the kernel
@numba.njit(cache=True, nogil=True)
def _interval(x, cut):
    """Largest I in 0..K-1 with cut[I] <= x, given cut[0] <= x < cut[K]."""
    i = cut.size - 2
    while cut[i] > x:
        i -= 1
    return i


@numba.njit(cache=True, nogil=True)
def _locate_fp32(x, cut32, bins, base, mul32):
    """Steps 3-7, precision fp32, for c_0 <= x < c_K (x float32): (g, t).
    Every float32 operation is one IEEE RNE32 rounding of the exact result
    (fp.py's ground rules; for an fp16 table none can be an FP32 subnormal: dx is a
    multiple of 2^-24 and mul > 2^-17. A bf16 table's dx and mul can be FP32 subnormals,
    which IEEE float32 arithmetic without flush-to-zero rounds the same way: Numba sets no
    FTZ/DAZ, and nothing here runs under fastmath)."""
    i = _interval(x, cut32)
    dx = x - cut32[i]  # 4. RNE32(x - c_I)
    u = dx * mul32[i]  # 5. RNE32(dx * mul[I])
    a = np.floor(u)  # 6. float floor (-0 stays -0)
    top = np.float32(bins[i] - 1)
    if a > top:
        a = top
    t = u - a  #    exact (|t| <= u, a multiple of ulp(u))
    return base[i] + np.int64(a), t  # 7. g


@numba.njit(cache=True, nogil=True)
def _sum_fp32(y0, y1, t):
    """Steps 8, 9 and the FP32 sum of step 10, precision fp32 (float32 operands): the float32
    RNE32(y0 + p) that step 10 rounds to the output format."""
    dy = y1 - y0  # 8. RNE32(y1 - y0)
    p = t * dy  # 9. RNE32(t * dy)
    return y0 + p  # RNE32(y0 + p)


@numba.njit(cache=True, nogil=True)
def _interp_fp32(y0, y1, t):
    """Steps 8-10, precision fp32 (float32 operands) -> FP16 bits. p >= 2^-88 when
    non-zero, so no FP32 subnormal arises."""
    return rne16_f32(_sum_fp32(y0, y1, t))  # 10. RNE16(RNE32(y0 + p))


@numba.njit(cache=True, nogil=True)
def _interp_fp32_bf16(y0, y1, t):
    """Steps 8-10 of a bf16 table (numerics §13; float32 operands holding BF16 values) -> BF16
    bits: RNE_bf16(RNE32(y0 + p)). Here p can be an FP32 subnormal, which IEEE float32
    arithmetic rounds as the steps say (no FTZ/DAZ, no fastmath)."""
    return rne_bf16_f32(_sum_fp32(y0, y1, t))  # 10. RNE_bf16(RNE32(y0 + p))


@numba.njit(cache=True, nogil=True)
def _unit_fp32(xb, cut32, bins, base, mul32, lut32, below, above):
    """Numerics §3, precision fp32, for one FP16 input (bits) -> FP16 bits."""
    x = np.float32(f16_to_f64(xb))
    if x != x:
        return np.uint16(FP16_NAN)  # 1.
    if x < cut32[0]:
        return below  # 2.
    if x >= cut32[cut32.size - 1]:
        return above
    g, t = _locate_fp32(x, cut32, bins, base, mul32)
    return _interp_fp32(lut32[g], lut32[g + 1], t)


@numba.njit(cache=True, nogil=True)
def _unit_bf16(xb, cut32, bins, base, mul32, lut32, below, above):
    """Numerics §13, one BF16 input (bits) of a bf16 table -> BF16 bits. Decoding is exact
    (a BF16 pattern is the top half of an FP32 one); steps 3-9 are the fp32 unit's; step 10
    is RNE_bf16(RNE32(y0 + p)). Intervals and LUT differences below FP32's overflow
    threshold (a table rule) keep steps 4 and 8 finite, finite mul keeps u a number."""
    x = bf16_to_f32(xb)
    if x != x:
        return np.uint16(BF16_NAN)  # 1.
    if x < cut32[0]:
        return below  # 2.
    if x >= cut32[cut32.size - 1]:
        return above
    g, t = _locate_fp32(x, cut32, bins, base, mul32)
    return _interp_fp32_bf16(lut32[g], lut32[g + 1], t)  # 8.-10.


@numba.njit(cache=True, nogil=True)
def _locate_fp16(x, cut64, bins, base, mul16):
    """Steps 3-7, precision fp16, for c_0 <= x < c_K (x float64 holding an FP16
    value): (g, t). FP16 intermediates are held as the float64 they equal; each
    RNE16 is :func:`rne16_f64` of an exact float64 (differences of FP16 values
    have at most 41 significant bits, products of two FP16 values 22)."""
    i = _interval(x, cut64)
    dx = f16_to_f64(rne16_f64(x - cut64[i]))  # RNE16(x - c_I), may overflow to inf
    u = f16_to_f64(rne16_f64(dx * mul16[i]))  # RNE16(dx * RNE16(mul[I]))
    a = np.floor(u)
    top = np.float64(bins[i] - 1)
    if a > top:
        a = top
    t = u - a  # exact (or inf when dx overflowed)
    return base[i] + np.int64(a), t


@numba.njit(cache=True, nogil=True)
def _interp_fp16(y0, y1, t):
    """Steps 8-10, precision fp16 (float64 operands holding FP16 values) -> FP16 bits."""
    dy = f16_to_f64(rne16_f64(y1 - y0))  # RNE16(y1 - y0)
    return fma16_f64(t, dy, y0)  # RNE16(y0 + t * dy), one rounding


@numba.njit(cache=True, nogil=True)
def _unit_fp16(xb, cut64, bins, base, mul16, lut64, below, above):
    """Numerics §3, precision fp16, for one FP16 input (bits) -> FP16 bits."""
    x = f16_to_f64(xb)
    if x != x:
        return np.uint16(FP16_NAN)
    if x < cut64[0]:
        return below
    if x >= cut64[cut64.size - 1]:
        return above
    g, t = _locate_fp16(x, cut64, bins, base, mul16)
    return _interp_fp16(lut64[g], lut64[g + 1], t)


@functools.lru_cache(maxsize=None)
def _direct_kernel(parallel: bool):
    """The exact kernel on every element ``(xs uint16[N], out uint16[N], *Prepared.args())``,
    under ``prange`` when ``parallel`` (chosen at compile time), else on one thread."""

    def kernel(xs, out, cut32, cut64, bins, base, mul32, mul16, lut32, lut64, below, above, fp16):
        if fp16:
            for j in prange(xs.size):
                out[j] = _unit_fp16(xs[j], cut64, bins, base, mul16, lut64, below, above)
        else:
            for j in prange(xs.size):
                out[j] = _unit_fp32(xs[j], cut32, bins, base, mul32, lut32, below, above)

    kernel.__qualname__ = kernel.__name__ = f"_direct_{'par' if parallel else 'ser'}"
    return numba.njit(cache=True, nogil=True, parallel=parallel)(kernel)


@functools.lru_cache(maxsize=None)
def _direct_kernel_bf16(parallel: bool):
    """:func:`_direct_kernel` for a bf16 table (numerics §13): the same arguments
    (``Prepared.args()``; ``fp16`` is False), every element through :func:`_unit_bf16`."""

    def kernel(xs, out, cut32, cut64, bins, base, mul32, mul16, lut32, lut64, below, above, fp16):
        for j in prange(xs.size):
            out[j] = _unit_bf16(xs[j], cut32, bins, base, mul32, lut32, below, above)

    kernel.__qualname__ = kernel.__name__ = f"_direct_bf16_{'par' if parallel else 'ser'}"
    return numba.njit(cache=True, nogil=True, parallel=parallel)(kernel)


@functools.lru_cache(maxsize=None)
def _gather_kernel(parallel: bool, f32_in: bool, bf16: bool = False):
    """``(xs[N], lut[65536], out[N])``: out[j] = lut[16-bit pattern of xs[j]], for one variant
    chosen at compile time: ``f32_in`` (xs float32 values, rounded at the op boundary to FP16,
    or to BF16 when ``bf16``, else uint16 bit patterns) and ``parallel`` (chunks under
    ``prange``, else one thread). The output encoding is the LUT's: the output bits (uint16)
    or their values (float32)."""

    def kernel(xs, lut, out):
        n = xs.size
        chunk = 1 << 14
        for c in prange((n + chunk - 1) // chunk):
            hi = min(n, (c + 1) * chunk)
            for j in range(c * chunk, hi):
                if f32_in:
                    if bf16:
                        out[j] = lut[rne_bf16_f32(xs[j])]
                    else:
                        out[j] = lut[rne16_f32(xs[j])]
                else:
                    out[j] = lut[xs[j]]

    kernel.__qualname__ = kernel.__name__ = (
        f"_gather_{'par' if parallel else 'ser'}_{'f32' if f32_in else 'bits'}"
        f"{'_bf16' if bf16 and f32_in else ''}"
    )
    return numba.njit(cache=True, nogil=True, parallel=parallel)(kernel)


# ----------------------------------------------------------------------------- preparation
_PREPARED: "weakref.WeakKeyDictionary[Table, Prepared]" = weakref.WeakKeyDictionary()
_DECODE32 = None
_DECODE32_BF16 = None


def _decode32() -> np.ndarray:
    global _DECODE32
    if _DECODE32 is None:
        _DECODE32 = f16_decode_table(np.float32)
    return _DECODE32


def _decode32_bf16() -> np.ndarray:
    """float32[65536]: every BF16 encoding decoded (read-only)."""
    global _DECODE32_BF16
    if _DECODE32_BF16 is None:
        _DECODE32_BF16 = bf16_decode_table(np.float32)
        _DECODE32_BF16.setflags(write=False)
    return _DECODE32_BF16


def prepare(table: Table) -> Prepared:
    """Unpack ``table`` for the kernels and tabulate its 65,536 outputs (cached per object)."""
    got = _PREPARED.get(table)
    if got is not None:
        return got
    bf16 = table.dtype == "bf16"
    dec = _decode32_bf16() if bf16 else _decode32()
    mul32 = np.ascontiguousarray(table.mul, dtype=np.float32)
    mul16 = np.array([f16_to_f64(rne16_f64(float(m))) for m in mul32], dtype=np.float64)
    lut32 = np.ascontiguousarray(dec[table.lut])
    cut32 = np.ascontiguousarray(dec[table.cutpoints])
    fields = dict(
        cut32=cut32,
        cut64=cut32.astype(np.float64),
        bins=np.ascontiguousarray(table.bins, dtype=np.int64),
        base=np.ascontiguousarray(table.base, dtype=np.int64),
        mul32=mul32,
        mul16=mul16,
        lut32=lut32,
        lut64=lut32.astype(np.float64),
        below=int(table.below),
        above=int(table.above),
        fp16=table.precision == "fp16",
        bf16=bf16,
    )
    outputs = np.empty(1 << 16, dtype=np.uint16)
    values = np.empty(1 << 16, dtype=np.float32)
    proto = Prepared(outputs=outputs, values=values, **fields)
    (_direct_kernel_bf16 if bf16 else _direct_kernel)(True)(
        np.arange(1 << 16, dtype=np.uint32).astype(np.uint16), outputs, *proto.args()
    )
    values[:] = dec[outputs]
    outputs.setflags(write=False)
    values.setflags(write=False)
    _PREPARED[table] = proto
    return proto


def output_lut(table: Table) -> np.ndarray:
    """uint16[65536]: the unit's output bits for every input encoding of the table's dtype
    (FP16 or BF16), read-only."""
    return prepare(table).outputs


def output_values(table: Table) -> np.ndarray:
    """float32[65536]: the unit's outputs for every input encoding, as exact FP32 values."""
    return prepare(table).values


# ----------------------------------------------------------------------------- public
def _bits_for(table: Table, x) -> np.ndarray:
    """x as C-contiguous uint16 patterns of the table's dtype: FP16 tables take float16 or
    uint16, bf16 tables uint16 BF16 patterns only (numpy has no bfloat16, and reading float16
    values as BF16 patterns would be a silent bug)."""
    if table.dtype == "bf16":
        if isinstance(x, np.generic):
            x = np.asarray(x)
        if not isinstance(x, np.ndarray) or x.dtype != np.uint16:
            got = x.dtype if isinstance(x, np.ndarray) else type(x).__name__
            raise SimInputError(
                f"x: a bf16 table takes a uint16 array of BF16 bit patterns, got {got}"
            )
    return as_bits(x)


def run_elementwise(table: Table, x, method: str = "lut") -> np.ndarray:
    """Run the elementwise datapath (numerics §3; §13 for a bf16 table) of ``table`` on every
    element of ``x``.

    x: for an fp16 table float16 or uint16 (FP16 bit patterns), for a bf16 table uint16 (BF16
    bit patterns); any shape; a C-contiguous input is not copied. Returns float16 of x's shape
    (fp16 table) or uint16 BF16 bit patterns (bf16 table). ``method``: ``"lut"`` (gather from
    the 65,536-entry output table computed by the exact kernel) or ``"direct"`` (the exact
    kernel per element); both give identical bits.
    """
    if not isinstance(table, Table):
        raise TypeError(f"table: expected an nli Table, got {type(table).__name__}")
    bits = _bits_for(table, x)
    flat = bits.reshape(-1)  # x.shape -> (N,)
    out = np.empty(flat.size, dtype=np.uint16)
    prep = prepare(table)
    if method == "lut":
        _gather_kernel(flat.size >= PARALLEL_MIN, False)(flat, prep.outputs, out)
    elif method == "direct":
        direct = _direct_kernel_bf16 if prep.bf16 else _direct_kernel
        direct(flat.size >= PARALLEL_MIN)(flat, out, *prep.args())
    else:
        raise ValueError(f"method: must be 'lut' or 'direct', got {method!r}")
    if prep.bf16:
        return out.reshape(bits.shape)  # (N,) -> x.shape, BF16 bits
    return out.view(np.float16).reshape(bits.shape)  # (N,) -> x.shape


def run_elementwise_f32(table: Table, x) -> np.ndarray:
    """:func:`run_elementwise` for float32 model activations: every element of x (float32, any
    shape) is rounded to the table's dtype (RNE16 or RNE_bf16, overflow to +-inf, NaN stays
    NaN) at the op boundary, exactly as the unit receives it; returns float32 of x's shape
    holding the 16-bit outputs (exact). Same bits as ``run_elementwise`` on the rounded x,
    in one pass."""
    if not isinstance(table, Table):
        raise TypeError(f"table: expected an nli Table, got {type(table).__name__}")
    if not isinstance(x, np.ndarray) or x.dtype != np.float32:
        got = x.dtype if isinstance(x, np.ndarray) else type(x).__name__
        raise SimInputError(f"x: expected a float32 numpy array, got {got}")
    flat = np.ascontiguousarray(x).reshape(-1)  # x.shape -> (N,)
    out = np.empty(flat.size, dtype=np.float32)
    prep = prepare(table)
    _gather_kernel(flat.size >= PARALLEL_MIN, True, prep.bf16)(flat, prep.values, out)
    return out.reshape(x.shape)  # (N,) -> x.shape


# numba cache stamp: b5e4bd5dc2597b56 (nli/kernel_stamps.py)
