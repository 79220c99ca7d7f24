"""Calibration and held-out token windows for upcycling, growth and diagnostics.

Text comes from the held-out text the engine package ships
(:func:`engine.experiments.heldout_text`, ``engine/data/heldout_en.txt``,
about 31k SmolLM2 tokens). The token stream is cut into consecutive windows
of ``seq`` tokens; calibration uses the first windows, held-out evaluation
the windows from the middle of the stream on (offset ``min(65536, n / 2)``),
so the two never overlap while calibration asks for fewer than n / 2 tokens.
Without shipped text, the tiny model (byte vocabulary, random weights) falls
back to seeded random token ids; a real model gets a clear error instead.
"""

from __future__ import annotations

import torch

HELDOUT_OFFSET_TOKENS = 65536
RANDOM_SEED = 1234


def shipped_text() -> str | None:
    """The engine's shipped held-out text, or None if this install has none."""
    try:
        from engine.experiments import heldout_text

        return heldout_text()
    except (ImportError, FileNotFoundError, OSError):
        return None


def _encode(tokenizer, text: str) -> torch.Tensor:
    return torch.tensor(tokenizer.encode(text).ids, dtype=torch.int64)


def token_windows(
    tokenizer, vocab_size: int, n_windows: int, seq: int, heldout: bool = False
) -> torch.Tensor:
    """int64[n_windows, seq] windows of the shipped text (calibration, or held-out with
    ``heldout``).

    ``tokenizer``: a ``tokenizers.Tokenizer`` or None (random ids, tiny model only).
    """
    if n_windows < 1 or seq < 2:
        raise ValueError(f"need at least one window of >= 2 tokens, got {n_windows} x {seq}")
    text = shipped_text()
    if text is None or tokenizer is None:
        if vocab_size > 512:
            raise ValueError(
                "no held-out text shipped (engine/data/heldout_en.txt) (or no tokenizer): "
                "cannot build calibration windows for a real model"
            )
        g = torch.Generator().manual_seed(RANDOM_SEED + (1 if heldout else 0))
        return torch.randint(0, vocab_size, (n_windows, seq), generator=g)
    ids = _encode(tokenizer, text)
    need = n_windows * seq
    start = 0
    if heldout:
        start = min(HELDOUT_OFFSET_TOKENS, max(0, ids.numel() // 2))
    avail = ids.numel() - start
    if avail < need:
        raise ValueError(
            f"the shipped text has {avail} tokens from offset {start}, {need} are needed "
            f"({n_windows} windows of {seq})"
        )
    return ids[start : start + need].reshape(n_windows, seq)  # [n, seq]
