"""The op sets a substituted model runs on: ``Fp16Ops`` / ``Bf16Ops`` (the ops correctly rounded
to FP16 / BF16), ``UnitOps`` (the simulated NLI unit, bit-accurate; numba or pure-torch backend) and
``RoutedOps`` (each op to its own op set). What each variant computes is described in
:mod:`engine.substitution`, which builds them.
"""

from __future__ import annotations

import numpy as np
import torch

from nli.formats import BACKENDS, DTYPES, INVERSE_FUNCTIONS, RMSNORM_INPUTS
from nli.prescale import prescale_exponents

from .model import REF_OPS, OpSet


# ----------------------------------------------------------------------------- conversions
def fp16_bits(x: torch.Tensor) -> np.ndarray:
    """float32 tensor (any shape) -> uint16 numpy array of RNE16(x) bit patterns (a view of a
    fresh float16 tensor; torch's float -> half conversion is RNE with overflow to inf)."""
    return x.detach().to(torch.float16).contiguous().numpy().view(np.uint16)


def from_fp16(y: np.ndarray) -> torch.Tensor:
    """float16 numpy array -> float32 tensor of the same shape (exact)."""
    return torch.from_numpy(y).float()


def round_f64_to_f16(y: torch.Tensor) -> torch.Tensor:
    """float64 tensor -> float16 tensor, one RNE rounding (numpy's direct conversion)."""
    return torch.from_numpy(y.detach().contiguous().numpy().astype(np.float16))


def bf16_bits(x: torch.Tensor) -> np.ndarray:
    """float32 tensor (any shape, any device) -> uint16 numpy array of RNE_bf16(x) bit patterns
    (integer rounding of the FP32 pattern, NaN -> 0x7fc0; :func:`nli.grid.f32_to_bf16_bits`)."""
    from nli.grid import f32_to_bf16_bits

    return f32_to_bf16_bits(x.detach().float().cpu().contiguous().numpy())


def from_bf16(b: np.ndarray) -> torch.Tensor:
    """uint16 BF16 bit patterns -> float32 tensor of the same shape (exact: the top half of the
    FP32 pattern)."""
    return torch.from_numpy((b.astype(np.uint32) << np.uint32(16)).view(np.float32))


def round_f64_to_bf16(y: np.ndarray) -> torch.Tensor:
    """float64 array -> float32 tensor holding RNE_bf16(y), rounded once
    (:func:`nli.grid.f64_to_bf16_bits`)."""
    from nli.grid import f64_to_bf16_bits

    return from_bf16(f64_to_bf16_bits(y))


