"""Hugging Face causal LMs with their nonlinear ops on an :class:`engine.model.OpSet`.

``load_hf_model(path)`` loads what ``transformers`` loads (a directory with
``config.json``, weights and tokenizer files, or a ``.gguf`` file through
transformers' GGUF loader) and wraps it in :class:`HFCausalLM`, which meets the
engine's model contract (``forward(input_ids) -> float32 logits [B, T, V]``,
``cfg``, ``set_ops``), so ``engine.substitute``, ``nli eval ppl`` and the
experiments run on it unchanged.

The ops are substituted through transformers' own extension points; the rest
of the forward is transformers' code:

* **softmax**: the attention function registered as ``"nli"`` in
  ``transformers.AttentionInterface`` (selected with ``set_attn_implementation``)
  computes eager attention (GQA repeat, the model's scaling and softcapping)
  with ``module.ops.softmax`` on float32 scores; masked scores are -inf, from
  the boolean mask transformers builds (causal, sliding window) through the
  mask function registered under the same name.
* **act**: every activation module (``mlp.act_fn``) is replaced by
  :class:`ActRole`, calling ``ops.act(x, fn)`` with the config's activation
  (:data:`HF_ACTIVATIONS`).
* **rmsnorm**: every RMSNorm module is replaced by :class:`RMSNormRole`
  (sharing its weight Parameter), calling ``ops.rmsnorm(x, w_eff, eps)`` with
  the class's own formula (:data:`NORM_CLASSES`: ``w`` or Gemma's ``1 + w``).

Each replaced module's formula is checked against the module it replaces on a
seeded input, and a probe forward checks that every role module and every
attention module is called, so a model whose code bypasses these extension
points is refused instead of silently running on its own ops. With the ref
OpSet the wrapper's logits equal transformers' eager forward (tests/test_hf_adapter.py).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
import numbers
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from nli.formats import ACTIVATIONS

from .model import REF_OPS, OpSet
from .optional_deps import require_accelerate, require_transformers

ATTENTION_NAME = "nli"
"""The name of the attention (and mask) function registered with transformers."""

HF_ACTIVATIONS = {
    "silu": "silu",
    "swish": "silu",
    "gelu_pytorch_tanh": "gelu_tanh",
    "gelu_tanh": "gelu_tanh",
}
"""transformers' ``hidden_act`` name -> the engine's activation (nli.formats.ACTIVATIONS)."""
assert set(HF_ACTIVATIONS.values()) <= set(ACTIVATIONS)

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

PROBE_IDS = (0, 1, 2)
"""Token ids of the load-time probe forward."""


# ----------------------------------------------------------------------------- config
@dataclass(frozen=True)
class HFModelConfig:
    """What the engine reads from a model's ``cfg`` (engine.evaluate, experiments, commands)."""

    model_type: str
    vocab_size: int
    dim: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    hidden_dim: int
    max_seq_len: int
    activation: str

    def __post_init__(self):
        for k in ("vocab_size", "dim", "n_layers", "n_heads", "n_kv_heads", "head_dim"):
            v = getattr(self, k)
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
                raise ValueError(f"HFModelConfig.{k} must be an integer >= 1, got {v!r}")
        for k in ("hidden_dim", "max_seq_len"):
            v = getattr(self, k)
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
                raise ValueError(f"HFModelConfig.{k} must be an integer >= 1, got {v!r}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(
                f"HFModelConfig.activation must be one of {', '.join(ACTIVATIONS)}, "
                f"got {self.activation!r}"
            )

    def activation_count(self, tokens: int) -> int:
        """Rough peak number of float32 activation values of one forward over ``tokens``
        positions (as engine.model.LlamaConfig.activation_count)."""
        t = int(tokens)
        return (
            t * self.vocab_size * 2
            + 3 * self.n_heads * t * t
            + 4 * t * max(self.hidden_dim, self.dim)
        )

    def to_dict(self) -> dict:
        return asdict(self)


def hf_activation(config) -> str:
    """The engine activation of a transformers text config (``hidden_activation`` where the
    model has it, as Gemma 3, else ``hidden_act``); ValueError naming an unsupported one."""
    name = getattr(config, "hidden_activation", None) or getattr(config, "hidden_act", None)
    if name not in HF_ACTIVATIONS:
        raise ValueError(
            f"unsupported activation {name!r} in the model's config; supported: "
            f"{', '.join(HF_ACTIVATIONS)}"
        )
    return HF_ACTIVATIONS[name]


