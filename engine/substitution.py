"""Op variants (ref, fp16, nli, published, baseline) and swapping them into a model.

``substitute(model, ops, variant, tables, reciprocal_mode)`` returns a new model
(a deep copy of the module tree sharing the weight tensors) whose named ops
run on the chosen variant; the others stay on the FP32 torch reference.

Variants (every one takes and returns float32 torch tensors):

* ``ref``: FP32 torch (:data:`engine.model.REF_OPS`).
* ``fp16``: correctly rounded FP16 ops with the unit's I/O format. The op's
  inputs (and RMSNorm's weight) are rounded to FP16 (RNE), exactly as the
  unit receives them; the op is evaluated on those values in float64
  (relative error ~1e-16, far below FP16's half-ulp of 2^-11) and its output
  is rounded to FP16 once (numpy's direct float64 -> float16 RNE; torch's
  would round through float32 first). Nothing in between is rounded, so
  ``fp16`` vs ``ref`` is the format's effect and ``nli`` vs ``fp16`` the
  approximation's. -inf softmax inputs give exact zeros. RMSNorm's rows get
  the same row prescale as the unit's (numerics §4.1) unless
  ``rmsnorm_input='plain'``.
* ``nli``: bit-accurate through :mod:`hw_sim` with the default tables of
  :func:`nli.default_table` (silu and exp ``direct``; reciprocal and rsqrt in
  ``reciprocal_mode``). Inputs are rounded to FP16 (RNE, torch's float32 ->
  float16 conversion), the unit returns FP16, which is cast to float32 for the
  rest of the model. The attention mask's -inf goes in as -inf (numerics §4: e = +0).
  RMSNorm's FP32 rows enter with the row prescale of numerics §4.1
  (``rmsnorm_input='scaled'``, the default of every unit variant) or by RNE16
  alone (``'plain'``: a value of 65520 or more becomes inf).
  With ``backend='torch'`` (the default for tensors off the CPU) the same bits come
  from the pure-torch datapath of :mod:`engine.torch_unit` on the tensors' own device.
* ``baseline:NAME``: the same unit with the baseline tables of
  :mod:`nli.baselines` (``uniform``, ``curvature``, ``nnlut``).
* ``published``: the same unit with the tables built from NLI's own
  published cutpoints (:mod:`nli.published`) for silu, exp and, in ``direct``
  mode, reciprocal and rsqrt; NLI publishes no range-reduced tables, so in
  ``reduced`` mode reciprocal and rsqrt are our shipped reduced defaults.
"""

from __future__ import annotations

import copy

import numpy as np
import torch

from nli.baselines import BASELINES

# OP_TABLES: the tables each op needs; INVERSE_FUNCTIONS: those whose domain the reciprocal mode
# decides
from nli.formats import (
    ACTIVATIONS,
    BACKENDS,
    INVERSE_FUNCTIONS,
    OP_ALIASES,
    OPS,
    RMSNORM_INPUTS,
    UNIT_FUNCTIONS,
    op_functions,
)
from nli.formats import MODES as RECIPROCAL_MODES
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
    """

    def __init__(
        self,
        tables: dict,
        reciprocal_mode: str = "reduced",
        name: str = "nli",
        fused: bool = True,
        rmsnorm_input: str = "scaled",
        backend: str = "auto",
    ):
        from nli.unit_checks import check_table_fits

        self.backend = check_backend(backend)
        self._hw = None  # hw_sim, imported on first numba call: torch and ref need no numba
        for f, t in tables.items():
            if f in ("exp", *INVERSE_FUNCTIONS):
                check_table_fits(t, f, f"{f} table", reciprocal_mode)
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
            got = (w._version, fp16_bits(w.cpu()), w)
            self._w16[id(w)] = got
        return got[1]

    @staticmethod
    def _f32(x: torch.Tensor) -> np.ndarray:
        return x.detach().float().cpu().contiguous().numpy()

    def act(self, x, fn):
        if self._torch(x):
            from .torch_unit import run_elementwise_f32

            return run_elementwise_f32(self.tables[fn], x.detach().float())
        if self.fused:
            y = torch.from_numpy(self.hw.run_elementwise_f32(self.tables[fn], self._f32(x)))
        else:
            y = from_fp16(self.hw.run_elementwise(self.tables[fn], fp16_bits(x.cpu())))
        return y.to(x.device)

    def rmsnorm(self, x, weight, eps):
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
        if self._torch(x):
            from .torch_ops import softmax_f32

            return softmax_f32(
                x.detach().float(),
                self.tables["exp"],
                self.tables["reciprocal"],
                self.reciprocal_mode,
            )
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


# ----------------------------------------------------------------------------- tables
def parse_ops(ops) -> tuple[str, ...]:
    """'act,softmax' or an iterable of op names -> validated tuple of roles (no duplicates);
    the old name ``silu`` means ``act``."""
    if isinstance(ops, str):
        ops = [o.strip() for o in ops.split(",") if o.strip()]
    ops = tuple(dict.fromkeys(OP_ALIASES.get(o, o) for o in ops))
    bad = [o for o in ops if o not in OPS]
    if bad:
        raise ValueError(f"unknown op(s) {', '.join(map(repr, bad))}: choose from {', '.join(OPS)}")
    return ops


def parse_variant(variant: str) -> tuple[str, str | None]:
    """'ref' | 'fp16' | 'nli' | 'published' | 'baseline:NAME' -> (kind, baseline name or None)."""
    if variant in ("ref", "fp16", "nli", "published"):
        return variant, None
    if isinstance(variant, str) and variant.startswith("baseline:"):
        name = variant.split(":", 1)[1]
        if name not in BASELINES:
            raise ValueError(f"unknown baseline {name!r}: choose from {', '.join(BASELINES)}")
        return "baseline", name
    raise ValueError(
        f"variant must be ref, fp16, nli, published or baseline:NAME ({'|'.join(BASELINES)}), "
        f"got {variant!r}"
    )


def table_domain_mode(function: str, reciprocal_mode: str) -> str:
    """The shipped-table mode of ``function``: reciprocal/rsqrt follow ``reciprocal_mode``."""
    return reciprocal_mode if function in INVERSE_FUNCTIONS else "direct"


def default_tables(functions, reciprocal_mode: str = "reduced") -> dict:
    """{function: the shipped default Table} for the nli variant."""
    from nli.defaults import default_table

    return {f: default_table(f, table_domain_mode(f, reciprocal_mode)) for f in functions}


def baseline_tables(kind: str, functions, reciprocal_mode: str = "reduced") -> dict:
    """{function: the ``kind`` baseline Table} (uniform | curvature | nnlut) from nli.baselines."""
    from nli.baselines import baseline_table
    from nli.functions import get_function

    return {
        f: baseline_table(kind, f, get_function(f).domains[table_domain_mode(f, reciprocal_mode)])
        for f in functions
    }


def published_tables(functions, reciprocal_mode: str = "reduced") -> dict:
    """{function: Table} from NLI's published cutpoints; reduced reciprocal/rsqrt: our defaults."""
    from nli.published import published_table

    out = {}
    for f in functions:
        if f in INVERSE_FUNCTIONS and reciprocal_mode == "reduced":
            out.update(default_tables([f], reciprocal_mode))
        else:
            try:
                out[f] = published_table(f)
            except KeyError as e:  # e.g. gelu_tanh: NLI publishes no cutpoints for it
                raise ValueError(f"the published variant cannot run here: {e.args[0]}") from None
    return out


def needed_functions(ops, activation: str = "silu") -> list[str]:
    return op_functions(ops, activation)


# ----------------------------------------------------------------------------- public
def share_weights_copy(model: torch.nn.Module) -> torch.nn.Module:
    """A deep copy of the module tree whose parameters and buffers are the original tensors."""
    memo = {id(t): t for t in list(model.parameters()) + list(model.buffers())}
    return copy.deepcopy(model, memo)


def make_ops(
    ops=OPS,
    variant: str = "nli",
    tables: dict | None = None,
    reciprocal_mode: str = "reduced",
    activation: str = "silu",
    rmsnorm_input: str = "scaled",
    backend: str = "auto",
) -> OpSet:
    """The OpSet for ``variant`` on ``ops`` (see :func:`substitute`) in a model whose activation is
    ``activation``; the unit's ops run on ``backend`` (:class:`UnitOps`)."""
    ops = parse_ops(ops)
    check_backend(backend)
    kind, base = parse_variant(variant)
    check_rmsnorm_input(rmsnorm_input)
    if reciprocal_mode not in RECIPROCAL_MODES:
        raise ValueError(
            f"reciprocal_mode must be one of {', '.join(RECIPROCAL_MODES)}, got {reciprocal_mode!r}"
        )
    if tables and kind in ("ref", "fp16"):
        raise ValueError(
            f"tables are only used by the nli, published and baseline variants, not {variant!r}"
        )
    if kind == "ref":
        return REF_OPS
    if kind == "fp16":
        impl = Fp16Ops(rmsnorm_input)
    else:
        need = needed_functions(ops, activation)
        given = dict(tables or {})
        extra = [f for f in given if f not in UNIT_FUNCTIONS]
        if extra:
            raise ValueError(
                f"tables: unknown function(s) {extra}; "
                f"expected keys among {', '.join(UNIT_FUNCTIONS)}"
            )
        missing = [f for f in need if f not in given]
        if missing:
            given.update(
                default_tables(missing, reciprocal_mode)
                if kind == "nli"
                else published_tables(missing, reciprocal_mode)
                if kind == "published"
                else baseline_tables(base, missing, reciprocal_mode)
            )
        for f in need:
            if getattr(given[f], "function", None) != f:
                raise ValueError(f"tables[{f!r}] is not a {f} table")
        impl = UnitOps(
            given, reciprocal_mode, name=variant, rmsnorm_input=rmsnorm_input, backend=backend
        )
    label = f"{impl.name}[{','.join(ops)}]" + (
        f"/{reciprocal_mode}" if isinstance(impl, UnitOps) else ""
    )
    if "rmsnorm" in ops and rmsnorm_input != "scaled":
        label += f"/rmsnorm-{rmsnorm_input}"
    return RoutedOps({op: impl for op in ops}, name=label)


def substitute(
    model,
    ops=OPS,
    variant: str = "nli",
    tables: dict | None = None,
    reciprocal_mode: str = "reduced",
    rmsnorm_input: str = "scaled",
    backend: str = "auto",
):
    """A NEW model whose ops named in ``ops`` run on ``variant``; ``model`` is not modified.

    ops: iterable of 'act' | 'rmsnorm' | 'softmax' (or a comma-separated string; 'silu' is an
    alias of 'act', the model's own activation).
    variant: 'ref' | 'fp16' | 'nli' | 'published' | 'baseline:uniform|curvature|nnlut'.
    tables: optional {function: Table} overriding the default/baseline tables
    (functions: the activation, exp, reciprocal, rsqrt). reciprocal_mode: 'reduced' | 'direct'.
    rmsnorm_input: 'scaled' (RMSNorm's row prescale, numerics §4.1; the default of the fp16 and
    unit variants) | 'plain' (RNE16 alone).
    backend: 'auto' | 'numba' | 'torch' (nli.formats.BACKENDS): where the unit's ops run, see
    :class:`UnitOps` (auto: numba for CPU tensors, torch on other devices).
    The copy shares the weight tensors with ``model``.
    """
    if not hasattr(model, "set_ops"):
        raise TypeError(f"model must be an engine Llama (with set_ops), got {type(model).__name__}")
    opset = make_ops(
        ops,
        variant,
        tables,
        reciprocal_mode,
        model_activation(model),
        rmsnorm_input=rmsnorm_input,
        backend=backend,
    )
    return share_weights_copy(model).set_ops(opset)


def model_activation(model) -> str:
    """The activation of ``model``'s FFNs (its config's, default silu)."""
    act = getattr(getattr(model, "cfg", None), "activation", "silu")
    if act not in ACTIVATIONS:
        raise ValueError(f"model activation {act!r} is not one of {', '.join(ACTIVATIONS)}")
    return act
