"""Fused float32-in/float32-out kernels for the NLI unit's ops, bit-identical to hw_sim.

The model keeps activations in float32. Going through hw_sim's public API
costs a float32 -> float16 pass, the unit, and a float16 -> float32 pass per
op; these kernels fuse the rounding of the input (RNE16), the unit and the
decoding of its FP16 output into one parallel Numba pass that releases the
GIL. They are built from hw_sim's own pieces: the table's 65,536-entry output
LUT (:func:`hw_sim.output_lut`, evaluated by hw_sim's exact datapath kernel),
hw_sim's rounding primitives (:mod:`hw_sim.fp`), and hw_sim's section-5
:func:`hw_sim.reciprocal` / :func:`hw_sim.rsqrt` for the one value per row.
What remains here is the composition of spec section 4 (max, sums,
products), mirroring ``hw_sim/ops.py`` step by step;
tests/test_substitute.py checks every kernel against hw_sim's public
functions bit for bit (uint16 views) on the same FP16 inputs.

Every output value is an FP16 value held in float32 (exact).
"""
from __future__ import annotations

from fractions import Fraction

import numba
import numpy as np
from numba import prange

import hw_sim
from hw_sim.fp import f16_decode_table, rne16_f32, rne16_f64, rne32_f64
from hw_sim.inputs import check_eps, check_mode, check_table
from nli.grid import rne32

FP16_NEG_INF = 0xFC00
FP16_NAN = 0x7E00
CHUNK = 1 << 14  # elements per parallel task of the elementwise kernel

_DEC32 = f16_decode_table(np.float32)  # float32[65536]: the value of every FP16 encoding