def config_from_hf(config) -> HFModelConfig:
    """HFModelConfig of a transformers (text) config."""
    c = config.get_text_config() if hasattr(config, "get_text_config") else config
    n_heads = c.num_attention_heads
    return HFModelConfig(
        model_type=str(getattr(c, "model_type", "")),
        vocab_size=c.vocab_size,
        dim=c.hidden_size,
        n_layers=c.num_hidden_layers,
        n_heads=n_heads,
        n_kv_heads=getattr(c, "num_key_value_heads", None) or n_heads,
        head_dim=getattr(c, "head_dim", None) or c.hidden_size // n_heads,
        hidden_dim=c.intermediate_size,
        max_seq_len=c.max_position_embeddings,
        activation=hf_activation(c),
    )


# ----------------------------------------------------------------------------- role modules
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


# ----------------------------------------------------------------------------- attention
def _repeat_kv(x: torch.Tensor, n_rep: int) -> torch.Tensor:
    """[B, Hkv, S, hd] -> [B, Hkv * n_rep, S, hd], each KV head repeated n_rep times in place."""
    if n_rep == 1:
        return x
    b, h, s, d = x.shape
    return x[:, :, None].expand(b, h, n_rep, s, d).reshape(b, h * n_rep, s, d)


def nli_attention(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    softcap: float | None = None,
    **kwargs,
):
    """transformers' attention-function signature: query [B, H, T, hd], key/value
    [B, Hkv, S, hd], attention_mask bool [B, 1, T, S] (True = attend) or an additive float
    mask -> (output [B, T, H, hd], probabilities [B, H, T, S]); softmax by ``module.ops``."""
    ops = getattr(module, "ops", None)
    if not isinstance(ops, OpSet):
        raise RuntimeError(
            f"{type(module).__name__}: attention implementation {ATTENTION_NAME!r} runs only in "
            "a model wrapped by engine.hf_adapter.HFCausalLM"
        )
    if scaling is None:
        scaling = module.head_dim**-0.5
    n_rep = query.shape[1] // key.shape[1]
    k = _repeat_kv(key, n_rep)
    v = _repeat_kv(value, n_rep)
    scores = torch.matmul(query, k.transpose(2, 3)) * scaling  # [B, H, T, S]
    if softcap is not None:
        scores = torch.tanh(scores / softcap) * softcap
    if attention_mask is not None:
        m = attention_mask[..., : k.shape[-2]]
        if m.dtype == torch.bool:
            scores = scores.masked_fill(~m, float("-inf"))
        else:  # additive: its most negative value marks a masked score
            scores = (scores + m).masked_fill(m <= torch.finfo(m.dtype).min, float("-inf"))
    p = ops.softmax(scores.float()).to(value.dtype)
    p = F.dropout(p, p=dropout, training=module.training)
    out = torch.matmul(p, v).transpose(1, 2).contiguous()  # [B, T, H, hd]
    return out, p


def _bool_mask(*args, **kwargs):
    """transformers' boolean (sdpa) mask, never skipped: the attention function always gets the
    causal / sliding-window pattern explicitly."""
    from transformers.masking_utils import sdpa_mask

    kwargs["allow_is_causal_skip"] = False
    kwargs["allow_is_bidirectional_skip"] = False
    return sdpa_mask(*args, **kwargs)


