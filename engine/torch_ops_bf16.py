"""The BF16 unit's ops in pure torch (numerics §13): the elementwise datapath on BF16 tensors,
Softmax, RMSNorm and the reciprocal / rsqrt modes.

Bit-exact to :mod:`hw_sim.ops_bf16` (and :func:`hw_sim.run_elementwise` of a bf16 table) on any
device that keeps FP32 subnormals, built on :mod:`engine.torch_unit` (its bf16 datapath, the
integer :func:`~engine.torch_unit.rne_bf16` and the shift :func:`~engine.torch_unit.decode_bf16`)
and :mod:`engine.torch_ops` (the sequential FP32 row sums, the table checks). BF16 tensors come
in as ``torch.bfloat16`` or as their bit patterns (``int16`` / ``uint16``) and go out in the same
kind; float32 entry points round ``RNE_bf16`` at the op boundary and return the BF16 results
as float32 (exact). Each step's exactness is hw_sim/ops_bf16.py's argument; what changes here:

* **Every rounding to BF16** is :func:`~engine.torch_unit.rne_bf16` of a float32 result:
  ``d_i``, ``e_i * r``, ``x_i * r``, ``h_i * w_i`` are float32 ops (one RNE32 each, gradual
  underflow) then the integer RNE_bf16, as hw_sim's ``rne_bf16_f32``.
* **RMSNorm's v** ``RNE32(RNE32(q * RNE32(1/n)) + eps)`` is one float32 multiply and one
  float32 add: IEEE float32 operations are RNE32 of the exact result, FP32 subnormals
  included, which is what hw_sim forms in float64 with its integer ``rne32_f64``. (BF16 squares
  reach FP32 subnormals, unlike FP16's, so no case is special.)
* **Reduced-mode scaling** ``RNE_bf16(y 2^-e)`` for a BF16 table value y and e in [-149, 127]:
  ``s = -e`` is split as ``s1 = trunc(s / 2)``, ``s2 = s - s1`` (2^s1, 2^s2 normal FP32 built
  from bits) and y is multiplied by each in turn, as engine/onnx_bf16.py's ``scale``: the
  first product is exact unless it overflows (then so does the exact result) or loses bits
  below 2^-149 (then the exact result lies below 2^-141, and both round to a zero of y's
  sign); the second is RNE32 of a value of 8 significant bits, exact down to 2^-142.

Softmax and RMSNorm take one dtype: bf16 tables only (an fp16 one is an error naming both, as
hw_sim's); the fp16 ops are :mod:`engine.torch_ops`.
"""

from __future__ import annotations

import torch

from nli.formats import BF16_NAN, BF16_NEG_INF, BF16_POS_INF
from nli.table import Table
from nli.unit_checks import SimInputError, check_dtypes, check_eps, check_mode

from .torch_ops import _check_fits, _exp_lut, _inv, _rows, row_sums, split_reduced
from .torch_unit import bits32, check_f32, decode_bf16, f32, lookup, output_bits, output_values
from .torch_unit import rne_bf16 as round_bf16
from .torch_unit import select as select32

BITS_DTYPES = (torch.int16, torch.uint16)  # BF16 bit patterns
_SCALE_CLAMP = (-149, 149)  # e of a finite non-zero v; 2^s1, 2^s2 stay FP32 normals


# ----------------------------------------------------------------------------- BF16 tensors
def bf16_in(x, name: str = "x") -> torch.Tensor:
    """A BF16 tensor (``torch.bfloat16``, or bit patterns as ``int16`` / ``uint16``) -> int32
    bit patterns in [0, 65535], same shape and device."""
    if not isinstance(x, torch.Tensor) or x.dtype not in (torch.bfloat16, *BITS_DTYPES):
        got = x.dtype if isinstance(x, torch.Tensor) else type(x).__name__
        raise SimInputError(
            f"{name}: expected a torch.bfloat16 tensor or int16 / uint16 BF16 bit patterns, "
            f"got {got}"
        )
    if x.dtype == torch.bfloat16:
        x = x.contiguous().view(torch.int16)
    return x.to(torch.int32) & 0xFFFF


