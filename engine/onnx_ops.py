"""The NLI datapath as ONNX model-local functions (domain ``nli``) for stock onnxruntime.

Every function here is built from standard ONNX operators only (opset 26, for
``BitCast``), so the exported graph runs in stock onnxruntime with no custom-op
library, bit-exact to ``hw_sim``. The functions take the table as ordinary
inputs, which the exporter feeds from named initializers
(``<prefix>.cutpoints`` ...), so the table's structure stays visible to a
hardware compiler.

Extensions (docs/numerics.md §8: how each step is made one IEEE operation in ORT):

* **Explicit RNE16.** onnxruntime's CPU provider has no FP16 kernels for Floor,
  Less, Where, Add, Sub or Mul: it wraps them in FP32 Casts and then drops
  ``float -> fp16 -> float`` Cast pairs, so an intermediate FP16 rounding done
  by a Cast can silently disappear. ``RoundFP16`` therefore rounds an FP32
  value to the FP16 grid *inside FP32*, using its bit pattern (``BitCast`` to
  int32): the exponent E of ``|v|`` (clamped to FP16's [-14, 15]) gives
  ``M = 1.5 * 2^(E+13)``, whose FP32 ulp is FP16's quantum 2^(E-10), and
  ``(|v| + M) - M`` is ``|v|`` rounded to that quantum, ties to even (one FP32
  add in M's binade, an exact subtract); then > 65504 -> inf, the sign is
  OR-ed back and NaN -> the canonical NaN. FP32 subnormal inputs round to 0
  with or without DAZ. Every ``Cast(float -> float16)`` in
  the graph is applied to an already-rounded value and is therefore exact, so
  whether ORT keeps or removes a Cast pair cannot change a bit.
* **Double rounding.** ``RNE16(RNE32(a - b))`` for FP16 ``a, b`` equals
  ``RNE16(a - b)`` (24 >= 2 * 11 + 2, the innocuous-double-rounding bound), and
  FP16 x FP16 products are exact in FP32; so softmax's ``d_i``, the fp16-table
  ``dx``, ``dy`` and ``u`` are an FP32 op followed by ``RoundFP16``.
* **One rounding for the fp16 table's FMA.** ``y0 + t * dy``: ``t * dy`` is
  exact in FP32; the sum is TwoSum'ed (``s``, exact error ``err``), ``s`` is
  turned into the round-to-odd value of the exact sum (bit pattern +-1 when
  ``err != 0`` and ``s`` is even), then ``RoundFP16``. Rounding to odd at 24
  bits followed by RNE at 11 bits is the correctly rounded RNE16.
* **No FMA contraction.** ORT runs ``Mul`` and ``Add`` as separate kernels (no
  elementwise Mul+Add fusion on the CPU provider), so ``p = RNE32(t * dy)``
  and ``y0 + p`` are rounded separately; the exhaustive tests would catch it.
* **Signed zeros through Where.** ORT 1.32's float ``Where`` can return +0.0
  where it selects -0.0 (measured: a broadcast scalar -0, and a -0 tensor at
  ``ORT_DISABLE_ALL``), so every float select is done on int32 bit patterns
  (:meth:`Builder.select`); likewise ORT's ``Neg`` maps +0 to +0 (measured),
  so signs are flipped with ``BitwiseXor``.
* **Sequential sums.** Softmax's ``s`` and RMSNorm's ``q`` are the last
  element of ``CumSum`` along the row, which ORT evaluates in index order
  (``ReduceSum`` does not); the tests check it on adversarial rows.
* **Reduced-mode range reduction** splits ``v = m * 2^k`` on its FP32 bit
  pattern (FP32 subnormals are first scaled by 2^64, exactly), and
  ``table(RNE16(m)) * 2^-k`` is one exact FP32 multiplication by a power of two
  built from bits, with ``k`` clamped to [-40, 41]: beyond that every
  non-zero FP16 ``y`` overflows (or underflows) FP16 anyway, so the clamp
  changes no result but keeps ``2^-k`` an FP32 normal.
* **RMSNorm's row prescale** (numerics §4.1) works on bit patterns: inf / NaN
  are replaced by +0 with an int32 ``Where`` before the ``ReduceMax`` of the
  magnitudes (exact), ``E(m)`` is m's exponent field (an int32 ``Div`` by
  2^23: ONNX's ``BitShift`` takes unsigned types only), ``2^-s`` is built from
  bits, and ``eps 2^(-2s)`` is two FP32 ``Mul`` by ``2^-s``: exact unless it
  falls below 2^-126, where numerics §4.1 shows it cannot change ``v``.

The functions take a :class:`Codec`, the table format's way in and out of FP32: FP16 here,
BF16 in :mod:`engine.onnx_bf16`, whose docstring records what onnxruntime does with
bfloat16 (no arithmetic kernels at all, a Cast that keeps a NaN's sign, the Python I/O).
"""

