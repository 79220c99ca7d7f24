"""Softmax, RMSNorm (numerics §4) and the reciprocal / rsqrt modes (§5) in pure torch.

Bit-exact to :func:`hw_sim.softmax_f32` / :func:`hw_sim.rmsnorm_f32` on any device, built on
:mod:`engine.torch_unit` (its RNE16, decoding and the tables' 65,536-entry output LUTs,
computed by the torch datapath on the target device). Each step's exactness argument is
hw_sim/ops_kernels.py's; what changes here:

* **Sequential sums.** Softmax's ``s`` and RMSNorm's ``q`` are FP32 sums in index order,
  as in hw_sim (each row its own chain). They are formed column by column with
  elementwise float32 adds over all rows at once (:func:`row_sums`): the same
  additions in the same order on every device. (``torch.sum``/``cumsum`` are not
  order-stable across devices and are not used.) A row's ``e_i = +0`` at its -inf
  entries; hw_sim skips a trailing -inf run, and adding +0 to a positive sum is exact.
* **No float64** (MPS has none). RMSNorm's ``RNE32(RNE32(q / n) + eps)``: ``q * RNE32(1/n)``
  is one float32 multiply (q is 0 or >= 2^-48, so no FP32 subnormal); ``+ eps`` is one
  float32 add, except that when the product is +0 the sum is eps itself, selected by bits
  (so a subnormal eps survives a device that flushes denormals). A subnormal eps beside a
  non-zero product lies far below its half-ulp and does not change it either way. (Only a
  negative eps cancelling the product down to an FP32 subnormal would need a device that
  keeps denormals, as the CPU and CUDA do in torch by default.)
* **Reduced-mode range reduction** splits ``v = m 2^k`` on the FP32 bit pattern; an FP32
  subnormal's mantissa goes through an exact int -> float conversion (no subnormal
  arithmetic). ``table(RNE16(m)) * 2^-k`` is one exact float32 multiply by a power of two
  built from bits, with the exponent clamped to [-40, 41]: beyond that every non-zero FP16
  table value overflows (or underflows) FP16 anyway (engine/onnx_ops.py's argument).

These are the FP16 ops (fp16 tables only); the BF16 ones (numerics §13) are
:mod:`engine.torch_ops_bf16`, built on the helpers here.

Project choices (numerics §5, as hw_sim): the reduced reciprocal is odd (-0 -> -inf,
-inf -> -0); rsqrt(-0) = -inf, rsqrt of any other negative value is NaN; a row holding a
NaN, or only -inf, gives canonical NaNs.
"""

from __future__ import annotations

from fractions import Fraction
import functools
import weakref

import numpy as np
import torch

from nli.formats import (
    FP16_NAN,
    FP16_NEG_INF,
    FP16_OVERFLOW,
    FP16_POS_INF,
    RMSNORM_PRESCALE_TOP,
)
from nli.grid import rne32
from nli.table import Table
from nli.unit_checks import (
    SimInputError,
    check_dtypes,
    check_eps,
    check_mode,
    check_rmsnorm_input,
    check_rows,
    check_table_fits,
)

from .torch_unit import (
    _cached,
    bits32,
    check_f32,
    decoded,
    exact16,
    f32,
    grid16,
    lookup,
    output_values,
    round16,
)
from .torch_unit import select as select32

_EXP_CLAMP = (-40, 41)  # 2^-e stays an FP32 normal; see the module docstring


