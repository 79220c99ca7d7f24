"""Role modules: a transformers model's activation and RMSNorm modules replaced by modules that
call an :class:`engine.model.OpSet`, and :func:`install_roles`, which installs them.

* **act**: every activation module (``mlp.act_fn``) is replaced by :class:`ActRole`, calling
  ``ops.act(x, fn)`` with the config's activation (:data:`engine.hf_adapter.HF_ACTIVATIONS`).
* **rmsnorm**: every RMSNorm module is replaced by :class:`RMSNormRole` (sharing its weight
  Parameter), calling ``ops.rmsnorm(x, w_eff, eps)`` with the class's own formula
  (:data:`NORM_CLASSES`: ``w`` or Gemma's ``1 + w``).
* **softmax**: every attention module gets an ``ops`` and the model selects the attention
  function of :mod:`engine.hf_attention`.

Each replaced module's formula is checked against the module it replaces on a seeded input
(:data:`FORMULA_RTOL`, :data:`FORMULA_ATOL`), so a module class whose formula differs from the
substituted one is refused instead of silently changing the model.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from nli.formats import ACTIVATIONS

from .hf_attention import ATTENTION_NAME, register_attention
from .model import REF_OPS, OpSet

NORM_CLASSES = {
    "LlamaRMSNorm": ("w", "variance_epsilon"),
    "MistralRMSNorm": ("w", "variance_epsilon"),
    "Qwen2RMSNorm": ("w", "variance_epsilon"),
    "Qwen3RMSNorm": ("w", "variance_epsilon"),
    "Gemma3RMSNorm": ("1+w", "eps"),
}
"""RMSNorm class name -> (weight formula: ``w`` scales by the weight, ``1+w`` by one plus it;
the attribute holding epsilon)."""

FORMULA_RTOL = 1e-5
FORMULA_ATOL = 1e-6
"""Tolerance of the load-time check that a role module computes what the module it replaces
computed (float32, seeded input): it catches a wrong formula, not rounding."""


class ActRole(nn.Module):
    """The activation module: ``ops.act(x, fn)``."""

    def __init__(self, fn: str):
        super().__init__()
        if fn not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {fn!r}")
        self.fn = fn
        self.ops: OpSet = REF_OPS

    def forward(self, x):
        return self.ops.act(x, self.fn).to(x.dtype)

    def extra_repr(self):
        return self.fn


class RMSNormRole(nn.Module):
    """An RMSNorm module of transformers: ``ops.rmsnorm(x, w_eff, eps)`` with the replaced
    class's formula; ``weight`` is the replaced module's Parameter (same state-dict key)."""

    def __init__(self, norm: nn.Module):
        super().__init__()
        cls = type(norm).__name__
        formula, eps_attr = NORM_CLASSES[cls]
        self.weight = norm.weight
        self.eps = float(getattr(norm, eps_attr))
        self.formula = formula
        self.hf_class = cls
        self.ops: OpSet = REF_OPS
        self._eff = None  # (weight version key, 1 + w): the unit converts a weight once

    def effective_weight(self) -> torch.Tensor:
        w = self.weight
        if self.formula == "w":
            return w
        if torch.is_grad_enabled():
            return 1.0 + w.float()
        key = (w._version, w.data_ptr(), w.device)
        if self._eff is None or self._eff[0] != key:
            self._eff = (key, 1.0 + w.detach().float())
        return self._eff[1]

    def forward(self, x):
        return self.ops.rmsnorm(x, self.effective_weight(), self.eps).to(x.dtype)

    def extra_repr(self):
        return f"{self.hf_class}, {self.formula}, eps={self.eps}"


def _activation_classes() -> tuple[type, ...]:
    from transformers.activations import ACT2CLS

    classes = {v[0] if isinstance(v, tuple) else v for v in ACT2CLS.values()}
    classes |= {nn.SiLU, nn.GELU, nn.ReLU, nn.Tanh, nn.Sigmoid}
    return tuple(classes)


def _set_child(root: nn.Module, path: str, new: nn.Module) -> None:
    parent, _, attr = path.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, attr, new)


def _check_same(old: nn.Module, new: nn.Module, width: int, what: str) -> None:
    """``new`` computes what ``old`` did (within FORMULA_RTOL/ATOL) on a seeded float32 input."""
    p = next(old.parameters(), None)
    device = p.device if p is not None else torch.device("cpu")
    if device.type == "meta":
        return
    x = torch.randn(3, width, generator=torch.Generator().manual_seed(0)).to(device) * 3.0
    with torch.no_grad():
        want, got = old(x).float(), new(x).float()
    if not torch.allclose(got, want, rtol=FORMULA_RTOL, atol=FORMULA_ATOL):
        raise ValueError(
            f"{what}: this transformers version's {type(old).__name__} does not compute the "
            "formula the adapter substitutes for it"
        )


def _is_norm(m: nn.Module) -> bool:
    return "norm" in type(m).__name__.lower() and not isinstance(m, RMSNormRole)


def install_roles(hf: nn.Module, activation: str) -> dict:
    """Replace activation and RMSNorm modules by role modules, give each attention module an
    ``ops``, and select the ``nli`` attention function (in place). Returns
    {"act": [paths], "rmsnorm": [paths], "attention": [paths]}; ValueError for a module class
    the adapter cannot substitute."""
    act_classes = _activation_classes()
    acts, norms, attns = [], [], []
    for path, m in hf.named_modules():
        if isinstance(m, act_classes):
            acts.append((path, m))
        elif _is_norm(m):
            if type(m).__name__ not in NORM_CLASSES:
                raise ValueError(
                    f"unsupported norm class {type(m).__name__} (module {path}); supported: "
                    f"{', '.join(NORM_CLASSES)}"
                )
            norms.append((path, m))
        elif type(m).__name__.endswith("Attention") and hasattr(m, "config"):
            attns.append((path, m))
    if not acts:
        raise ValueError(f"{type(hf).__name__}: no activation module to substitute")
    for path, m in acts:
        role = ActRole(activation)
        width = 64
        _check_same(m, role, width, f"{path} ({activation})")
        _set_child(hf, path, role)
    for path, m in norms:
        role = RMSNormRole(m)
        _check_same(m, role, m.weight.shape[-1], path)
        _set_child(hf, path, role)
    for _, m in attns:
        m.ops = REF_OPS
    register_attention()
    hf.set_attn_implementation(ATTENTION_NAME)
    if hf.config._attn_implementation != ATTENTION_NAME:
        raise ValueError(
            f"{type(hf).__name__}: transformers cannot select a registered attention function "
            "for this model"
        )
    return {
        "act": [p for p, _ in acts],
        "rmsnorm": [p for p, _ in norms],
        "attention": [p for p, _ in attns],
    }
