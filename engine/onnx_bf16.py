"""BF16 in the ONNX graphs (numerics §13 and §8): the format's codec and ``nli.RoundBF16``.

A bf16 table runs the same model-local functions as an fp16 one (:mod:`engine.onnx_ops`),
built with :data:`BF16_CODEC` in place of the FP16 codec and named with the suffix ``BF16``
(``nli.InterpBF16``, ``nli.SoftmaxReducedBF16`` ...). Inputs, outputs and the table's 16-bit
fields are ``bfloat16`` tensors; all arithmetic is FP32, as numerics §13 says.

What onnxruntime does with bfloat16 (measured with onnxruntime 1.32.0, CPU provider, at
``ORT_ENABLE_ALL`` and ``ORT_DISABLE_ALL``):

* **No bf16 arithmetic kernels.** ``Add``, ``Sub``, ``Mul``, ``Div``, ``Min``, ``Max``,
  ``Abs``, ``Neg``, ``Floor``, ``Sqrt``, ``Less``, ``Greater``, ``Equal``, ``Where``,
  ``CumSum``, ``ReduceMax`` and ``ReduceSum`` on bfloat16 fail at session creation
  ("Could not find an implementation"); unlike float16, ORT does not wrap them in float32
  Casts. ``Gather``, ``Identity``, ``IsNaN``, ``IsInf``, ``Cast`` and ``BitCast`` do exist. So
  every bf16 tensor is decoded to FP32 at once and nothing but BitCast touches bfloat16.
* **Decoding by bits.** ``BitCast`` bfloat16 <-> uint16 keeps all 65,536 patterns; the decode
  is ``BitCast(uint16) -> Cast(uint32) -> BitShift(LEFT, 16) -> BitCast(float32)``, exact by
  the ONNX definitions of those operators (ORT's own ``Cast(bfloat16 -> float)`` was also
  measured exact on all 65,536 patterns, NaN payloads included; it is not relied on).
* **Cast float -> bfloat16 keeps a NaN's sign.** It rounds to nearest even (1M random patterns,
  every tie and the overflow midpoint agree with ``nli.grid.f32_to_bf16_bits``), but a negative
  NaN becomes ``0xffc0``, not the canonical ``0x7fc0``. The graph therefore never rounds by
  Cast: ``nli.RoundBF16`` rounds on the FP32 bits (integer ops) and the encode is
  ``BitCast(uint32) -> BitShift(RIGHT, 16) -> Cast(uint16) -> BitCast(bfloat16)`` of a value
  already on the BF16 grid. (A ``float -> bfloat16 -> float`` Cast pair was measured *not*
  removed by the optimizer, unlike float16's; this construction does not depend on it.)
* **Python I/O.** ``InferenceSession.run`` cannot take a numpy array for a bfloat16 input (not
  even an ``ml_dtypes.bfloat16`` one: "Numpy_type 256 can't be converted to MLDataType"), and a
  bfloat16 output's ``OrtValue.numpy()`` fails ("No corresponding Numpy type"). Feed
  ``OrtValue.ortvalue_from_numpy_with_onnx_type(uint16_bits, onnx_element_type=BFLOAT16)`` and
  read outputs through an ``io_binding`` into such an OrtValue (as ``run`` in
  tests/test_onnx_bf16.py does).
* **Subnormals.** BF16 subnormals are FP32 subnormals. ORT's float32 ``Add``, ``Sub``,
  ``Mul``, ``Div``, ``Less``, ``Min``, ``Max``, ``Floor`` and ``CumSum`` were measured to keep
  them (equal to numpy on 100,000 subnormal operands); a session with the option
  ``session.set_denormal_as_zero`` would break bf16 bit-exactness and must not be used.

Reduced mode's scaling differs from FP16's: a bf16 table value times ``2^-k`` (``k`` in
[-149, 127]) cannot be clamped to a short exponent range, so it is two exact-or-harmless
multiplications by normal powers of two (:meth:`Bf16Codec.scale`).
"""

from __future__ import annotations

import numpy as np
from onnx import FunctionProto, TensorProto, helper

from nli.formats import DTYPES

from .onnx_ops import F32, FP16_CODEC, I32, Builder, Codec, _function

BF16 = TensorProto.BFLOAT16
U16, U32 = TensorProto.UINT16, TensorProto.UINT32