# ----------------------------------------------------------------------------- section 5
def split_reduced(v: torch.Tensor, rsqrt: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Reduced mode's range reduction of float32 |v| (any shape, finite or not; specials are
    overwritten by the callers): (m, e) with |v| = m 2^k, m in [1, 2) and e = k (reciprocal),
    or m in [1, 4), k even and e = k / 2 (rsqrt). Exact: integer work on the FP32 bits."""
    u = bits32(v.contiguous())
    a = u & 0x7FFFFFFF
    field = a >> 23
    frac = a & 0x7FFFFF
    fb = bits32(frac.to(torch.float32))  # exact: frac < 2^23; for a subnormal v = frac 2^-149
    sub = field == 0
    k = torch.where(sub, (fb >> 23) - 127 - 149, field - 127)  # v = m 2^k
    m = f32(torch.where(sub, fb & 0x7FFFFF, frac) | 0x3F800000)  # m in [1, 2)
    if rsqrt:
        odd = (k & 1) != 0
        m = select32(odd, m * 2.0, m)  # m in [2, 4), k even
        k = torch.where(odd, k - 1, k)
        e = k >> 1  # exact: k even
    else:
        e = k
    return m, e


def inverse_reduced(v: torch.Tensor, table, rsqrt: bool) -> torch.Tensor:
    """Reduced-mode reciprocal (rsqrt=False) or rsqrt of float32 v (any shape) -> int32 FP16
    encodings (a NaN as any NaN encoding), with ``table`` over the reduced domain (§5)."""
    u = bits32(v.contiguous())
    a = u & 0x7FFFFFFF
    m, e = split_reduced(v, rsqrt)
    y = lookup(output_values(table, v.device), round16(m))  # table(RNE16(m))
    e = torch.clamp(e, *_EXP_CLAMP)
    r = round16(y * f32((127 - e) << 23))  # RNE16(y 2^-e), an exact product
    r = torch.where(a == 0, FP16_POS_INF, r)
    r = torch.where(a == 0x7F800000, 0, r)
    r = r ^ ((u >> 16) & 0x8000)  # odd (and rsqrt(-0) = -inf); a NaN stays a NaN
    if rsqrt:
        r = torch.where((u < 0) & (a != 0), FP16_NAN, r)
    return torch.where(a > 0x7F800000, FP16_NAN, r)


def inverse(v: torch.Tensor, table, mode: str, rsqrt: bool) -> torch.Tensor:
    """Section 5 of float32 v in ``mode`` -> float32 FP16 values (exact; NaNs canonical)."""
    if mode == "reduced":
        return lookup(decoded(v.device), inverse_reduced(v, table, rsqrt))
    return lookup(output_values(table, v.device), round16(v))  # table(RNE16(v))


# ----------------------------------------------------------------------------- sums
def row_sums(v: torch.Tensor) -> torch.Tensor:
    """Sequential FP32 sum of each row of v (float32[R, n], n >= 1) in index order:
    s = v[:, 0], then s = s + v[:, i] for i = 1..n-1, one elementwise add per column."""
    cols = v.t().contiguous().unbind(0)  # n columns, each one contiguous vector [R]
    s = cols[0].clone()
    for c in cols[1:]:
        s.add_(c)
    return s


# ----------------------------------------------------------------------------- public
_FITS: "weakref.WeakKeyDictionary[Table, set]" = weakref.WeakKeyDictionary()


def _check_fits(table, function: str, mode: str) -> None:
    """check_table_fits, remembered per table object (tables are immutable)."""
    done = _FITS.get(table) if isinstance(table, Table) else None
    if done is None or (function, mode) not in done:
        check_table_fits(table, function, f"{function} table", mode)
        _FITS.setdefault(table, set()).add((function, mode))


@functools.lru_cache(maxsize=None)
def _inv(n: int) -> float:
    """RNE32(1 / n), exact (Fractions)."""
    return rne32(Fraction(1, n))


def _exp_lut(exp_table, xv: torch.Tensor, d: torch.Tensor, neg_inf: int = FP16_NEG_INF):
    """(LUT, index) giving e_i: exp_table(d_i), and +0 where x_i = -inf. For such x_i (in a
    row that is not all -inf or NaN) d_i = RNE16(-inf - m) = -inf (encoding ``neg_inf`` of
    the table's format), so when the table's output at -inf is +0 the plain LUT already says
    +0; otherwise the index gets bit 16 set there and the LUT is extended by 65,536 +0
    entries (no ``where`` on the row)."""
    values = output_values(exp_table, xv.device)
    slot = _cached(exp_table, xv.device)
    if "masked" not in slot:  # None: the table's output at -inf is +0 already
        zero = int(bits32(values[neg_inf : neg_inf + 1])) == 0
        slot["masked"] = None if zero else torch.cat([values, torch.zeros_like(values)])
    if slot["masked"] is None:
        return values, d
    return slot["masked"], d | ((xv == -torch.inf).to(torch.int32) << 16)


def _rows(x, name: str = "x") -> torch.Tensor:
    check_f32(x, name)
    n = check_rows(x, name)
    return x.reshape(-1, n)  # (..., n) -> (R, n)


def softmax_f32(x: torch.Tensor, exp_table, recip_table, mode: str = "direct") -> torch.Tensor:
    """Softmax over the last axis (numerics §4) of float32 x (..., n) on x's device: x is
    rounded to FP16 (RNE) at the op boundary; returns float32 of x's shape holding the FP16
    results. Bit-identical to :func:`hw_sim.softmax_f32`."""
    check_mode(mode)
    _check_fits(exp_table, "exp", mode)
    _check_fits(recip_table, "reciprocal", mode)
    check_dtypes("softmax", "fp16", exp_table=exp_table, reciprocal_table=recip_table)
    rows = _rows(x)
    xv = grid16(rows)  # RNE16 at the op boundary
    m = xv.amax(-1)  # m = max(x); a NaN propagates
    bad = torch.isnan(m) | (m == -torch.inf)  # a NaN in the row, or only -inf
    m = select32(m == 0, torch.zeros_like(m), m)  # a zero maximum is +0 (as hw_sim's)
    d = round16(xv - m[:, None])  # d_i = RNE16(x_i - m)
    e = lookup(*_exp_lut(exp_table, xv, d))  # e_i = exp_table(d_i), +0 where x_i = -inf
    s = row_sums(e)  # sequential FP32 sum
    r = inverse(s, recip_table, mode, False)
    r = r.masked_fill(bad, torch.nan)  # a bad row: NaN throughout
    return exact16(e * r[:, None]).reshape(x.shape)  # RNE16(e_i * r), exact product


def _weight_values(weight, n: int, device) -> torch.Tensor:
    if not isinstance(weight, torch.Tensor) or weight.dtype not in (torch.float16, torch.float32):
        got = weight.dtype if isinstance(weight, torch.Tensor) else type(weight).__name__
        raise SimInputError(f"weight: expected a float16 or float32 torch tensor, got {got}")
    if tuple(weight.shape) != (n,):
        raise SimInputError(
            f"weight: shape {tuple(weight.shape)} does not match the row length {n} (need ({n},))"
        )
    if weight.device != device:
        raise SimInputError(f"weight: on {weight.device}, x is on {device}")
    return grid16(weight.float())  # FP16 values (float16 -> float32 is exact)


def prescale_shift(rows: torch.Tensor) -> torch.Tensor:
    """Each row's prescale exponent s (numerics §4.1; :func:`nli.prescale.prescale_exponents`)
    -> int32[R]: m = the largest |x_i| over the row's finite values (0 if none); s = 0 if
    m < 65520, else E(m) - 14 with E(m) from m's FP32 exponent field (m is then normal)."""
    a = rows.abs().nan_to_num(nan=0.0, posinf=0.0)  # inf and NaN left out
    m = a.amax(-1)
    e = (bits32(m) >> 23) - 127 - RMSNORM_PRESCALE_TOP
    return torch.where(m >= FP16_OVERFLOW, e, 0).to(torch.int32)


def rmsnorm_f32(
    x: torch.Tensor,
    weight: torch.Tensor,
    eps,
    rsqrt_table,
    mode: str = "direct",
    rmsnorm_input: str = "scaled",
) -> torch.Tensor:
    """RMSNorm over the last axis (numerics §4) of float32 x (..., n) on x's device, rounded to
    FP16 (RNE) at the op boundary; weight: float16 or float32 tensor (n,) on the same device
    (float32 is rounded RNE16 too); eps a finite real (RNE32). ``rmsnorm_input`` (§4.1):
    'scaled' (default) first multiplies a row whose largest finite |x_i| is 65520 or more by
    2^-s (and uses eps 2^(-2s)), 'plain' is RNE16 alone. Returns float32 of x's shape holding
    the FP16 results. Bit-identical to :func:`hw_sim.rmsnorm_f32`.

    The prescale in float32 (hw_sim's argument): ``x_i * 2^-s`` is exact unless it is an FP32
    subnormal, which RNE16s to a zero of its sign either way; ``2^-s`` (1 <= s <= 113) is a
    normal FP32 built from bits. ``eps 2^(-2s)`` is ``(eps 2^-s) 2^-s``, two float32 products,
    exact whenever the result is an FP32 normal; otherwise it lies below 2^-126 while the
    row's ``RNE32(q / n)`` is at least 2^28 / n (its largest |x_i 2^-s| is >= 2^14), so it is
    far below that value's half-ulp and the sum rounds to that value whatever the tiny term."""
    check_mode(mode)
    check_rmsnorm_input(rmsnorm_input)
    _check_fits(rsqrt_table, "rsqrt", mode)
    check_dtypes("rmsnorm", "fp16", rsqrt_table=rsqrt_table)
    eps32 = check_eps(eps)
    rows = _rows(x)
    n = rows.shape[1]
    wv = _weight_values(weight, n, x.device)
    eps_t = torch.tensor(float(eps32), dtype=torch.float32, device=x.device)
    if rmsnorm_input == "scaled":
        s = prescale_shift(rows)
        p2 = f32((127 - s) << 23)  # 2^-s, exact; 1 where s = 0
        xv = grid16(rows * p2[:, None])  # RNE16(x_i 2^-s) at the op boundary
        eps_r = select32(s == 0, eps_t.expand_as(p2), eps_t * p2 * p2)  # eps 2^(-2s)
    else:
        xv = grid16(rows)  # RNE16 at the op boundary
        eps_r = eps_t.expand(rows.shape[0])
    q = row_sums(xv * xv)  # squares exact in FP32
    p = q * torch.tensor(_inv(n), dtype=torch.float32, device=x.device)  # RNE32(q / n)
    v = p + eps_r  # RNE32(p + eps)
    if eps32 != 0 and abs(eps32) < np.finfo(np.float32).tiny:  # a subnormal eps
        v = select32(bits32(p) == 0, eps_r, v)
    r = inverse(v, rsqrt_table, mode, True)
    h = grid16(xv * r[:, None])  # RNE16(x_i * r)
    return exact16(h * wv).reshape(x.shape)  # RNE16(h_i * w_i); (R, n) -> (..., n)
