"""Perplexity experiments on the engine's models: the texts and the op-variant comparisons.

Pure functions returning JSON-ready dicts; the CLI (commands.py), the demo
(demo.py) and benchmarks/llm.py print and write them.

Texts:
* :func:`heldout_text`: ``engine/data/heldout_en.txt``, shipped English text
  fitted by no table or calibration: the verbatim GPL-3, LGPL-2.1, GFDL-1.3,
  MPL-2.0, Apache-2.0 and GPL-2 texts (Debian's /usr/share/common-licenses;
  engine/data/SOURCES.md), 28,629 SmolLM2 tokens.
* :func:`pydoc_topics_text`: Python's ``pydoc_data.topics`` topics sorted by
  key and joined by blank lines (the issue's loader anchor: SmolLM2 12.46 in
  llama.cpp on its first 20 x 1024 tokens).
"""

from __future__ import annotations

from importlib import resources
import math

import torch

from .evaluate import CALIBRATION_RANGE, DEFAULT_WINDOW, evaluate_models, forward_seconds
from .substitution import BASELINES, OPS, substitute

HELDOUT_FILE = "heldout_en.txt"

# (label, variant, reciprocal_mode) of the standard comparison
STANDARD_VARIANTS = (
    ("fp16", "fp16", "reduced"),
    ("nli", "nli", "reduced"),
    ("nli_direct", "nli", "direct"),
    ("published", "published", "reduced"),
    ("published_direct", "published", "direct"),
) + tuple((f"baseline:{b}", f"baseline:{b}", "reduced") for b in BASELINES)


def heldout_text() -> str:
    """The shipped held-out English text (engine/data/heldout_en.txt)."""
    return resources.files("engine").joinpath("data", HELDOUT_FILE).read_text(encoding="utf-8")


def pydoc_topics_text() -> str:
    """pydoc_data.topics: every topic's text, sorted by key, joined by blank lines."""
    from pydoc_data.topics import topics

    return "\n\n".join(topics[k] for k in sorted(topics))


def token_ids(tokenizer, text: str, max_tokens: int | None = None) -> torch.Tensor:
    """text -> int64[min(N, max_tokens)] token ids, as ``tokenizer.encode`` gives them: a BOS
    first where the GGUF's add_bos_token says so (Gemma), none for SmolLM2 (add_bos_token
    false)."""
    if max_tokens is not None and max_tokens < 2:
        raise ValueError(f"max_tokens must be >= 2, got {max_tokens}")
    ids = tokenizer.encode(text).ids
    if len(ids) < 2:
        raise ValueError(f"the text has {len(ids)} token(s); need at least 2")
    return torch.tensor(ids[:max_tokens] if max_tokens else ids, dtype=torch.long)


def _dtype_of(spec: tuple, dtype: str | None) -> str | None:
    """A variant spec's dtype: its optional 4th element, else ``dtype``."""
    return spec[3] if len(spec) > 3 else dtype


def build_variants(
    model,
    variants,
    ops=OPS,
    tables=None,
    rmsnorm_input="scaled",
    backend: str = "auto",
    dtype: str | None = None,
) -> dict:
    """{label: substituted model} for ``variants`` = [(label, variant, reciprocal_mode[, dtype])];
    ``rmsnorm_input``: RMSNorm's FP32 input handling (numerics §4.1) of every variant;
    ``backend``: where the unit's ops run (engine.substitution.substitute); ``dtype``: the unit
    format (numerics §13) of variants that name none (None: each variant's own)."""
    return {
        spec[0]: substitute(
            model,
            ops=ops,
            variant=spec[1],
            tables=tables,
            reciprocal_mode=spec[2],
            rmsnorm_input=rmsnorm_input,
            backend=backend,
            dtype=_dtype_of(spec, dtype),
        )
        for spec in variants
    }


