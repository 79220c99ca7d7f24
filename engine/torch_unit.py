"""The elementwise datapath of the NLI unit (numerics §3; §13 for a bf16 table) in pure torch, on
any device.

Bit-exact to :mod:`hw_sim.unit` (the one reference implementation; the tests compare
every shipped table over all 65,536 encodings), built from integer and bit operations
on int32 views of float32 tensors plus single IEEE float32 ``+ - *`` and ``floor``, the
way :mod:`engine.onnx_ops` builds it from ONNX operators. Nothing here imports hw_sim
or calls Numba. Each torch op is its own kernel, so nothing is contracted into an FMA.

How each step is one correctly rounded operation (the arguments of engine/onnx_ops.py
and hw_sim/fp.py):

* **RNE16** (:func:`rne16`) works on the FP32 bit pattern: a normal FP16 result
  rebiases the exponent and rounds off 13 mantissa bits on the integer (a carry may
  reach inf); an FP16-subnormal result is ``|x| + 0.5`` in float32, whose one RNE32
  rounding is exactly the subnormal rounding (Giesen's trick; an FP32-subnormal input
  gives 0 with or without denormals-are-zero). NaN -> the canonical NaN.
* **Decoding** (:func:`decode16`) assembles FP32 bits; FP16 subnormals are
  ``float(m) * 2^-24`` (exact, normal). Every NaN decodes to 0x7fc00000, as hw_sim's.
* **Double rounding.** ``RNE16(RNE32(a - b))`` = ``RNE16(a - b)`` for FP16 a, b, and
  FP16 x FP16 products are exact in FP32, so the fp16 table's ``dx``, ``u``, ``dy`` are an
  FP32 op followed by :func:`rne16`.
* **The fp16 table's FMA** ``RNE16(y0 + t * dy)``: ``t * dy`` is exact in FP32 when t
  has at most 13 significant bits, which a valid table guarantees (its mul is
  RNE32(bins / width), so u stays near bins and t = u - a is short); it is checked when
  the LUT is built, so a table breaking it raises instead of answering wrongly. The sum
  is TwoSum'ed and turned
  into round-to-odd at 24 bits, then RNE16 (24 >= 11 + 2: one correct rounding).
* **Selects** are on int32 bit patterns, so -0 survives every ``where``.
* **BF16** (numerics §13; a bf16 table): steps 1-9 are the fp32 precision's float32 ops, step
  10 is :func:`rne_bf16` of the float32 ``y0 + p``, NaN is 0x7fc0. :func:`rne_bf16` rounds on
  the FP32 bit pattern (add 0x7fff plus the lowest kept bit, drop 16 bits: ties to even, a
  carry reaches inf; FP32 subnormals are BF16 subnormals and round on the same integer),
  every NaN -> 0x7fc0, negative ones included; it never uses torch's bfloat16 conversion, so
  the bits do not depend on the device's. :func:`decode_bf16` is the 16-bit shift (exact,
  NaN payloads kept, as hw_sim's decode table). BF16 operands and tables reach FP32
  subnormals, which the device's float32 ``+ - *`` must keep (no flush-to-zero: torch's
  default on the CPU and CUDA; ``torch.set_flush_denormal(True)`` would break bf16).

Because the unit is a unary function of the 16-bit input, :func:`output_values`
evaluates this datapath once over all 65,536 encodings on the target device (cached per
table object and device) and :func:`run_elementwise_f32` then gathers, as hw_sim does.

**Hot-path rounding.** On the op boundary and inside Softmax/RMSNorm, :func:`round16` and
:func:`grid16` use torch's float32 -> float16 conversion (IEEE convertFormat: RNE,
subnormals kept, overflow to inf) and float16 -> float32 (exact), one kernel each instead
of a dozen, *after* :func:`fast_rounding` has checked them once per device against
:func:`rne16` / :func:`decode16` over every rounding boundary of the float32 exponent
range (:func:`_probe`); a device whose conversion disagrees anywhere keeps the integer
construction. NaNs may come out as any NaN encoding there: the LUTs map every NaN
encoding to the canonical NaN, and :func:`exact16` makes final outputs canonical.
(On the CPU, ``torch.where`` over large tensors is several times slower than a gather, so
the hot paths select by LUT index rather than by ``where``.)
"""

from __future__ import annotations

import weakref

import torch

from nli.formats import BF16_NAN, FP16_NAN, FP16_POS_INF, FP32_NAN
from nli.table import Table
from nli.unit_checks import SimInputError, check_dtypes