from __future__ import annotations

import numpy as np
from onnx import FunctionProto, TensorProto, helper, numpy_helper

DOMAIN = "nli"
OPSET = 26  # BitCast
OPSETS = [helper.make_opsetid("", OPSET), helper.make_opsetid(DOMAIN, 1)]
TABLE_FIELDS = ("cutpoints", "mul", "bins", "base", "lut", "below", "above")
F32, F16, BOOL = TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.BOOL
I32, I64 = TensorProto.INT32, TensorProto.INT64


class Builder:
    """Collects nodes with fresh names; constants become ``Constant`` nodes."""

    def __init__(self, prefix: str = "n"):
        self.nodes: list = []
        self.prefix = prefix
        self._n = 0

    def _name(self, hint: str) -> str:
        self._n += 1
        return f"{self.prefix}{self._n}_{hint}"

    def op(self, op_type: str, *inputs: str, n_out: int = 1, domain: str = "", **attrs):
        outs = [self._name(op_type) for _ in range(n_out)]
        self.nodes.append(
            helper.make_node(op_type, list(inputs), outs, name=outs[0], domain=domain, **attrs)
        )
        return outs[0] if n_out == 1 else outs

    def const(self, value, dtype) -> str:
        arr = np.asarray(value, dtype=dtype)
        out = self._name("const")
        self.nodes.append(
            helper.make_node(
                "Constant", [], [out], name=out, value=numpy_helper.from_array(arr, out)
            )
        )
        return out

    def f32(self, v) -> str:
        return self.const(v, np.float32)

    def i32(self, v) -> str:
        return self.const(v, np.int32)

    def i64(self, v) -> str:
        return self.const(v, np.int64)

    def select(self, cond: str, x: str, y: str) -> str:
        """Where(cond, x, y) for float32 tensors, on their int32 bit patterns: ORT 1.32's
        float ``Where`` can return +0.0 for a selected -0.0 (measured), an int32 one cannot."""
        xi = self.op("BitCast", x, to=I32)
        yi = self.op("BitCast", y, to=I32)
        return self.op("BitCast", self.op("Where", cond, xi, yi), to=F32)

    def call(self, fn: str, *inputs: str, n_out: int = 1):
        """A call of the model-local function ``nli.<fn>``."""
        return self.op(fn, *inputs, n_out=n_out, domain=DOMAIN)

    def rename_output(self, name: str, out: str) -> None:
        """Make the node producing ``name`` write ``out`` instead (for function outputs)."""
        for node in self.nodes:
            for i, o in enumerate(node.output):
                if o == name:
                    node.output[i] = out
                    return
        raise KeyError(name)


def _function(
    name: str, inputs: list[str], b: Builder, outputs: dict[str, str], doc: str
) -> FunctionProto:
    for out, produced in outputs.items():
        b.rename_output(produced, out)
    return helper.make_function(
        DOMAIN, name, inputs, list(outputs), b.nodes, OPSETS, doc_string=doc
    )


class Codec:
    """How the graph moves one 16-bit format (a table's ``dtype``) in and out of FP32.

    This base class is FP16 (Casts, exact on the FP16 grid); :mod:`engine.onnx_bf16` derives
    the BF16 one. ``suffix`` tells the functions of the two apart (``Interp`` /
    ``InterpBF16``)."""

    dtype, elem, suffix, round_fn = "fp16", F16, "", "RoundFP16"

    def decode(self, b: Builder, x: str) -> str:
        """A tensor of the format -> float32 (exact)."""
        return b.op("Cast", x, to=F32)

    def encode(self, b: Builder, v: str) -> str:
        """A float32 already on the format's grid (or its canonical NaN) -> the format (exact)."""
        return b.op("Cast", v, to=F16)

    def scale(self, b: Builder, y: str, e: str) -> str:
        """RNE(y 2^-e) for a table output y and an int32 e (reduced mode, section 5): e is
        clamped to [-40, 41] (see the module docstring), 2^-e built from bits, one exact
        multiplication, one rounding."""
        e = b.op("Clip", e, b.i32(-40), b.i32(41))
        scale = b.op("BitCast", b.op("Mul", b.op("Sub", b.i32(127), e), b.i32(1 << 23)), to=F32)
        return b.call(self.round_fn, b.op("Mul", y, scale))


FP16_CODEC = Codec()


def fn_name(base: str, precision: str = "fp32", codec: Codec = FP16_CODEC) -> str:
    """The function implementing ``base`` for a table of this precision and format."""
    return base + ("16" if precision == "fp16" else "") + codec.suffix


# ----------------------------------------------------------------------------- RoundFP16
def round_fp16_function() -> FunctionProto:
    """nli.RoundFP16(v: float32) -> float32 on the FP16 grid: RNE16(v), overflow to +-inf,
    NaN -> canonical NaN (0x7fc00000, which Casts to FP16 0x7e00). Any shape."""
    b = Builder("r")
    bits = b.op("BitCast", "v", to=I32)
    mag = b.op("BitwiseAnd", bits, b.i32(0x7FFFFFFF))
    # E = the exponent of |v|, clamped to [-14, 15]: FP16's quantum there is 2^(E-10)
    e = b.op(
        "Min",
        b.op("Max", b.op("BitwiseAnd", mag, b.i32(0x7F800000)), b.i32(0x38800000)),
        b.i32(0x47000000),
    )
    magic = b.op(
        "BitCast", b.op("Add", e, b.i32(0x06C00000)), to=F32
    )  # M = 1.5 * 2^(E+13), ulp(M) = 2^(E-10)
    absv = b.op("BitCast", mag, to=F32)
    # |v| + M stays in M's binade, so the FP32 add rounds |v| to a multiple of 2^(E-10),
    # ties to even (M / ulp(M) is even); subtracting M again is exact
    r = b.op("BitCast", b.op("Sub", b.op("Add", absv, magic), magic), to=I32)
    r = b.op("Where", b.op("Greater", r, b.i32(0x477FE000)), b.i32(0x7F800000), r)  # > 65504: +inf
    res = b.op("BitwiseOr", r, b.op("BitwiseAnd", bits, b.i32(-0x80000000)))  # the sign back
    res = b.op("Where", b.op("IsNaN", "v"), b.i32(0x7FC00000), res)
    out = b.op("BitCast", res, to=F32)
    return _function("RoundFP16", ["v"], b, {"y": out}, round_fp16_function.__doc__)


# ----------------------------------------------------------------------------- Interp
def _interp_body(b: Builder, fp16: bool, codec: Codec) -> str:
    x, cut, lut, below, above = (
        codec.decode(b, f) for f in ("x", "cutpoints", "lut", "below", "above")
    )
    c0 = b.op("Gather", cut, b.i64(0))
    ck = b.op("Gather", cut, b.i64(-1))
    lt0 = b.op("Less", x, c0)
    geK = b.op("GreaterOrEqual", x, ck)
    inside = b.op("And", b.op("Not", b.op("Or", lt0, geK)), b.op("Not", b.op("IsNaN", x)))
    xs = b.select(inside, x, c0)  # keeps every index in range
    # 3. I = #{i in 1..K-1 : c_i <= x}, the largest i with c_i <= x
    inner = b.op("Slice", cut, b.i64([1]), b.i64([-1]), b.i64([0]))
    ge = b.op("GreaterOrEqual", b.op("Unsqueeze", xs, b.i64([-1])), inner)  # [..., K-1]
    # a float count (exact: at most K-1 ones) is ~3x faster in ORT than an int64 ReduceSum
    idx = b.op(
        "Cast", b.op("ReduceSum", b.op("Cast", ge, to=F32), b.i64([-1]), keepdims=0), to=I64
    )  # [...]
    cI = b.op("Gather", cut, idx)
    mul = b.op("Gather", "mul", idx)
    if fp16:
        mul = b.call("RoundFP16", mul)  # RNE16(mul[I])
    top = b.op("Cast", b.op("Sub", b.op("Gather", "bins", idx), b.i64(1)), to=F32)
    base = b.op("Gather", "base", idx)
    dx = b.op("Sub", xs, cI)  # 4. RNE32(x - c_I)
    if fp16:
        dx = b.call("RoundFP16", dx)  #    RNE16 (innocuous double rounding)
    u = b.op("Mul", dx, mul)  # 5. RNE32(dx * mul)
    if fp16:
        u = b.call("RoundFP16", u)  #    RNE16 of an exact product
    a = b.op("Min", b.op("Floor", u), top)  # 6.
    t = b.op("Sub", u, a)  #    exact
    g = b.op("Add", base, b.op("Cast", a, to=I64))  # 7.
    y0 = b.op("Gather", lut, g)
    y1 = b.op("Gather", lut, b.op("Add", g, b.i64(1)))
    dy = b.op("Sub", y1, y0)  # 8. RNE32(y1 - y0)
    if fp16:
        dy = b.call("RoundFP16", dy)
        s = _fma_round_to_odd(b, t, dy, y0)  # RO32(y0 + t dy)
    else:
        p = b.op("Mul", t, dy)  # 9. RNE32(t * dy)
        s = b.op("Add", y0, p)  # 10. RNE32(y0 + p)
    y = b.op("BitCast", b.call(codec.round_fn, s), to=I32)  #     then RNE16
    # 2. below / above, selected on bit patterns: ORT's Where turns a selected
    # broadcast scalar -0.0 into +0.0 (measured), an int32 Where keeps every bit
    y = b.op(
        "Where",
        lt0,
        b.op("BitCast", below, to=I32),
        b.op("Where", geK, b.op("BitCast", above, to=I32), y),
    )
    y = b.op("Where", b.op("IsNaN", x), b.i32(0x7FC00000), y)  # 1. NaN -> 0x7e00
    return codec.encode(b, b.op("BitCast", y, to=F32))  # exact: y is on the FP16 grid


def _fma_round_to_odd(b: Builder, t: str, dy: str, y0: str) -> str:
    """FP32 value that RoundFP16 maps to RNE16(y0 + t * dy) (one rounding)."""
    p = b.op("Mul", t, dy)  # exact: 11 x 11 bits
    s = b.op("Add", y0, p)
    # TwoSum (Knuth): err = (y0 + p) - s exactly
    pv = b.op("Sub", s, y0)
    yv = b.op("Sub", s, pv)
    err = b.op("Add", b.op("Sub", y0, yv), b.op("Sub", p, pv))
    bits = b.op("BitCast", s, to=I32)
    even = b.op("Equal", b.op("BitwiseAnd", bits, b.i32(1)), b.i32(0))
    inexact = b.op("Not", b.op("Equal", err, b.f32(0.0)))
    away = b.op("Equal", b.op("Less", err, b.f32(0.0)), b.op("Less", s, b.f32(0.0)))  # |z| > |s|
    step = b.op(
        "Where", b.op("And", even, inexact), b.op("Where", away, b.i32(1), b.i32(-1)), b.i32(0)
    )
    odd = b.op("BitCast", b.op("Add", bits, step), to=F32)
    finite = b.op("Not", b.op("Or", b.op("IsNaN", s), b.op("IsInf", s)))
    return b.select(finite, odd, s)  # inf / NaN: no error term


def interp_function(fp16: bool = False, codec: Codec = FP16_CODEC) -> FunctionProto:
    """nli.Interp (fp32-precision table) or nli.Interp16 (fp16-precision): numerics §3
    (nli.InterpBF16: a bf16 table, numerics §13).

    Inputs: x float16[...], cutpoints float16[K+1], mul float32[K], bins int64[K],
    base int64[K], lut float16[E], below float16[], above float16[]. Output y float16[...].
    """
    b = Builder("i")
    y = _interp_body(b, fp16, codec)
    name = fn_name("Interp", "fp16" if fp16 else "fp32", codec)
    return _function(name, ["x", *TABLE_FIELDS], b, {"y": y}, interp_function.__doc__)