def register_attention() -> None:
    """Register ``nli_attention`` and its mask function under :data:`ATTENTION_NAME`."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface

    AttentionInterface.register(ATTENTION_NAME, nli_attention)
    AttentionMaskInterface.register(ATTENTION_NAME, _bool_mask)


# ----------------------------------------------------------------------------- installing
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


class _ProbeOps(OpSet):
    """The ref ops, logging which module called which op."""

    def __init__(self, log: list, module: str):
        self.log, self.module, self.name = log, module, "probe"

    def act(self, x, fn):
        self.log.append(("act", self.module))
        return REF_OPS.act(x, fn)

    def rmsnorm(self, x, weight, eps):
        self.log.append(("rmsnorm", self.module))
        return REF_OPS.rmsnorm(x, weight, eps)

    def softmax(self, x):
        self.log.append(("softmax", self.module))
        return REF_OPS.softmax(x)


# ----------------------------------------------------------------------------- the wrapper
class HFCausalLM(nn.Module):
    """A transformers causal LM as an engine model: ``model(input_ids int64[B, T])`` -> logits
    float32[B, T, vocab] (on the device of ``input_ids``), ``cfg`` (:class:`HFModelConfig`),
    ``set_ops(ops)``. ``hf`` is the transformers model, its ops routed through role modules."""

    def __init__(self, hf_model: nn.Module):
        super().__init__()
        self.cfg = config_from_hf(hf_model.config)
        self.hf = hf_model.eval()
        self.roles = install_roles(self.hf, self.cfg.activation)
        self._probe()

    def set_ops(self, ops: OpSet) -> "HFCausalLM":
        """Route every role module's and attention module's op through ``ops`` (in place)."""
        for m in self.modules():
            if hasattr(m, "ops"):
                m.ops = ops
        return self

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        if input_ids.dim() != 2:
            raise ValueError(f"input_ids must be [batch, seq], got shape {tuple(input_ids.shape)}")
        if input_ids.shape[1] > self.cfg.max_seq_len:
            raise ValueError(
                f"sequence of {input_ids.shape[1]} tokens exceeds max_seq_len "
                f"{self.cfg.max_seq_len}"
            )
        dev = self.hf.get_input_embeddings().weight.device
        out = self.hf(input_ids=input_ids.to(dev), use_cache=False)
        return out.logits.float().to(input_ids.device)

    @torch.no_grad()
    def _probe(self) -> None:
        """One short forward: every role module and every attention module must call its op."""
        log: list = []
        named = [(p, m) for p, m in self.hf.named_modules() if hasattr(m, "ops")]
        for p, m in named:
            m.ops = _ProbeOps(log, p)
        try:
            ids = torch.tensor([PROBE_IDS[: min(len(PROBE_IDS), self.cfg.vocab_size)]])
            self(ids)
        finally:
            self.set_ops(REF_OPS)
        called = {m for _, m in log}
        missed = [p for p, _ in named if p not in called]
        if missed:
            raise ValueError(
                f"{type(self.hf).__name__}: module {missed[0]} never calls its op (its code "
                f"bypasses transformers' extension points), so its ops cannot be substituted"
            )


# ----------------------------------------------------------------------------- tokenizer
@dataclass(frozen=True)
class TokenIds:
    """What ``HFTokenizer.encode`` returns: ``ids`` as a ``tokenizers.Encoding`` has them."""

    ids: list


class HFTokenizer:
    """A transformers tokenizer behind the ``tokenizers.Tokenizer`` calls the engine makes:
    ``encode(text).ids`` (with transformers' own special tokens, e.g. BOS, as
    ``tokenizer.encode(text)`` adds them), ``decode(ids)``, ``get_vocab_size()``,
    ``token_to_id(token)``."""

    def __init__(self, tok):
        self.hf = tok
        tok.model_max_length = int(1e30)  # texts are windowed by the engine, not truncated here

    def encode(self, text: str) -> TokenIds:
        return TokenIds(list(self.hf.encode(text)))

    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        return self.hf.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def get_vocab_size(self) -> int:
        return len(self.hf)

    def token_to_id(self, token: str):
        return self.hf.get_vocab().get(token)


# ----------------------------------------------------------------------------- loading
def _one_line(e: BaseException) -> str:
    lines = [s.strip() for s in str(e).splitlines() if s.strip()]
    return lines[0] if lines else type(e).__name__


def load_hf_model(path: str | Path, device_map: str | None = None):
    """``path``: a directory with config.json (+ safetensors or .bin weights and tokenizer
    files) or a ``.gguf`` file -> ``(HFCausalLM, HFTokenizer)``, float32, eval mode.
    ``device_map="auto"`` spreads the model over the available devices (accelerate).
    ValueError (one line) for a missing path or config, a missing optional package
    (with the install command) or a model transformers cannot load."""
    label = f"hf:{path}"
    require_transformers(label)
    p = Path(path).expanduser()
    if not p.exists():
        raise ValueError(f"{label}: no such file or directory")
    if p.is_dir():
        if not (p / "config.json").is_file():
            raise ValueError(
                f"{label}: no config.json in this directory (a Hugging Face model directory "
                "holds config.json, the weights and the tokenizer files)"
            )
        src, extra = p, {}
    elif p.is_file() and p.suffix == ".gguf":
        src, extra = p.parent, {"gguf_file": p.name}
        require_accelerate(f"{label} (transformers' GGUF loader)")
    else:
        raise ValueError(f"{label}: expected a model directory with config.json or a .gguf file")
    if device_map is not None:
        if device_map != "auto":
            raise ValueError(f"device_map must be 'auto', got {device_map!r}")
        require_accelerate("--device-map auto")
        extra["device_map"] = device_map
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        hf = AutoModelForCausalLM.from_pretrained(
            src, dtype=torch.float32, attn_implementation="eager", **extra
        )
    except (OSError, ValueError, KeyError, ImportError) as e:
        raise ValueError(
            f"{label}: transformers could not load the model: {_one_line(e)}"
        ) from None
    extra.pop("device_map", None)
    try:
        tok = AutoTokenizer.from_pretrained(src, **extra)
    except (OSError, ValueError, KeyError, ImportError) as e:
        raise ValueError(
            f"{label}: transformers could not load the tokenizer: {_one_line(e)}"
        ) from None
    return HFCausalLM(hf), HFTokenizer(tok)
