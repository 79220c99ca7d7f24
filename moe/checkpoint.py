"""Checkpoints of dense and MoE models (state dict + JSON config).

The model is built by :func:`moe.model.build_model` (a Llama, or an
:class:`moe.model.MoELlama` for an MoE config). A checkpoint is a directory holding ``config.json`` (the dense
:class:`LlamaConfig`, the :class:`MoEConfig` or null for a dense model, and
free-form provenance) and ``weights.pt`` (``torch.save`` of the state dict).
Both files are written atomically. Loading builds the model from the config
and refuses, with a message naming the tensor, any state dict whose keys or
shapes do not match it.
"""
from __future__ import annotations

import json
import os
import pickle  # only for its UnpicklingError: every file is read by the safe loader, see load_plain
from pathlib import Path

import torch

from nli.atomic import atomic_target

from engine.model import Llama, LlamaConfig
from .config import MoEConfig
from .model import build_model, moe_config_of

CHECKPOINT_FORMAT = "nli-moe-checkpoint"
CHECKPOINT_VERSION = 1


def _atomic_write_bytes(path: Path, write) -> None:
    with atomic_target(path) as tmp, open(tmp, "wb") as f:
        write(f)


def save_checkpoint(path: str | os.PathLike, model: Llama, provenance: dict | None = None,
                    tokenizer=None) -> Path:
    """Write ``model`` (dense or MoE) to the directory ``path``; returns it.

    ``tokenizer``: an optional ``tokenizers.Tokenizer`` saved as ``tokenizer.json``.
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    moe_cfg = moe_config_of(model)
    config = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "llama": model.cfg.to_dict(),
              "moe": None if moe_cfg is None else moe_cfg.to_dict(), "provenance": provenance or {}}
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    _atomic_write_bytes(path / "weights.pt", lambda f: torch.save(state, f))
    text = json.dumps(config, indent=2, sort_keys=True) + "\n"
    if tokenizer is not None:
        tok = tokenizer.to_str()
        _atomic_write_bytes(path / "tokenizer.json", lambda f: f.write(tok.encode()))
    _atomic_write_bytes(path / "config.json", lambda f: f.write(text.encode()))
    return path


def is_checkpoint(path) -> bool:
    """True if ``path`` is a directory with a config.json of this format."""
    cfile = Path(str(path)) / "config.json"
    if not cfile.is_file():
        return False
    try:
        return json.loads(cfile.read_text()).get("format") == CHECKPOINT_FORMAT
    except (json.JSONDecodeError, OSError, AttributeError):
        return False


def load_tokenizer(path: str | os.PathLike):
    """The checkpoint's ``tokenizers.Tokenizer`` (None if it has no tokenizer.json)."""
    tfile = Path(path) / "tokenizer.json"
    if not tfile.is_file():
        return None
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(tfile))


def resolve_checkpoint(name_or_path):
    """Model resolver for :func:`engine.load_model`: a checkpoint directory -> (model, tokenizer), else None."""
    if not is_checkpoint(name_or_path):
        return None
    return load_checkpoint(name_or_path), load_tokenizer(name_or_path)


def load_plain(path: str | os.PathLike):
    """``torch.load`` with the safe unpickler (``weights_only=True``): tensors and plain containers
    (dict, list, tuple, str, int, float, bool, None) only. A file holding anything else (e.g. a
    pickled object whose ``__reduce__`` runs code) is refused with ValueError and nothing of it runs."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        why = [line.split("error:", 1)[1].split(". Please")[0].strip()  # torch's one-line reason
               for line in str(e).splitlines() if "Unpickler error:" in line]
        raise ValueError(f"{path}: refused to load: it holds more than tensors and plain containers "
                         f"({why[0] if why else 'not a torch file of plain data'})") from None


def read_config(path: str | os.PathLike) -> tuple[LlamaConfig, MoEConfig | None, dict]:
    """(llama config, moe config or None, provenance) of the checkpoint directory ``path``."""
    path = Path(path)
    cfile = path / "config.json"
    if not cfile.is_file():
        raise FileNotFoundError(f"{path}: not a checkpoint directory (no config.json)")
    try:
        config = json.loads(cfile.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{cfile}: not valid JSON ({e})") from None
    if config.get("format") != CHECKPOINT_FORMAT or config.get("version") != CHECKPOINT_VERSION:
        raise ValueError(f"{cfile}: format/version is {config.get('format')!r}/{config.get('version')!r}, "
                         f"expected {CHECKPOINT_FORMAT!r}/{CHECKPOINT_VERSION}")
    cfg = LlamaConfig(**config["llama"])
    moe_cfg = None if config.get("moe") is None else MoEConfig.from_dict(config["moe"])
    if moe_cfg is not None:
        moe_cfg.check_against(cfg)
    return cfg, moe_cfg, config.get("provenance", {})


def load_checkpoint(path: str | os.PathLike) -> Llama:
    """Rebuild the model saved in ``path``. ValueError naming the tensor if config and tensors disagree."""
    path = Path(path)
    cfg, moe_cfg, prov = read_config(path)
    wfile = path / "weights.pt"
    if not wfile.is_file():
        raise FileNotFoundError(f"{path}: checkpoint has no weights.pt")
    state = load_plain(wfile)
    model = build_model(cfg, moe_cfg)
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
        raise ValueError(f"{where}: config does not match tensors: missing {missing[:4]}"
                         f"{'...' if len(missing) > 4 else ''}, unexpected {unexpected[:4]}"
                         f"{'...' if len(unexpected) > 4 else ''}")
    for k, v in expected.items():
        if tuple(state[k].shape) != tuple(v.shape):
            raise ValueError(f"{where}: config does not match tensors: {k} has shape {tuple(state[k].shape)}, "
                             f"the config implies {tuple(v.shape)}")