def check_dtype(dtype) -> str:
    """``dtype`` must be one of nli.formats.DTYPES (numerics §13); returns it."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    return dtype


# ----------------------------------------------------------------------------- backends
def check_rmsnorm_input(rmsnorm_input) -> str:
    """``rmsnorm_input`` must be one of RMSNORM_INPUTS (numerics §4.1); returns it."""
    if not isinstance(rmsnorm_input, str) or rmsnorm_input not in RMSNORM_INPUTS:
        raise ValueError(
            f"rmsnorm_input must be one of {', '.join(RMSNORM_INPUTS)}, got {rmsnorm_input!r}"
        )
    return rmsnorm_input


class Fp16Ops(OpSet):
    """Correctly rounded FP16 ops (see module docstring for exactly what is rounded).

    ``rmsnorm_input``: 'scaled' (default) gives RMSNorm the unit's row prescale (numerics §4.1),
    'plain' rounds its input to FP16 alone."""

    name = "fp16"

    def __init__(self, rmsnorm_input: str = "scaled"):
        self.rmsnorm_input = check_rmsnorm_input(rmsnorm_input)

    def act(self, x, fn):
        from nli.functions import get_function

        x16 = x.detach().to(torch.float16).contiguous().numpy()  # RNE16 of the input
        y = get_function(fn)(x16.astype(np.float64))  # the float64 reference (nli.functions)
        y = np.where(np.isneginf(x16), -0.0, y)  # the limit at -inf (x * sigmoid(x): -0), not NaN
        return torch.from_numpy(y.astype(np.float16)).float()  # one RNE rounding

    def rmsnorm(self, x, weight, eps):
        eps32 = float(np.float32(eps))
        if self.rmsnorm_input == "scaled":
            s = prescale_exponents(x.detach().float().cpu().numpy())[..., None]  # (..., 1)
            p = torch.from_numpy(np.ldexp(np.float32(1), -s))  # 2^-s, float32, exact
            x64 = (x.detach().float() * p).to(torch.float16).double()  # RNE16(x_i 2^-s)
            eps64 = torch.from_numpy(np.ldexp(eps32, -2 * s))  # eps 2^(-2s), float64, exact
        else:
            x64, eps64 = x.detach().to(torch.float16).double(), eps32
        w64 = weight.detach().to(torch.float16).double()
        r = torch.rsqrt(x64.pow(2).mean(-1, keepdim=True) + eps64)
        return round_f64_to_f16(x64 * r * w64).float()

    def softmax(self, x):
        x64 = x.detach().to(torch.float16).double()
        return round_f64_to_f16(torch.softmax(x64, dim=-1)).float()


class Bf16Ops(OpSet):
    """Correctly rounded BF16 ops: the exact op on the BF16-rounded inputs (RNE_bf16 of the FP32
    activations and of RMSNorm's weight, as a BF16 deployment receives them), evaluated in
    float64 and rounded to BF16 once. ``bf16`` vs ``ref`` is the BF16 format's effect, ``nli``
    with bf16 tables vs ``bf16`` the approximation's. No RMSNorm prescale: BF16 has FP32's
    exponent range (numerics §13), and every BF16 square is finite in float64."""

    name = "bf16"

    @staticmethod
    def _in64(x: torch.Tensor) -> np.ndarray:
        return from_bf16(bf16_bits(x)).numpy().astype(np.float64)  # RNE_bf16, exact in float64

    def act(self, x, fn):
        from nli.functions import get_function

        x64 = self._in64(x)
        with np.errstate(all="ignore"):
            y = get_function(fn)(x64)  # the float64 reference (nli.functions)
        y = np.where(np.isneginf(x64), -0.0, y)  # the limit at -inf, as Fp16Ops
        return round_f64_to_bf16(y).to(x.device)

    def rmsnorm(self, x, weight, eps):
        x64 = self._in64(x)
        w64 = self._in64(weight)
        with np.errstate(all="ignore"):
            r = 1.0 / np.sqrt(np.mean(x64 * x64, axis=-1, keepdims=True) + float(np.float32(eps)))
            y = x64 * r * w64
        return round_f64_to_bf16(y).to(x.device)

    def softmax(self, x):
        x64 = torch.from_numpy(self._in64(x))
        return round_f64_to_bf16(torch.softmax(x64, dim=-1).numpy()).to(x.device)


class UnitOps(OpSet):
    """The three ops on the simulated NLI unit, bit-accurate.

    ``tables``: {activation, "exp", "reciprocal", "rsqrt"} -> nli Table (only those
    the used ops need); ``reciprocal_mode``: 'reduced' or 'direct' (numerics §5).
    ``backend`` (nli.formats.BACKENDS, or 'auto'): ``numba`` runs hw_sim on the CPU (a tensor
    on another device goes there and back); ``torch`` runs :mod:`engine.torch_unit` /
    :mod:`engine.torch_ops` on the tensor's own device (bit-identical); ``auto`` picks numba
    for CPU tensors and torch otherwise, per call.
    With numba, ``fused=True`` runs hw_sim's float32 entry points (``run_elementwise_f32``,
    ``softmax_f32``, ``rmsnorm_f32``: RNE16 at the op boundary, one pass);
    ``fused=False`` converts to float16 and calls hw_sim's FP16 functions (the
    same kernels, with the float16 copies; RMSNorm's prescaled rows go in groups of
    equal ``s``, each with its ``eps 2^(-2s)``). Softmax's and RMSNorm's tables are
    checked against their role and ``reciprocal_mode`` here, before any call.
    ``rmsnorm_input``: 'scaled' (the row prescale, numerics §4.1) or 'plain'.
    ``dtype`` (numerics §13): 'fp16' or 'bf16', the unit's format; every table must have it.
    bf16 rounds RNE_bf16 at the op boundary and has no RMSNorm prescale; it runs hw_sim's bf16
    entry points (numba) or :mod:`engine.torch_unit` / :mod:`engine.torch_ops_bf16` (torch).
    """

    def __init__(
        self,
        tables: dict,
        reciprocal_mode: str = "reduced",
        name: str = "nli",
        fused: bool = True,
        rmsnorm_input: str = "scaled",
        backend: str = "auto",
        dtype: str = "fp16",
    ):
        from nli.unit_checks import check_dtypes, check_table_fits

        self.backend = check_backend(backend)
        self.dtype = check_dtype(dtype)
        self._hw = None  # hw_sim, imported on first numba call: torch and ref need no numba
        for f, t in tables.items():
            if f in ("exp", *INVERSE_FUNCTIONS):
                check_table_fits(t, f, f"{f} table", reciprocal_mode)
            check_dtypes(name, dtype, **{f"{f}_table": t})
        self.fused = fused
        self.rmsnorm_input = check_rmsnorm_input(rmsnorm_input)
        self.tables = dict(tables)
        self.reciprocal_mode = reciprocal_mode
        self.name = name
        self._w16: dict = {}  # id(weight) -> (version, FP16 bits, weight)

    def _torch(self, x: torch.Tensor) -> bool:
        """Whether this call runs on the torch backend."""
        return self.backend == "torch" or (self.backend == "auto" and x.device.type != "cpu")

    @property
    def hw(self):
        if self._hw is None:
            import hw_sim

            self._hw = hw_sim
        return self._hw

    def _weight_bits(self, w: torch.Tensor) -> np.ndarray:
        got = self._w16.get(id(w))
        if got is None or got[0] != w._version or got[2] is not w:
            bits = bf16_bits(w) if self.dtype == "bf16" else fp16_bits(w.cpu())
            got = (w._version, bits, w)
            self._w16[id(w)] = got
        return got[1]

    @staticmethod
    def _f32(x: torch.Tensor) -> np.ndarray:
        return x.detach().float().cpu().contiguous().numpy()

    def act(self, x, fn):
        if self._torch(x):
            from .torch_unit import run_elementwise_f32

            return run_elementwise_f32(self.tables[fn], x.detach().float())
        if self.fused:  # rounds to the table's dtype at the op boundary
            y = torch.from_numpy(self.hw.run_elementwise_f32(self.tables[fn], self._f32(x)))
        elif self.dtype == "bf16":
            y = from_bf16(self.hw.run_elementwise(self.tables[fn], bf16_bits(x)))
        else:
            y = from_fp16(self.hw.run_elementwise(self.tables[fn], fp16_bits(x.cpu())))
        return y.to(x.device)

    def rmsnorm(self, x, weight, eps):
        if self._torch(x) and self.dtype == "bf16":
            from .torch_ops_bf16 import rmsnorm_bf16_f32

            return rmsnorm_bf16_f32(
                x.detach().float(),
                weight.detach().float(),
                float(eps),
                self.tables["rsqrt"],
                self.reciprocal_mode,
            )
        if self._torch(x):
            from .torch_ops import rmsnorm_f32

            return rmsnorm_f32(
                x.detach().float(),
                weight.detach().float(),
                float(eps),
                self.tables["rsqrt"],
                self.reciprocal_mode,
                self.rmsnorm_input,
            )
        w = self._weight_bits(weight)
        t, mode = self.tables["rsqrt"], self.reciprocal_mode
        if self.dtype == "bf16":
            if self.fused:
                y = torch.from_numpy(self.hw.rmsnorm_bf16_f32(self._f32(x), w, float(eps), t, mode))
            else:
                y = from_bf16(self.hw.rmsnorm_bf16(bf16_bits(x), w, float(eps), t, mode))
            return y.to(x.device)
        if self.fused:
            y = torch.from_numpy(
                self.hw.rmsnorm_f32(self._f32(x), w, float(eps), t, mode, self.rmsnorm_input)
            )
            return y.to(x.device)
        x32 = self._f32(x)
        s = prescale_exponents(x32) if self.rmsnorm_input == "scaled" else None
        if s is None or not s.any():
            return from_fp16(self.hw.rmsnorm(fp16_bits(x.cpu()), w, float(eps), t, mode)).to(
                x.device
            )
        rows, s = x32.reshape(-1, x32.shape[-1]), s.reshape(-1)  # (..., n) -> (R, n)
        out = np.empty(rows.shape, np.float16)
        for k in np.unique(s):  # rows of one exponent share eps 2^(-2k)
            sel = s == k
            x16 = (rows[sel] * np.float32(2.0 ** -int(k))).astype(np.float16)  # RNE16(x 2^-k)
            eps_k = float(np.float32(eps)) * 2.0 ** (-2 * int(k))  # rounded to FP32 by hw_sim:
            out[sel] = self.hw.rmsnorm(x16, w, eps_k, t, mode)  # numerics §4.1, same bits
        return from_fp16(out.reshape(x32.shape)).to(x.device)  # (R, n) -> (..., n)

    def softmax(self, x):
        if self._torch(x) and self.dtype == "bf16":
            from .torch_ops_bf16 import softmax_bf16_f32

            return softmax_bf16_f32(
                x.detach().float(),
                self.tables["exp"],
                self.tables["reciprocal"],
                self.reciprocal_mode,
            )
        if self._torch(x):
            from .torch_ops import softmax_f32

            return softmax_f32(
                x.detach().float(),
                self.tables["exp"],
                self.tables["reciprocal"],
                self.reciprocal_mode,
            )
        if self.dtype == "bf16":
            e, r, mode = self.tables["exp"], self.tables["reciprocal"], self.reciprocal_mode
            if self.fused:
                y = torch.from_numpy(self.hw.softmax_bf16_f32(self._f32(x), e, r, mode))
            else:
                y = from_bf16(self.hw.softmax_bf16(bf16_bits(x), e, r, mode))
            return y.to(x.device)
        if self.fused:
            y = torch.from_numpy(
                self.hw.softmax_f32(
                    self._f32(x),
                    self.tables["exp"],
                    self.tables["reciprocal"],
                    self.reciprocal_mode,
                )
            )
        else:
            y = from_fp16(
                self.hw.softmax(
                    fp16_bits(x.cpu()),
                    self.tables["exp"],
                    self.tables["reciprocal"],
                    self.reciprocal_mode,
                )
            )
        return y.to(x.device)


def check_backend(backend) -> str:
    """``backend`` must be 'auto' or one of nli.formats.BACKENDS."""
    if backend != "auto" and backend not in BACKENDS:
        raise ValueError(f"backend must be auto, {' or '.join(BACKENDS)}, got {backend!r}")
    return backend


class RoutedOps(OpSet):
    """Sends each op to its backend: ``routes`` {op name -> OpSet}; unnamed ops go to
    ``REF_OPS``."""

    def __init__(self, routes: dict, name: str):
        self.routes = dict(routes)
        self.name = name

    def act(self, x, fn):
        return self.routes.get("act", REF_OPS).act(x, fn)

    def rmsnorm(self, x, weight, eps):
        return self.routes.get("rmsnorm", REF_OPS).rmsnorm(x, weight, eps)

    def softmax(self, x):
        return self.routes.get("softmax", REF_OPS).softmax(x)