def compare_variants(
    model,
    ids,
    variants=STANDARD_VARIANTS,
    ops=OPS,
    window: int = DEFAULT_WINDOW,
    tables=None,
    calibration=CALIBRATION_RANGE,
    progress: bool = True,
    record=True,
    rmsnorm_input: str = "scaled",
    backend: str = "auto",
    dtype: str | None = None,
) -> dict:
    """Perplexity of ``model`` (ref) and of each substituted variant on ``ids`` int64[N].

    Returns {"tokens", "window", "ops", "ppl_ref", "modes": {label: result dict}};
    each result has ppl, ppl_rel_change, top1_agreement, mean_kl and activation_stats, and the
    settings ``mode`` (the variant) and ``reciprocal_mode`` (and ``dtype`` where a spec or
    ``dtype`` names one). The JSON keys ``modes`` and ``mode`` are kept from before the rename
    (benchmarks/results/llm.json has them).
    """
    models = build_variants(model, variants, ops, tables, rmsnorm_input, backend, dtype)
    res = evaluate_models(
        models,
        ids,
        ref_model=model,
        window=window,
        record=record,
        calibration=calibration,
        progress=progress,
        desc="ppl",
    )
    out = {label: r.to_dict() for label, r in res.items()}
    for spec in variants:
        out[spec[0]].update(mode=spec[1], reciprocal_mode=spec[2])
        if _dtype_of(spec, dtype) is not None:
            out[spec[0]]["dtype"] = _dtype_of(spec, dtype)
    first = next(iter(out.values()))
    return {
        "tokens": first["tokens"],
        "window": window,
        "ops": list(ops),
        "ppl_ref": first["ppl_ref"],
        "modes": out,
    }


def eval_ppl(
    model,
    ids,
    ops=OPS,
    variant: str = "nli",
    reciprocal_mode: str = "reduced",
    window: int = DEFAULT_WINDOW,
    tables=None,
    progress: bool = True,
    rmsnorm_input: str = "scaled",
    backend: str = "auto",
    dtype: str | None = None,
) -> dict:
    """One variant against ref (the `nli eval ppl` result): ppl_ref, ppl, tokens, top1_agreement,
    mean_kl, activation_stats (of the substituted model's op inputs), and the settings (the
    variant under the JSON key ``mode``, and ``rmsnorm_input``). ``backend``: where the unit's
    ops run (auto | numba | torch, see engine.op_sets.UnitOps); ``dtype``: the unit format
    (numerics §13; None: the variant's own)."""
    from .substitution import resolve_dtype

    dtype = resolve_dtype(variant, dtype)
    r = compare_variants(
        model,
        ids,
        ((variant, variant, reciprocal_mode),),
        ops,
        window,
        tables,
        progress=progress,
        rmsnorm_input=rmsnorm_input,
        backend=backend,
        dtype=dtype,
    )
    out = dict(r["modes"][variant])
    out.update(
        ops=list(ops),
        window=window,
        calibration_range=list(CALIBRATION_RANGE),
        rmsnorm_input=rmsnorm_input,
        dtype=dtype,
    )
    return out


def speed_ratio(
    model,
    ids,
    ops=OPS,
    variant: str = "nli",
    reciprocal_mode: str = "reduced",
    tokens: int = DEFAULT_WINDOW,
    repeats: int = 3,
    tables=None,
) -> dict:
    """Forward-pass wall time of the substituted model vs ref on one window, measured
    interleaved in one run: {"tokens", "ref_s", "sub_s", "ratio"}."""
    sub = substitute(
        model, ops=ops, variant=variant, tables=tables, reciprocal_mode=reciprocal_mode
    )
    x = ids[:tokens][None]  # [1, T]
    t = forward_seconds({"ref": model, "sub": sub}, x, repeats=repeats)
    return {
        "tokens": int(x.shape[1]),
        "mode": variant,
        "reciprocal_mode": reciprocal_mode,
        "repeats": repeats,
        "ref_s": t["ref"],
        "sub_s": t["sub"],
        "ratio": t["sub"] / t["ref"],
    }


def json_safe(obj):
    """Replace non-finite floats by None (JSON has no NaN/inf), recursively."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj
