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
* ``bf16``: the same for BF16 (:class:`engine.op_sets.Bf16Ops`): inputs and RMSNorm's weight
  rounded RNE_bf16, the exact op in float64, the output rounded to BF16 once; no prescale.
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

import torch

from nli.baselines import BASELINES

# OP_TABLES: the tables each op needs; INVERSE_FUNCTIONS: those whose domain the reciprocal mode
# decides
from nli.formats import (
    ACTIVATIONS,
    INVERSE_FUNCTIONS,
    OP_ALIASES,
    OPS,
    UNIT_FUNCTIONS,
    op_functions,
)
from nli.formats import MODES as RECIPROCAL_MODES

from .model import REF_OPS, OpSet
from .op_sets import (
    Bf16Ops,
    Fp16Ops,
    RoutedOps,
    UnitOps,
    check_backend,
    check_dtype,
    check_rmsnorm_input,
)


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
    """'ref' | 'fp16' | 'bf16' | 'nli' | 'published' | 'baseline:NAME' -> (kind, baseline name or
    None)."""
    if variant in ("ref", "fp16", "bf16", "nli", "published"):
        return variant, None
    if isinstance(variant, str) and variant.startswith("baseline:"):
        name = variant.split(":", 1)[1]
        if name not in BASELINES:
            raise ValueError(f"unknown baseline {name!r}: choose from {', '.join(BASELINES)}")
        return "baseline", name
    raise ValueError(
        f"variant must be ref, fp16, bf16, nli, published or "
        f"baseline:NAME ({'|'.join(BASELINES)}), got {variant!r}"
    )


def table_domain_mode(function: str, reciprocal_mode: str) -> str:
    """The shipped-table mode of ``function``: reciprocal/rsqrt follow ``reciprocal_mode``."""
    return reciprocal_mode if function in INVERSE_FUNCTIONS else "direct"


def default_tables(functions, reciprocal_mode: str = "reduced", dtype: str = "fp16") -> dict:
    """{function: the shipped default Table of ``dtype``} for the nli variant."""
    from nli.defaults import default_table

    if dtype == "fp16":
        return {f: default_table(f, table_domain_mode(f, reciprocal_mode)) for f in functions}
    return {
        f: default_table(f, table_domain_mode(f, reciprocal_mode), dtype=dtype) for f in functions
    }


def resolve_dtype(variant: str, dtype: str | None) -> str:
    """The unit format of ``variant`` run with ``dtype`` (None: the variant's own). The fp16 and
    bf16 variants are their formats; published and baseline tables exist in fp16 only."""
    kind, _ = parse_variant(variant)
    if dtype is None:
        return "bf16" if kind == "bf16" else "fp16"
    check_dtype(dtype)
    if kind in ("fp16", "bf16") and dtype != kind:
        raise ValueError(
            f"the {kind} variant is the correctly rounded {kind.upper()} op; with dtype {dtype} "
            f"use the {dtype} variant"
        )
    if kind in ("published", "baseline") and dtype != "fp16":
        raise ValueError(
            f"the {variant} variant has fp16 tables only; dtype {dtype} runs ref, bf16 and nli"
        )
    return dtype


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
    dtype: str | None = None,
) -> OpSet:
    """The OpSet for ``variant`` on ``ops`` (see :func:`substitute`) in a model whose activation is
    ``activation``; the unit's ops run on ``backend`` (:class:`UnitOps`) in ``dtype``."""
    ops = parse_ops(ops)
    check_backend(backend)
    kind, base = parse_variant(variant)
    dtype = resolve_dtype(variant, dtype)
    check_rmsnorm_input(rmsnorm_input)
    if reciprocal_mode not in RECIPROCAL_MODES:
        raise ValueError(
            f"reciprocal_mode must be one of {', '.join(RECIPROCAL_MODES)}, got {reciprocal_mode!r}"
        )
    if tables and kind in ("ref", "fp16", "bf16"):
        raise ValueError(
            f"tables are only used by the nli, published and baseline variants, not {variant!r}"
        )
    if kind == "ref":
        return REF_OPS
    if kind == "fp16":
        impl = Fp16Ops(rmsnorm_input)
    elif kind == "bf16":
        impl = Bf16Ops()
    else:
        need = op_functions(ops, activation)
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
                default_tables(missing, reciprocal_mode, dtype)
                if kind == "nli"
                else published_tables(missing, reciprocal_mode)
                if kind == "published"
                else baseline_tables(base, missing, reciprocal_mode)
            )
        for f in need:
            if getattr(given[f], "function", None) != f:
                raise ValueError(f"tables[{f!r}] is not a {f} table")
        impl = UnitOps(
            given,
            reciprocal_mode,
            name=variant,
            rmsnorm_input=rmsnorm_input,
            backend=backend,
            dtype=dtype,
        )
    label = f"{impl.name}[{','.join(ops)}]" + (
        f"/{reciprocal_mode}" if isinstance(impl, UnitOps) else ""
    )
    if isinstance(impl, UnitOps) and dtype != "fp16":
        label += f"/{dtype}"
    if "rmsnorm" in ops and rmsnorm_input != "scaled" and dtype == "fp16":
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
    dtype: str | None = None,
):
    """A NEW model whose ops named in ``ops`` run on ``variant``; ``model`` is not modified.

    ops: iterable of 'act' | 'rmsnorm' | 'softmax' (or a comma-separated string; 'silu' is an
    alias of 'act', the model's own activation).
    variant: 'ref' | 'fp16' | 'bf16' | 'nli' | 'published' | 'baseline:uniform|curvature|nnlut'.
    tables: optional {function: Table} overriding the default/baseline tables
    (functions: the activation, exp, reciprocal, rsqrt). reciprocal_mode: 'reduced' | 'direct'.
    rmsnorm_input: 'scaled' (RMSNorm's row prescale, numerics §4.1; the default of the fp16 and
    unit variants) | 'plain' (RNE16 alone).
    backend: 'auto' | 'numba' | 'torch' (nli.formats.BACKENDS): where the unit's ops run, see
    :class:`UnitOps` (auto: numba for CPU tensors, torch on other devices).
    dtype: None (the variant's own format) | 'fp16' | 'bf16' (numerics §13).
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
        dtype=dtype,
    )
    return share_weights_copy(model).set_ops(opset)


def model_activation(model) -> str:
    """The activation of ``model``'s FFNs (its config's, default silu)."""
    act = getattr(getattr(model, "cfg", None), "activation", "silu")
    if act not in ACTIVATIONS:
        raise ValueError(f"model activation {act!r} is not one of {', '.join(ACTIVATIONS)}")
    return act
