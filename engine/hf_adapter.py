"""Hugging Face causal LMs with their nonlinear ops on an :class:`engine.model.OpSet`.

``load_hf_model(path)`` loads what ``transformers`` loads (a directory with
``config.json``, weights and tokenizer files, or a ``.gguf`` file through
transformers' GGUF loader) and wraps it in :class:`HFCausalLM`, which meets the
engine's model contract (``forward(input_ids) -> float32 logits [B, T, V]``,
``cfg`` (:class:`HFModelConfig`), ``set_ops``), so ``engine.substitute``,
``nli eval ppl`` and the experiments run on it unchanged; its tokenizer comes
wrapped as :class:`engine.hf_tokenizer.HFTokenizer`.

The ops are substituted through transformers' own extension points; the rest
of the forward is transformers' code:

* **softmax**: the attention function registered as ``"nli"`` in
  ``transformers.AttentionInterface`` (:mod:`engine.hf_attention`).
* **act**, **rmsnorm**: every activation module and every RMSNorm module is
  replaced by a role module calling the OpSet, its formula checked against the
  module it replaces (:mod:`engine.hf_roles`); the activation is the config's
  (:data:`HF_ACTIVATIONS`).

A probe forward at load time checks that every role module and every attention
module is called, so a model whose code bypasses these extension points is
refused instead of silently running on its own ops. With the ref OpSet the
wrapper's logits equal transformers' eager forward (tests/test_hf_adapter.py).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
import numbers
from pathlib import Path

import torch
import torch.nn as nn

from nli.formats import ACTIVATIONS

from .hf_roles import install_roles
from .hf_tokenizer import HFTokenizer
from .model import REF_OPS, OpSet
from .optional_deps import require_accelerate, require_transformers

HF_ACTIVATIONS = {
    "silu": "silu",
    "swish": "silu",
    "gelu_pytorch_tanh": "gelu_tanh",
    "gelu_tanh": "gelu_tanh",
}
"""transformers' ``hidden_act`` name -> the engine's activation (nli.formats.ACTIVATIONS)."""
assert set(HF_ACTIVATIONS.values()) <= set(ACTIVATIONS)

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


# ----------------------------------------------------------------------------- the wrapper
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