def interp_name(precision: str, codec: Codec = FP16_CODEC) -> str:
    """The function implementing a table of this precision (and format)."""
    return fn_name("Interp", precision, codec)


# ----------------------------------------------------------------------------- section 5
def inverse_reduced_function(
    rsqrt: bool, precision: str, codec: Codec = FP16_CODEC
) -> FunctionProto:
    """nli.ReciprocalReduced / nli.RsqrtReduced (numerics §5, reduced mode), suffixed
    ``16`` for an fp16-precision table. Inputs: v float32[...] + the 7 table fields.
    Output float16[...]. Reciprocal is odd; rsqrt(-0) = -inf, rsqrt(<0) = NaN (as hw_sim)."""
    b = Builder("v")
    bits = b.op("BitCast", "v", to=I32)
    mag = b.op("BitwiseAnd", bits, b.i32(0x7FFFFFFF))
    neg = b.op("Less", bits, b.i32(0))  # sign bit (-0 included)
    tiny = b.op("Less", mag, b.i32(0x00800000))  # FP32 subnormal (or zero)
    absv = b.op("BitCast", mag, to=F32)
    scaled = b.op("BitCast", b.select(tiny, b.op("Mul", absv, b.f32(2.0**64)), absv), to=I32)
    k = b.op(
        "Sub",
        b.op("Sub", b.op("Div", scaled, b.i32(1 << 23)), b.i32(127)),
        b.op("Where", tiny, b.i32(64), b.i32(0)),
    )  # v = m 2^k
    mbits = b.op("BitwiseOr", b.op("BitwiseAnd", scaled, b.i32(0x007FFFFF)), b.i32(0x3F800000))
    m = b.op("BitCast", mbits, to=F32)  # m in [1, 2)
    if rsqrt:
        odd = b.op("Equal", b.op("BitwiseAnd", k, b.i32(1)), b.i32(1))
        m = b.select(odd, b.op("Mul", m, b.f32(2.0)), m)  # m in [1, 4), k even
        k = b.op("Where", odd, b.op("Sub", k, b.i32(1)), k)
        e = b.op("Div", k, b.i32(2))  # exact: k even
    else:
        e = k
    m16 = codec.encode(b, b.call(codec.round_fn, m))
    y = codec.decode(b, b.call(interp_name(precision, codec), m16, *TABLE_FIELDS))
    r = codec.scale(b, y, e)  # RNE16(table(RNE16(m)) 2^-e)
    zero = b.op("Equal", mag, b.i32(0))
    inf = b.op("Equal", mag, b.i32(0x7F800000))
    r = b.select(zero, b.f32(np.inf), b.select(inf, b.f32(0.0), r))
    sign = b.op("BitwiseAnd", bits, b.i32(-0x80000000))  # odd reciprocal; -0 -> -inf; the sign
    r = b.op(
        "BitCast", b.op("BitwiseXor", b.op("BitCast", r, to=I32), sign), to=F32
    )  # by bits (see doc)
    if rsqrt:
        r = b.select(b.op("And", neg, b.op("Not", zero)), b.f32(np.nan), r)
    r = b.select(b.op("IsNaN", "v"), b.f32(np.nan), r)
    out = codec.encode(b, r)
    name = fn_name("RsqrtReduced" if rsqrt else "ReciprocalReduced", precision, codec)
    return _function(name, ["v", *TABLE_FIELDS], b, {"y": out}, inverse_reduced_function.__doc__)


def inverse_call(
    b: Builder,
    v: str,
    table: list[str],
    mode: str,
    rsqrt: bool,
    precision: str,
    codec: Codec = FP16_CODEC,
) -> str:
    """float32 v -> float32 r (an FP16 value) by section 5 in ``mode``."""
    if mode == "direct":
        v16 = codec.encode(b, b.call(codec.round_fn, v))
        r16 = b.call(interp_name(precision, codec), v16, *table)
    else:
        name = fn_name("RsqrtReduced" if rsqrt else "ReciprocalReduced", precision, codec)
        r16 = b.call(name, v, *table)
    return codec.decode(b, r16)