class Bf16Codec(Codec):
    """BF16 tensors, decoded and encoded on their bit patterns (see the module docstring)."""

    dtype, elem, suffix, round_fn = "bf16", BF16, "BF16", "RoundBF16"

    def decode(self, b: Builder, x: str) -> str:
        u = b.op("Cast", b.op("BitCast", x, to=U16), to=U32)
        return b.op(
            "BitCast", b.op("BitShift", u, b.const(16, np.uint32), direction="LEFT"), to=F32
        )

    def encode(self, b: Builder, v: str) -> str:
        u = b.op("BitShift", b.op("BitCast", v, to=U32), b.const(16, np.uint32), direction="RIGHT")
        return b.op("BitCast", b.op("Cast", u, to=U16), to=BF16)

    def scale(self, b: Builder, y: str, e: str) -> str:
        """RNE_bf16(y 2^-e) for a BF16 value y and e = k in [-149, 127] (reciprocal) or k / 2
        (rsqrt): s = -e is split as s1 = trunc(s / 2), s2 = s - s1 (both in [-64, 75], so
        2^s1, 2^s2 are normal FP32).
        ``y 2^s1`` is exact unless it overflows (then s1 > 0, s2 >= 0 and the exact result
        overflows too) or leaves FP32's normal range (then s1 < 0, s2 <= 0: the exact result
        is below 2^-141, far under BF16's least midpoint 2^-134, and so is the computed one:
        both round to a zero of y's sign). The second product is RNE32 of a value of 8
        significant bits, exact down to 2^-142; below that both round to that zero again. So
        RoundBF16 of it is RNE_bf16 of the exact product."""
        s = b.op("Neg", e)  # int32
        s1 = b.op("Div", s, b.i32(2))  # truncates toward zero: s1, s2 have s's sign
        s2 = b.op("Sub", s, s1)

        def pow2(k):
            return b.op("BitCast", b.op("Mul", b.op("Add", k, b.i32(127)), b.i32(1 << 23)), to=F32)

        return b.call(self.round_fn, b.op("Mul", b.op("Mul", y, pow2(s1)), pow2(s2)))


BF16_CODEC = Bf16Codec()
CODECS = {"fp16": FP16_CODEC, "bf16": BF16_CODEC}
assert tuple(CODECS) == DTYPES


def codec_for(dtype: str) -> Codec:
    """The codec of a table dtype (nli.formats.DTYPES)."""
    return CODECS[dtype]


def round_bf16_function() -> FunctionProto:
    """nli.RoundBF16(v: float32) -> float32 on the BF16 grid: RNE_bf16(v), overflow to +-inf,
    NaN -> 0x7fc00000 (whose top half is BF16's canonical 0x7fc0). Any shape.

    On the bits of |v| (NaN payloads first clamped to the infinity pattern, so the int32 sum
    cannot wrap): add 0x7fff plus bit 16 (the kept part's lowest bit) and clear the low 16 bits:
    round to nearest, ties to even; a carry bumps the exponent, up to +inf (0x7f800000)."""
    b = Builder("b")
    bits = b.op("BitCast", "v", to=I32)
    mag = b.op("Min", b.op("BitwiseAnd", bits, b.i32(0x7FFFFFFF)), b.i32(0x7F800000))
    lsb = b.op("Div", b.op("BitwiseAnd", mag, b.i32(0x10000)), b.i32(0x10000))
    r = b.op("BitwiseAnd", b.op("Add", b.op("Add", mag, b.i32(0x7FFF)), lsb), b.i32(0x7FFF0000))
    res = b.op("BitwiseOr", r, b.op("BitwiseAnd", bits, b.i32(-0x80000000)))  # the sign back
    res = b.op("Where", b.op("IsNaN", "v"), b.i32(0x7FC00000), res)
    out = b.op("BitCast", res, to=F32)
    return _function("RoundBF16", ["v"], b, {"y": out}, round_bf16_function.__doc__)


def bf16_tensor(name: str, bits) -> TensorProto:
    """A bfloat16 initializer holding the uint16 BF16 patterns ``bits`` (any shape)."""
    arr = np.ascontiguousarray(np.asarray(bits, np.uint16))
    return helper.make_tensor(name, BF16, arr.shape, arr.astype("<u2").tobytes(), raw=True)