# ----------------------------------------------------------------------------- kernels
@numba.njit(cache=True, nogil=True, parallel=True)
def _elementwise(x, out, outs, dec):
    """x float32[N] -> out float32[N] = decode(outs[RNE16(x)])."""
    n = x.size
    for c in prange((n + CHUNK - 1) // CHUNK):
        for j in range(c * CHUNK, min(n, (c + 1) * CHUNK)):
            out[j] = dec[outs[rne16_f32(x[j])]]


@numba.njit(cache=True, nogil=True, parallel=True)
def _softmax_exp(x, out, s, length, exp_outs, dec):
    """Softmax steps 1-3 per row of x float32[R, n] (inputs RNE16'd here): out[r, i] = e_i for
    i < length[r], s[r] = the sequential FP32 sum. length[r] = the row without its trailing
    run of exact -inf (a causal mask's), whose e_i = +0 are not stored; -1 marks a row
    that is all NaN in the output (it has a NaN, or every input rounds to -inf)."""
    for r in prange(x.shape[0]):
        row = x[r]
        o = out[r]
        n = row.size
        L = n
        while L > 0 and row[L - 1] == -np.inf:
            L -= 1
        m = np.float32(-np.inf)
        nan = False
        for i in range(L):
            v = row[i]
            nan |= v != v
            m = v if v > m else m
        mb = rne16_f32(m)                      # RNE16 is monotone: max(RNE16(x)) = RNE16(max(x))
        if nan or mb == FP16_NEG_INF:          # a NaN, or every input rounds to -inf
            length[r] = -1
            s[r] = np.float32(np.nan)
            continue
        m64 = np.float64(dec[mb])
        acc = np.float32(0.0)
        for i in range(L):
            xb = rne16_f32(row[i])
            if xb == FP16_NEG_INF:
                e = np.float32(0.0)                                  # e_i = +0
            else:
                e = dec[exp_outs[rne16_f64(np.float64(dec[xb]) - m64)]]
            o[i] = e
            acc = e if i == 0 else acc + e                           # sequential FP32 sum
        if L < n:                              # the trailing e_i = +0: acc + 0 + ... + 0 = acc + 0
            acc = np.float32(0.0) if L == 0 else acc + np.float32(0.0)
        length[r] = L
        s[r] = acc


@numba.njit(cache=True, nogil=True, parallel=True)
def _scale_rows(out, recip, length, dec):
    """Softmax step 4 in place: out[r, i] = RNE16(e_i * r_r); NaN rows (length -1) all NaN."""
    for r in prange(out.shape[0]):
        o = out[r]
        L = length[r]
        if L < 0:
            for i in range(o.size):
                o[i] = dec[FP16_NAN]
            continue
        rf = recip[r]
        for i in range(L):
            o[i] = dec[rne16_f32(o[i] * rf)]
        z = dec[rne16_f32(np.float32(0.0) * rf)]                     # RNE16(+0 * r) for the -inf tail
        for i in range(L, o.size):
            o[i] = z


@numba.njit(cache=True, nogil=True, parallel=True)
def _rms_meansq(x, v, inv_n, eps, dec):
    """RMSNorm steps 1-2 per row of x float32[R, n] (inputs RNE16'd here) -> v float32[R]."""
    for r in prange(x.shape[0]):
        row = x[r]
        q = np.float32(0.0)
        for i in range(row.size):
            xi = dec[rne16_f32(row[i])]
            sq = xi * xi                                             # exact in FP32
            q = sq if i == 0 else q + sq                             # sequential FP32 sum
        v[r] = np.float32(rne32_f64(rne32_f64(np.float64(q) * inv_n) + eps))


@numba.njit(cache=True, nogil=True, parallel=True)
def _rms_scale(x, w, rs, out, dec):
    """RMSNorm step 4: out[r, i] = RNE16(RNE16(x_i * r_r) * w_i); w float32[n] (FP16 values)."""
    for r in prange(x.shape[0]):
        row = x[r]
        o = out[r]
        rf = rs[r]
        for i in range(row.size):
            h = dec[rne16_f32(dec[rne16_f32(row[i])] * rf)]
            o[i] = dec[rne16_f32(h * w[i])]


# ----------------------------------------------------------------------------- wrappers
def _rows(x: np.ndarray, name: str) -> np.ndarray:
    if not isinstance(x, np.ndarray) or x.dtype != np.float32:
        raise TypeError(f"{name}: expected a float32 numpy array, got "
                        f"{x.dtype if isinstance(x, np.ndarray) else type(x).__name__}")
    if x.ndim == 0 or x.shape[-1] == 0:
        raise ValueError(f"{name}: needs a non-empty last axis (rows), got shape {x.shape}")
    return np.ascontiguousarray(x).reshape(-1, x.shape[-1])  # (..., n) -> (R, n)


def elementwise_f32(table, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """The elementwise datapath on RNE16(x): x float32 (any shape) -> float32 of x's shape
    (FP16 values). Same bits as ``hw_sim.run_elementwise(table, x.astype(float16))``."""
    if not isinstance(x, np.ndarray) or x.dtype != np.float32:
        raise TypeError("x: expected a float32 numpy array")
    flat = np.ascontiguousarray(x).reshape(-1)  # x.shape -> (N,)
    res = np.empty_like(flat) if out is None else out.reshape(-1)  # (N,)
    _elementwise(flat, res, hw_sim.output_lut(table), _DEC32)
    return res.reshape(x.shape)  # (N,) -> x.shape


def softmax_f32(x: np.ndarray, exp_table, recip_table, mode: str, out: np.ndarray | None = None) -> np.ndarray:
    """Softmax over the last axis of RNE16(x): x float32 (..., n) -> float32 (..., n).
    Same bits as ``hw_sim.softmax(x.astype(float16), exp_table, recip_table, mode)``."""
    check_table(exp_table, "exp", "exp table")
    check_table(recip_table, "reciprocal", "reciprocal table")
    check_mode(mode)
    rows = _rows(x, "x")
    res = np.empty_like(rows) if out is None else out.reshape(rows.shape)  # (R, n)
    s = np.empty(rows.shape[0], dtype=np.float32)
    length = np.empty(rows.shape[0], dtype=np.int64)
    _softmax_exp(rows, res, s, length, hw_sim.output_lut(exp_table), _DEC32)
    recip = hw_sim.reciprocal(s, recip_table, mode).astype(np.float32)  # [R], section 5
    _scale_rows(res, recip, length, _DEC32)
    return res.reshape(x.shape)  # (R, n) -> (..., n)


def rmsnorm_f32(x: np.ndarray, weight16: np.ndarray, eps: float, rsqrt_table, mode: str,
                out: np.ndarray | None = None) -> np.ndarray:
    """RMSNorm over the last axis of RNE16(x): x float32 (..., n), weight16 float16/uint16 (n,)
    -> float32 (..., n). Same bits as ``hw_sim.rmsnorm(x.astype(float16), weight16, eps, table, mode)``."""
    check_table(rsqrt_table, "rsqrt", "rsqrt table")
    check_mode(mode)
    rows = _rows(x, "x")
    n = rows.shape[1]
    w = np.asarray(weight16)
    if w.dtype not in (np.float16, np.uint16) or w.shape != (n,):
        raise ValueError(f"weight: expected float16/uint16 of shape ({n},), got {w.dtype} {w.shape}")
    w32 = _DEC32[w.view(np.uint16)]  # [n], the FP16 weights' values
    v = np.empty(rows.shape[0], dtype=np.float32)
    _rms_meansq(rows, v, rne32(Fraction(1, n)), float(check_eps(eps)), _DEC32)
    rs = hw_sim.rsqrt(v, rsqrt_table, mode).astype(np.float32)  # [R], section 5
    res = np.empty_like(rows) if out is None else out.reshape(rows.shape)  # (R, n)
    _rms_scale(rows, w32, rs, res, _DEC32)
    return res.reshape(x.shape)  # (R, n) -> (..., n)
