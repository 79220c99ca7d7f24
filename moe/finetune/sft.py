"""Prompted translation SFT examples: prompt formats, tokenization, seeded batches (pure).

Two prompt formats, chosen by :func:`prompt_format` from the tokenizer:

* ``chat`` (a tokenizer with ``<|im_start|>``, e.g. SmolLM2-135M-Instruct):
  the model's ChatML template, ``<|im_start|>user\\nTranslate to German:\\n
  {src}<|im_end|>\\n<|im_start|>assistant\\n`` then the target ``{tgt}<|im_end|>``;
* ``plain`` (any other tokenizer, e.g. the tiny byte tokenizer):
  ``Translate to German:\\n{src}\\n`` then ``{tgt}`` plus the end-of-text token.

Prompt and target are tokenized separately and concatenated, exactly as
generation sees them (prompt alone, then continuation). The loss covers the
target tokens (including the closing token) only: prompt positions carry the
label ``IGNORE``.

Batches: the training examples are visited in a seeded random order,
reshuffled every epoch; :func:`batch_indices` gives the example indices of
step ``t`` as a pure function of (n, batch, seed, t), so resuming at step t
needs no saved data-loader state beyond t itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .data import LANGUAGE_NAMES

IGNORE = -100
CHAT_START, CHAT_END = "<|im_start|>", "<|im_end|>"
PLAIN_END = "<|endoftext|>"
MAX_TOKENS = 192


@dataclass(frozen=True)
class Example:
    """One tokenized pair: ``ids`` = prompt + target, ``n_prompt`` prompt tokens, its language."""

    ids: tuple[int, ...]
    n_prompt: int
    lang: str


def prompt_format(tok) -> str:
    """``"chat"`` if the tokenizer knows ``<|im_start|>``/``<|im_end|>``, else ``"plain"``."""
    return (
        "chat"
        if tok.token_to_id(CHAT_START) is not None and tok.token_to_id(CHAT_END) is not None
        else "plain"
    )


def end_token_id(tok) -> int:
    """The id that closes a target (``<|im_end|>`` in chat format, ``<|endoftext|>`` in plain)."""
    name = CHAT_END if prompt_format(tok) == "chat" else PLAIN_END
    i = tok.token_to_id(name)
    if i is None:
        raise ValueError(f"tokenizer has no {name!r} token to end a translation")
    return int(i)


def lang_name(lang: str) -> str:
    return LANGUAGE_NAMES.get(lang, lang)


def prompt_text(src: str, lang: str, fmt: str) -> str:
    """The prompt string for translating English ``src`` into ``lang``."""
    instr = f"Translate to {lang_name(lang)}:\n{src}"
    if fmt == "chat":
        return f"{CHAT_START}user\n{instr}{CHAT_END}\n{CHAT_START}assistant\n"
    if fmt == "plain":
        return instr + "\n"
    raise ValueError(f"unknown prompt format {fmt!r}")


def encode_prompt(tok, src: str, lang: str) -> list[int]:
    """Token ids of the prompt (what generation is fed)."""
    return list(tok.encode(prompt_text(src, lang, prompt_format(tok))).ids)


def encode_example(tok, rec: dict, max_tokens: int = MAX_TOKENS) -> Example:
    """{"lang", "src", "tgt"} -> Example; the target is cut so the total fits ``max_tokens``."""
    p = encode_prompt(tok, rec["src"], rec["lang"])
    t = list(tok.encode(rec["tgt"]).ids) + [end_token_id(tok)]
    if len(p) >= max_tokens:
        raise ValueError(
            f"prompt of {len(p)} tokens does not fit max_tokens={max_tokens}: {rec['src'][:40]!r}"
        )
    ids = (p + t)[:max_tokens]
    return Example(tuple(ids), len(p), rec["lang"])


def encode_records(tok, recs: list[dict], max_tokens: int = MAX_TOKENS) -> list[Example]:
    return [encode_example(tok, r, max_tokens) for r in recs]


def collate(examples: list[Example], pad_id: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded batch -> (input_ids int64[B, T], labels int64[B, T]).

    labels[b, t] is the token at t if t is a target position, else IGNORE;
    the logits at t-1 predict it (see :func:`target_loss`).
    """
    T = max(len(e.ids) for e in examples)
    ids = torch.full((len(examples), T), pad_id, dtype=torch.int64)  # [B, T]
    labels = torch.full((len(examples), T), IGNORE, dtype=torch.int64)  # [B, T]
    for b, e in enumerate(examples):
        x = torch.tensor(e.ids, dtype=torch.int64)
        ids[b, : len(x)] = x
        labels[b, e.n_prompt : len(x)] = x[e.n_prompt :]
    return ids, labels


def target_token_losses(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """logits float[B, T, V], labels int64[B, T] -> per-position NLL float32[B, T-1]
    (0 where ignored)."""
    lg = logits[:, :-1].float()  # [B, T-1, V]
    lb = labels[:, 1:]  # [B, T-1]
    nll = torch.nn.functional.cross_entropy(
        lg.reshape(-1, lg.shape[-1]), lb.reshape(-1), ignore_index=IGNORE, reduction="none"
    )  # [B*(T-1)]
    return nll.view(lb.shape)  # [B, T-1]


def target_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean NLL over target tokens of the batch (float32 scalar).
    logits float[B, T, V], labels int64[B, T]."""
    n = (labels[:, 1:] != IGNORE).sum()
    if int(n) == 0:
        raise ValueError("batch has no target tokens")
    return target_token_losses(logits, labels).sum() / n


def predicting_positions(labels: torch.Tensor) -> torch.Tensor:
    """labels int64[B, T] -> bool[B, T]: the positions whose logits predict a target token (t where
    labels[t + 1] is not IGNORE), for ``model(ids, logits_at=...)``."""
    at = torch.zeros_like(labels, dtype=torch.bool)  # [B, T]
    at[:, :-1] = labels[:, 1:] != IGNORE
    return at


def selected_target_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean NLL over target tokens from logits float[n, V] computed at
    ``predicting_positions(labels)`` only; equal to :func:`target_loss` on the full logits
    (float32 scalar)."""
    tgt = labels[:, 1:][labels[:, 1:] != IGNORE]  # [n], row-major like the selected logits
    if tgt.numel() == 0:
        raise ValueError("batch has no target tokens")
    if logits.shape[0] != tgt.numel():
        raise ValueError(f"{logits.shape[0]} logit rows for {tgt.numel()} target tokens")
    return torch.nn.functional.cross_entropy(logits.float(), tgt)


def batch_indices(n: int, batch_size: int, seed: int, step: int) -> list[int]:
    """Example indices of training step ``step``: a seeded permutation per epoch,
    walked in order."""
    if n < 1 or batch_size < 1:
        raise ValueError(f"need n >= 1 and batch_size >= 1, got {n}, {batch_size}")
    out = []
    pos = step * batch_size
    while len(out) < batch_size:
        epoch, i = divmod(pos, n)
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1000003 + epoch))
        take = min(batch_size - len(out), n - i)
        out.extend(perm[i : i + take].tolist())
        pos += take
    return out
