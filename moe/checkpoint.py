"""Checkpoints of dense and MoE models (state dict + JSON config).

The model is built by :func:`moe.model.build_model` (a Llama, or an
:class:`moe.model.MoELlama` for an MoE config). A checkpoint is a directory
holding ``config.json`` (the dense :class:`LlamaConfig`, the :class:`MoEConfig`
or null for a dense model, and free-form provenance) and ``weights.pt``
(``torch.save`` of the state dict). The directory is written as a whole
(:func:`nli.atomic.atomic_dir`: a temp directory beside the target, renamed in;
a replaced checkpoint is renamed away first), so a reader never finds new
weights beside an old config. Loading checks the files (regular, size-limited),
estimates the model's memory before building it, and refuses, with a message
naming the file or tensor, a corrupt weights file or a state dict whose keys or
shapes do not match the config.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
import pickle  # only for its UnpicklingError: every file is read by the safe loader, see load_plain

import torch

from engine.model import Llama, LlamaConfig
from nli.atomic import atomic_dir
from nli.inputs import MAX_MODEL_FILE_BYTES, InputError, check_input_file, read_json, read_text

from .config import MoEConfig
from .model import build_model, moe_config_of

CHECKPOINT_FORMAT = "nli-moe-checkpoint"
CHECKPOINT_VERSION = 1


def _write_file(path: Path, write) -> None:
    with open(path, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())


def save_checkpoint(
    path: str | os.PathLike, model: Llama, provenance: dict | None = None, tokenizer=None
) -> Path:
    """Write ``model`` (dense or MoE) to the directory ``path``; returns it.

    ``tokenizer``: an optional ``tokenizers.Tokenizer`` saved as ``tokenizer.json``.
    """
    path = Path(path)
    moe_cfg = moe_config_of(model)
    config = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "llama": model.cfg.to_dict(),
        "moe": None if moe_cfg is None else moe_cfg.to_dict(),
        "provenance": provenance or {},
    }
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    text = json.dumps(config, indent=2, sort_keys=True) + "\n"
    tok = None if tokenizer is None else tokenizer.to_str()
    with atomic_dir(path) as tmp:
        _write_file(tmp / "weights.pt", lambda f: torch.save(state, f))
        if tok is not None:
            _write_file(tmp / "tokenizer.json", lambda f: f.write(tok.encode()))
        _write_file(tmp / "config.json", lambda f: f.write(text.encode()))
    return path


def is_checkpoint(path) -> bool:
    """True if ``path`` is a directory with a config.json of this format."""
    cfile = Path(str(path)) / "config.json"
    if not cfile.is_file():
        return False
    try:
        return read_json(cfile, "checkpoint config").get("format") == CHECKPOINT_FORMAT
    except (ValueError, OSError, AttributeError, RecursionError):
        return False


def load_tokenizer(path: str | os.PathLike):
    """The checkpoint's ``tokenizers.Tokenizer`` (None if it has no tokenizer.json)."""
    tfile = Path(path) / "tokenizer.json"
    if not tfile.is_file():
        return None
    from tokenizers import Tokenizer

    try:
        return Tokenizer.from_str(read_text(tfile, "checkpoint tokenizer"))
    except Exception as e:  # tokenizers raises its own Exception type on a malformed file
        if isinstance(e, InputError):
            raise
        raise InputError(
            f"{tfile}: not a readable tokenizer ({' '.join(str(e).split())})"
        ) from None


def resolve_checkpoint(name_or_path):
    """Model resolver for :func:`engine.load_model`: a checkpoint directory ->
    (model, tokenizer), else None."""
    if not is_checkpoint(name_or_path):
        return None
    return load_checkpoint(name_or_path), load_tokenizer(name_or_path)


def load_plain(path: str | os.PathLike):
    """``torch.load`` with the safe unpickler (``weights_only=True``): tensors and plain containers
    (dict, list, tuple, str, int, float, bool, None) only. A file holding anything else (e.g. a
    pickled object whose ``__reduce__`` runs code) is refused with ValueError and nothing of it
    runs."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        why = [
            line.split("error:", 1)[1].split(". Please")[0].strip()  # torch's one-line reason
            for line in str(e).splitlines()
            if "Unpickler error:" in line
        ]
        raise ValueError(
            f"{path}: refused to load: it holds more than tensors and plain containers "
            f"({why[0] if why else 'not a torch file of plain data'})"
        ) from None


def read_config(path: str | os.PathLike) -> tuple[LlamaConfig, MoEConfig | None, dict]:
    """(llama config, moe config or None, provenance) of the checkpoint directory ``path``."""
    path = Path(path)
    cfile = path / "config.json"
    if not cfile.is_file():
        raise FileNotFoundError(f"{path}: not a checkpoint directory (no config.json)")
    config = read_json(cfile, "checkpoint config")
    if not isinstance(config, dict):
        raise ValueError(f"{cfile}: expected a JSON object, got {type(config).__name__}")
    if config.get("format") != CHECKPOINT_FORMAT or config.get("version") != CHECKPOINT_VERSION:
        raise ValueError(
            f"{cfile}: format/version is {config.get('format')!r}/{config.get('version')!r}, "
            f"expected {CHECKPOINT_FORMAT!r}/{CHECKPOINT_VERSION}"
        )
    try:
        cfg = LlamaConfig.from_dict(config.get("llama"))
        moe_cfg = None if config.get("moe") is None else MoEConfig.from_dict(config["moe"])
        if moe_cfg is not None:
            moe_cfg.check_against(cfg)
    except ValueError as e:
        raise ValueError(f"{cfile}: {e}") from None
    prov = config.get("provenance", {})
    return cfg, moe_cfg, prov if isinstance(prov, dict) else {}


def load_checkpoint(path: str | os.PathLike) -> Llama:
    """Rebuild the model saved in ``path``. ValueError naming the tensor if config and tensors
    disagree."""
    path = Path(path)
    cfg, moe_cfg, prov = read_config(path)
    wfile = path / "weights.pt"
    if not wfile.exists():
        raise FileNotFoundError(f"{path}: checkpoint has no weights.pt")
    check_input_file(wfile, "checkpoint weights", MAX_MODEL_FILE_BYTES)
    model = build_model(cfg, moe_cfg)  # checks the memory estimate before the weights are read
    try:
        state = load_plain(wfile)
    except ValueError:
        raise
    except Exception as e:  # torch raises RuntimeError/EOFError/... on a corrupt file
        raise InputError(
            f"{wfile}: not a readable weights file ({type(e).__name__}: "
            f"{' '.join(str(e).split())[:300]})"
        ) from None
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise InputError(f"{wfile}: not a state dict of named tensors")
    check_state_matches(model, state, where=str(path))
    model.load_state_dict(state, strict=True)
    model.provenance = prov
    return model.eval()


def check_state_matches(model: Llama, state: dict, where: str = "checkpoint") -> None:
    """Raise ValueError naming the first missing/unexpected tensor or shape mismatch."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        raise ValueError(
            f"{where}: config does not match tensors: missing {missing[:4]}"
            f"{'...' if len(missing) > 4 else ''}, unexpected {unexpected[:4]}"
            f"{'...' if len(unexpected) > 4 else ''}"
        )
    for k, v in expected.items():
        if not state[k].is_floating_point():
            raise ValueError(
                f"{where}: tensor {k} has dtype {state[k].dtype}, expected a floating-point type"
            )
        if tuple(state[k].shape) != tuple(v.shape):
            raise ValueError(
                f"{where}: config does not match tensors: {k} has shape {tuple(state[k].shape)}, "
                f"the config implies {tuple(v.shape)}"
            )