_FP32_INF = 0x7F800000
_FP32_SIGN = -(1 << 31)  # int32 pattern of the sign bit
_HALF_BITS = 0x3F000000  # 0.5
_FP16_MIN_NORMAL32 = 0x38800000  # 2^-14 as FP32 bits
_FP16_OVERFLOW32 = 0x47800000  # 2^16: |x| at or above it rounds to inf (with the carry below)
_REBIAS = (127 - 15) << 23
_EXACT_T_LOW_BITS = 0x7FF  # t may use at most 13 significant bits (see module docstring)


# ----------------------------------------------------------------------------- bit helpers
def bits32(x: torch.Tensor) -> torch.Tensor:
    """float32 tensor -> its int32 bit patterns (a view)."""
    return x.view(torch.int32)


def f32(b: torch.Tensor) -> torch.Tensor:
    """int32 bit patterns -> the float32 tensor they encode (a view)."""
    return b.view(torch.float32)


def rne16(x: torch.Tensor) -> torch.Tensor:
    """RNE16 of float32 x -> int32 FP16 bit patterns in [0, 65535], same shape: round to
    nearest even, subnormals kept, overflow to +-inf, every NaN -> the canonical NaN."""
    u = bits32(x.contiguous())
    a = u & 0x7FFFFFFF
    normal = (a - _REBIAS + 0xFFF + ((a >> 13) & 1)) >> 13
    sub = bits32(f32(a) + 0.5) - _HALF_BITS
    q = torch.where(a >= _FP16_MIN_NORMAL32, normal, sub)
    q = torch.where(a >= _FP16_OVERFLOW32, FP16_POS_INF, q)
    r = q | ((u >> 16) & 0x8000)
    return torch.where(a > _FP32_INF, FP16_NAN, r)


def decode16(b: torch.Tensor) -> torch.Tensor:
    """int32 FP16 bit patterns -> float32 values (exact), NaNs as 0x7fc00000 (hw_sim's)."""
    a = b & 0x7FFF
    sub = bits32(a.to(torch.float32) * 2.0**-24)  # exact: m < 2^10
    r = torch.where(a < 0x400, sub, (a << 13) + _REBIAS)
    r = torch.where(a >= FP16_POS_INF, _FP32_INF, r)
    r = r | torch.where((b & 0x8000) != 0, _FP32_SIGN, 0).to(torch.int32)
    return f32(torch.where(a > FP16_POS_INF, FP32_NAN, r))


def rne_bf16(x: torch.Tensor) -> torch.Tensor:
    """RNE_bf16 of float32 x -> int32 BF16 bit patterns in [0, 65535], same shape (numerics
    §13): integer rounding of the FP32 pattern (see the module docstring), subnormals kept,
    overflow to +-inf, every NaN -> the canonical 0x7fc0."""
    nan = torch.isnan(x)
    u = bits32(x.contiguous()).clamp_max(_FP32_INF)  # positive NaNs clamped: no int32 overflow
    # (u + 0x7fff + bit 16) >> 16 on the pattern: a negative u stays negative (no carry into the
    # sign), and the arithmetic shift's sign extension is masked off; in place, for speed
    r = (u >> 16).bitwise_and_(1).add_(0x7FFF).add_(u).bitwise_right_shift_(16)
    return r.bitwise_and_(0xFFFF).masked_fill_(nan, BF16_NAN)


def decode_bf16(b: torch.Tensor) -> torch.Tensor:
    """int32 BF16 bit patterns (in [0, 65535]) -> the float32 values they encode (exact: the
    top half of the FP32 pattern; NaN payloads kept)."""
    return f32(b.to(torch.int32) << 16)