def bf16_out(bits: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """int32 BF16 bit patterns in [0, 65535] -> a tensor of ``dtype`` (bfloat16, or the bit
    patterns as int16 / uint16)."""
    if dtype == torch.uint16:
        return bits.to(torch.uint16)
    b16 = (bits - ((bits & 0x8000) << 1)).to(torch.int16)  # the same 16 bits, as int16
    return b16.view(torch.bfloat16) if dtype == torch.bfloat16 else b16


def grid_bf16(x: torch.Tensor) -> torch.Tensor:
    """RNE_bf16(x) as the float32 value it is (exact; a NaN as 0x7fc00000)."""
    return decode_bf16(round_bf16(x))


def run_elementwise_bf16(table: Table, x) -> torch.Tensor:
    """The elementwise datapath (numerics §13) of a bf16 ``table`` on every element of the BF16
    tensor ``x`` (bfloat16 or int16 / uint16 bit patterns, any shape, any device) -> the BF16
    outputs in x's kind and shape. Bit-identical to :func:`hw_sim.run_elementwise`."""
    if not isinstance(table, Table):
        raise SimInputError(f"table: expected an nli Table, got {type(table).__name__}")
    check_dtypes("elementwise", "bf16", table=table)
    b = bf16_in(x)
    return bf16_out(lookup(output_bits(table, b.device), b), x.dtype)


# ----------------------------------------------------------------------------- section 5
def _pow2(s: torch.Tensor) -> torch.Tensor:
    """2^s as float32 (exact) for int32 s in [-126, 127]."""
    return f32((s + 127) << 23)


def inverse_reduced_bf16(v: torch.Tensor, table, rsqrt: bool) -> torch.Tensor:
    """Reduced-mode reciprocal (rsqrt=False) or rsqrt of float32 v (any shape) -> int32 BF16
    bits (NaNs canonical), with the bf16 ``table`` over the reduced domain (§13, §5)."""
    u = bits32(v.contiguous())
    a = u & 0x7FFFFFFF
    m, e = split_reduced(v, rsqrt)
    y = lookup(output_values(table, v.device), round_bf16(m))  # table(RNE_bf16(m))
    s = -torch.clamp(e, *_SCALE_CLAMP)  # 0, inf and NaN (clamped here) are overwritten below
    s1 = torch.div(s, 2, rounding_mode="trunc")  # s1, s2 share s's sign, |s1| <= |s2| <= 75
    r = round_bf16(y * _pow2(s1) * _pow2(s - s1))  # RNE_bf16(y 2^-e), see the docstring
    r = torch.where(a == 0, BF16_POS_INF, r)
    r = torch.where(a == 0x7F800000, 0, r)
    r = r ^ ((u >> 16) & 0x8000)  # odd (and rsqrt(-0) = -inf)
    if rsqrt:
        r = torch.where((u < 0) & (a != 0), BF16_NAN, r)
    nan = (a > 0x7F800000) | ((r & 0x7FFF) > BF16_POS_INF)  # a NaN in, or out of the table
    return torch.where(nan, BF16_NAN, r)


def inverse_bf16(v: torch.Tensor, table, mode: str, rsqrt: bool) -> torch.Tensor:
    """Section 5 (§13) of float32 v in ``mode`` -> float32 BF16 values (exact; NaNs canonical)."""
    if mode == "reduced":
        return decode_bf16(inverse_reduced_bf16(v, table, rsqrt))
    return lookup(output_values(table, v.device), round_bf16(v))  # table(RNE_bf16(v))


def _inverse_public(v, table, mode, function, rsqrt) -> torch.Tensor:
    check_mode(mode)
    _check_fits(table, function, mode)
    check_dtypes(function, "bf16", **{f"{function}_table": table})
    check_f32(v, "v")
    if mode == "reduced":
        bits = inverse_reduced_bf16(v, table, rsqrt)
    else:
        bits = lookup(output_bits(table, v.device), round_bf16(v))
    return bf16_out(bits, torch.bfloat16)


def reciprocal_bf16(v: torch.Tensor, table, mode: str = "direct") -> torch.Tensor:
    """Reciprocal of FP32 values on a bf16 table (numerics §13, §5): float32 tensor of any shape
    -> torch.bfloat16 of the same shape. Bit-identical to :func:`hw_sim.reciprocal_bf16`."""
    return _inverse_public(v, table, mode, "reciprocal", False)


def rsqrt_bf16(v: torch.Tensor, table, mode: str = "direct") -> torch.Tensor:
    """Inverse square root of FP32 values on a bf16 table (numerics §13, §5): float32 tensor of
    any shape -> torch.bfloat16 of the same shape. Bit-identical to :func:`hw_sim.rsqrt_bf16`."""
    return _inverse_public(v, table, mode, "rsqrt", True)


# ----------------------------------------------------------------------------- softmax
def _softmax_bits(xv: torch.Tensor, exp_table, recip_table, mode: str) -> torch.Tensor:
    """Softmax (§13, §4) of rows of BF16 values xv (float32 (R, n)) -> int32 BF16 bits."""
    check_mode(mode)
    _check_fits(exp_table, "exp", mode)
    _check_fits(recip_table, "reciprocal", mode)
    check_dtypes("softmax", "bf16", exp_table=exp_table, reciprocal_table=recip_table)
    m = xv.amax(-1)  # m = max(x); a NaN propagates
    bad = torch.isnan(m) | (m == -torch.inf)  # a NaN in the row, or only -inf
    m = select32(m == 0, torch.zeros_like(m), m)  # a zero maximum is +0 (as hw_sim's)
    d = round_bf16(xv - m[:, None])  # d_i = RNE_bf16(RNE32(x_i - m))
    e = lookup(*_exp_lut(exp_table, xv, d, BF16_NEG_INF))  # exp_table(d_i), +0 at x_i = -inf
    s = row_sums(e)  # sequential FP32 sum
    r = inverse_bf16(s, recip_table, mode, False)
    r = r.masked_fill(bad, torch.nan)  # a bad row: NaN throughout
    return round_bf16(e * r[:, None])  # RNE_bf16(RNE32(e_i * r))


def softmax_bf16(x, exp_table, recip_table, mode: str = "direct") -> torch.Tensor:
    """Softmax over the last axis (numerics §13, §4) of a BF16 tensor x (..., n), n >= 1
    (bfloat16 or int16 / uint16 bit patterns), on x's device, with bf16 ``exp`` and
    ``reciprocal`` tables. Returns x's kind and shape. Bit-identical to
    :func:`hw_sim.softmax_bf16`."""
    b = bf16_in(x)
    rows = _rows(decode_bf16(b))
    return bf16_out(_softmax_bits(rows, exp_table, recip_table, mode).reshape(b.shape), x.dtype)


def softmax_bf16_f32(x: torch.Tensor, exp_table, recip_table, mode: str = "direct"):
    """:func:`softmax_bf16` for float32 activations x (..., n): rounded RNE_bf16 at the op
    boundary; the BF16 results as float32 of x's shape (exact, NaN 0x7fc00000). Bit-identical
    to :func:`hw_sim.softmax_bf16_f32`."""
    rows = grid_bf16(_rows(x))
    return decode_bf16(_softmax_bits(rows, exp_table, recip_table, mode)).reshape(x.shape)


# ----------------------------------------------------------------------------- rmsnorm
def _weight_values(weight, n: int, device) -> torch.Tensor:
    """RMSNorm's weight -> float32 BF16 values [n]: a float32 weight is rounded RNE_bf16 (as
    the model's activations), a BF16 one (bfloat16 or bit patterns) is decoded."""
    if isinstance(weight, torch.Tensor) and weight.dtype == torch.float32:
        wv = grid_bf16(weight)
    else:
        wv = decode_bf16(bf16_in(weight, "weight"))
    if tuple(wv.shape) != (n,):
        raise SimInputError(
            f"weight: shape {tuple(wv.shape)} does not match the row length {n} (need ({n},))"
        )
    if wv.device != device:
        raise SimInputError(f"weight: on {wv.device}, x is on {device}")
    return wv


def _rmsnorm_bits(xv, weight, eps, rsqrt_table, mode: str) -> torch.Tensor:
    """RMSNorm (§13) of rows of BF16 values xv (float32 (R, n)) -> int32 BF16 bits."""
    check_mode(mode)
    _check_fits(rsqrt_table, "rsqrt", mode)
    check_dtypes("rmsnorm", "bf16", rsqrt_table=rsqrt_table)
    eps32 = check_eps(eps)
    n = xv.shape[1]
    wv = _weight_values(weight, n, xv.device)
    dev = xv.device
    q = row_sums(xv * xv)  # RNE32(x_i^2), added in FP32 in index order
    p = q * torch.tensor(_inv(n), dtype=torch.float32, device=dev)  # RNE32(q RNE32(1/n))
    v = p + torch.tensor(float(eps32), dtype=torch.float32, device=dev)  # RNE32(p + eps)
    r = inverse_bf16(v, rsqrt_table, mode, True)
    h = decode_bf16(round_bf16(xv * r[:, None]))  # RNE_bf16(x_i * r)
    return round_bf16(h * wv)  # RNE_bf16(h_i * w_i)


def rmsnorm_bf16(x, weight, eps, rsqrt_table, mode: str = "direct") -> torch.Tensor:
    """RMSNorm over the last axis (numerics §13) of a BF16 tensor x (..., n) (bfloat16 or int16
    / uint16 bit patterns) with BF16 weight (n,) (same kinds, or float32 rounded RNE_bf16), eps
    a finite real (RNE32) and a bf16 ``rsqrt`` table; no prescale. Returns x's kind and shape.
    Bit-identical to :func:`hw_sim.rmsnorm_bf16`."""
    b = bf16_in(x)
    rows = _rows(decode_bf16(b))
    return bf16_out(_rmsnorm_bits(rows, weight, eps, rsqrt_table, mode).reshape(b.shape), x.dtype)


def rmsnorm_bf16_f32(x: torch.Tensor, weight, eps, rsqrt_table, mode: str = "direct"):
    """:func:`rmsnorm_bf16` for float32 activations x (..., n), rounded RNE_bf16 at the op
    boundary (no prescale: BF16 has FP32's exponent range); the BF16 results as float32 of x's
    shape (exact). Bit-identical to :func:`hw_sim.rmsnorm_bf16_f32` given the weight's BF16
    bits (a float32 weight is rounded RNE_bf16, as engine.op_sets does for hw_sim)."""
    rows = grid_bf16(_rows(x))
    return decode_bf16(_rmsnorm_bits(rows, weight, eps, rsqrt_table, mode)).reshape(x.shape)