def select(cond: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """where(cond, x, y) for float32 tensors on their bit patterns (every bit kept)."""
    return f32(torch.where(cond, bits32(x), bits32(y)))


# ----------------------------------------------------------------------------- hot-path rounding
_FAST_OK: dict = {}  # str(device) -> whether torch's FP16 conversions passed the probe there


def _probe(device) -> torch.Tensor:
    """float32 probe values: every pattern whose low 13 bits are one of 0, 1, 0xfff, 0x1000,
    0x1001, 0x1fff (all ties, near-ties and exact cases of the normal FP16 range, and of the
    subnormal range, whose rounding bit lies higher), for all 2^19 sign/exponent/high
    mantissa prefixes: NaN, inf, overflow, FP32 subnormals included."""
    hi = torch.arange(1 << 19, dtype=torch.int64, device=device) << 13
    low = torch.tensor([0, 1, 0xFFF, 0x1000, 0x1001, 0x1FFF], dtype=torch.int64, device=device)
    pat = (hi[:, None] | low[None, :]).reshape(-1)
    pat = torch.where(pat >= (1 << 31), pat - (1 << 32), pat)  # as int32 values
    return f32(pat.to(torch.int32))


def _fast_round16(x: torch.Tensor) -> torch.Tensor:
    return x.to(torch.float16).view(torch.uint16).to(torch.int32)


def fast_rounding(device) -> bool:
    """Whether torch's float32 <-> float16 conversions on ``device`` equal :func:`rne16` (up to
    the NaN encoding) on the probe set and :func:`decode16` on all 65,536 encodings.
    Checked once per device; a conversion that fails to run counts as a mismatch."""
    key = str(torch.device(device))
    if key not in _FAST_OK:
        try:
            x = _probe(device)
            want = rne16(x)
            got = _fast_round16(x)
            both_nan = ((want & 0x7FFF) > FP16_POS_INF) & ((got & 0x7FFF) > FP16_POS_INF)
            enc = torch.arange(1 << 16, dtype=torch.int32, device=device)
            want32 = decode16(enc)
            got32 = enc.to(torch.uint16).view(torch.float16).to(torch.float32)
            same = (bits32(got32) == bits32(want32)) | (torch.isnan(got32) & torch.isnan(want32))
            _FAST_OK[key] = bool(((got == want) | both_nan).all()) and bool(same.all())
        except (RuntimeError, TypeError, NotImplementedError):
            _FAST_OK[key] = False
    return _FAST_OK[key]


def round16(x: torch.Tensor) -> torch.Tensor:
    """An int32 FP16 encoding (in [0, 65535]) of RNE16(x), for a LUT index: :func:`rne16`'s
    bits, except that a NaN may be any NaN encoding."""
    return _fast_round16(x) if fast_rounding(x.device) else rne16(x)


def grid16(x: torch.Tensor) -> torch.Tensor:
    """RNE16(x) as the float32 value it is (exact), a NaN as any NaN."""
    if fast_rounding(x.device):
        return x.to(torch.float16).to(torch.float32)
    return decode16(rne16(x))


def lookup(values: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """values[idx] for a LUT and int32 indices idx (any shape)."""
    return torch.index_select(values, 0, idx.reshape(-1)).reshape(idx.shape)


_DECODED: dict = {}  # str(device) -> decode16 of all 65,536 encodings there


def decoded(device) -> torch.Tensor:
    """float32[65536] on ``device``: :func:`decode16` of every encoding (NaNs canonical)."""
    key = str(torch.device(device))
    if key not in _DECODED:
        _DECODED[key] = decode16(torch.arange(1 << 16, dtype=torch.int32, device=device))
    return _DECODED[key]


def exact16(x: torch.Tensor) -> torch.Tensor:
    """RNE16(x) as float32 with every NaN canonical (hw_sim's decoded outputs): a final
    output's rounding."""
    return lookup(decoded(x.device), round16(x))


# ----------------------------------------------------------------------------- constants
class _Consts:
    """A table's fields as tensors on one device (built once, see :func:`_consts`)."""

    def __init__(self, table: Table, device: torch.device):
        def i32(a):
            return torch.as_tensor(a.astype("int64"), device=device).to(torch.int32)

        bf16 = table.dtype == "bf16"
        self.decode = decode_bf16 if bf16 else decode16  # the table's 16-bit format
        self.round = rne_bf16 if bf16 else rne16  # step 10's final rounding
        self.nan = BF16_NAN if bf16 else FP16_NAN
        self.fp16 = table.precision == "fp16" and not bf16  # bf16: FP32 steps (numerics §13)
        self.cut = self.decode(i32(table.cutpoints))  # [K+1]
        self.inner = self.cut[1:-1].contiguous()  # c_1..c_{K-1}: the comparator search
        mul = torch.as_tensor(table.mul.astype("float32"), device=device)
        self.mul = decode16(rne16(mul)) if self.fp16 else mul  # RNE16(mul)
        self.top = (torch.as_tensor(table.bins.astype("int64"), device=device) - 1).to(
            torch.float32
        )  # bins - 1, exact
        self.base = torch.as_tensor(table.base.astype("int64"), device=device)
        self.lut = self.decode(i32(table.lut))
        self.below = int(table.below)
        self.above = int(table.above)


_CACHE: "weakref.WeakKeyDictionary[Table, dict]" = weakref.WeakKeyDictionary()


def _cached(table: Table, device: torch.device) -> dict:
    per_table = _CACHE.setdefault(table, {})
    return per_table.setdefault(str(device), {})


def _consts(table: Table, device: torch.device) -> _Consts:
    slot = _cached(table, device)
    if "consts" not in slot:
        check_dtypes("torch datapath", table=table)  # fp16 or bf16 (numerics §13)
        slot["consts"] = _Consts(table, device)
    return slot["consts"]


# ----------------------------------------------------------------------------- the datapath
def _fma16(t, dy, y0):
    """RNE16(y0 + t * dy) with one rounding, as int32 bits (t * dy exact, see the docstring)."""
    p = t * dy
    s = y0 + p
    pv = s - y0  # TwoSum (Knuth): err = (y0 + p) - s exactly
    yv = s - pv
    err = (y0 - yv) + (p - pv)
    b = bits32(s)
    away = (err < 0) == (s < 0)  # |exact| > |s|
    step = torch.where(away, 1, -1).to(torch.int32)
    step = torch.where(((b & 1) == 0) & (err != 0), step, 0)
    odd = torch.where(torch.isfinite(s), b + step, b)  # inf / NaN: no error term
    return rne16(f32(odd))


def datapath(consts: _Consts, x: torch.Tensor) -> torch.Tensor:
    """Numerics §3 (§13 for a bf16 table) for input values x of the table's format (float32
    tensor, any shape) -> int32 output bits in that format."""
    c = consts
    nan = x != x
    lo = x < c.cut[0]  # 2.
    hi = x >= c.cut[-1]
    inside = ~(nan | lo | hi)
    xs = select(inside, x, c.cut[0].expand_as(x))  # keeps every index in range
    i = torch.bucketize(xs, c.inner, right=True)  # 3. largest I with c_I <= x
    dx = xs - c.cut[i]  # 4. RNE32(x - c_I)
    if c.fp16:
        dx = decode16(rne16(dx))  #    RNE16 (innocuous double rounding)
    u = dx * c.mul[i]  # 5. RNE32(dx * mul[I]), exact for fp16
    if c.fp16:
        u = decode16(rne16(u))
    a = torch.floor(u)  # 6. (floor(-0) = -0)
    top = c.top[i]
    a = select(a > top, top, a)
    t = u - a  #    exact
    g = c.base[i] + a.to(torch.int64)  # 7.
    y0 = c.lut[g]
    y1 = c.lut[g + 1]
    dy = y1 - y0  # 8. RNE32(y1 - y0)
    if c.fp16:
        dy = decode16(rne16(dy))
        ok = ~inside | ~torch.isfinite(t) | ((bits32(t) & _EXACT_T_LOW_BITS) == 0)
        if not bool(ok.all()):
            raise SimInputError(
                "table: an fp16-precision interpolation weight t has more than 13 significant "
                "bits; the torch datapath cannot form t * dy exactly for this table"
            )
        y = _fma16(t, dy, y0)  # 9-10. RNE16(y0 + t * dy), one rounding
    else:
        y = c.round(y0 + t * dy)  # 9-10. RNE16 / RNE_bf16 of RNE32(y0 + RNE32(t * dy))
    y = torch.where(hi, c.above, y)
    y = torch.where(lo, c.below, y)
    return torch.where(nan, c.nan, y)  # 1.


def output_bits(table: Table, device) -> torch.Tensor:
    """int32[65536] on ``device``: the unit's output bits for every input encoding of the table's
    dtype, computed by :func:`datapath` on that device (cached per table object and device)."""
    device = torch.device(device)
    slot = _cached(table, device)
    if "bits" not in slot:
        enc = torch.arange(1 << 16, dtype=torch.int32, device=device)
        c = _consts(table, device)
        slot["bits"] = datapath(c, c.decode(enc))
    return slot["bits"]


def output_values(table: Table, device) -> torch.Tensor:
    """float32[65536] on ``device``: :func:`output_bits` as the FP32 values they encode."""
    device = torch.device(device)
    slot = _cached(table, device)
    if "values" not in slot:
        slot["values"] = _consts(table, device).decode(output_bits(table, device))
    return slot["values"]


# ----------------------------------------------------------------------------- public
def check_f32(x, name: str = "x") -> torch.Tensor:
    """x must be a float32 torch tensor."""
    if not isinstance(x, torch.Tensor):
        raise SimInputError(f"{name}: expected a float32 torch tensor, got {type(x).__name__}")
    if x.dtype != torch.float32:
        raise SimInputError(f"{name}: expected a float32 torch tensor, got {x.dtype}")
    return x


def run_elementwise_f32(table: Table, x: torch.Tensor) -> torch.Tensor:
    """The elementwise datapath of ``table`` on every element of ``x`` (float32, any shape, any
    device): each element is rounded to the table's dtype (RNE16, or RNE_bf16 for a bf16 table)
    at the op boundary; returns float32 of x's shape on x's device holding the 16-bit outputs
    (exact). Bit-identical to :func:`hw_sim.run_elementwise_f32`."""
    if not isinstance(table, Table):
        raise SimInputError(f"table: expected an nli Table, got {type(table).__name__}")
    check_f32(x)
    idx = rne_bf16(x) if table.dtype == "bf16" else round16(x)
    return lookup(output_values(table, x.device), idx)
