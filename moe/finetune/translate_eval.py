"""Evaluation of a fine-tuned translator: target loss, chrF++/BLEU, expert load, routing
specialization.

* Loss: mean NLL per target token (token-weighted within a language),
  perplexity ``exp(loss)``, per language and the unweighted mean over languages.
* Routing statistics are taken on the same teacher-forced pass, on the
  TARGET tokens only (the positions whose label is a target token; the
  source side is English for every language): ``counts[layer][lang, e]`` is
  the number of (token, chosen-expert) assignments of that language to
  expert e (top-k gives k per token).
* Routing specialization: mutual information I(language; expert) in bits of
  the joint distribution ``counts / counts.sum()``, per layer and averaged
  over MoE layers, also normalized by H(language).
* Load balance per layer: the expert fractions f_e, their coefficient of
  variation (0 = perfectly balanced) and max f_e * E.
* Translation quality: greedy decoding (``engine.model.generate_batch``: KV
  cache, 16 left-padded prompts at a time, each row computing what it would
  alone up to GEMM rounding; at most ``max_new_tokens`` = 64 new tokens,
  stopping at the end token) of
  the first ``gen_per_lang`` test pairs of each language, scored with
  sacrebleu: chrF++ (``CHRF(word_order=2)``) and BLEU with tokenizer ``13a``,
  or ``char`` for languages written without spaces (ja, zh, th).
  ``evaluate_translation`` also keeps every hypothesis and its per-sentence sacrebleu
  sufficient statistics (``sentence_stats``) so paired bootstrap over test
  sentences can be computed offline (:mod:`moe.paired_bootstrap`).
* Device: the model's; batches are built on the CPU and moved there, and
  statistics come back to the CPU (same expressions as on the CPU).
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch
from tqdm import tqdm

from engine.model import Llama, generate_batch

from ..layer import moe_layers, route_topk
from .sft import IGNORE, collate, encode_prompt, encode_records, end_token_id, target_token_losses

MAX_NEW_TOKENS = 64
GEN_BATCH = (
    16  # prompts decoded together (left-padded); per-row results as if alone, see generate_batch
)
CHAR_TOKENIZED = ("ja", "zh", "zh_Hans", "zh_Hant", "th")


def _by_lang(recs: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for r in recs:
        out.setdefault(r["lang"], []).append(r)
    return out


@torch.no_grad()
def teacher_forced_stats(
    model: Llama,
    tok,
    recs: list[dict],
    batch_size: int = 8,
    max_tokens: int = 192,
    progress: bool = False,
    keep_choices: bool = False,
) -> dict:
    """Per-language target loss / perplexity and per-layer routing counts on ``recs``.

    Returns {"loss": {lang: float}, "ppl": {lang: float}, "loss_mean", "ppl_mean",
    "target_tokens": {lang: int}, "langs": [...], "counts": {layer: int64[L, E] as lists}}
    and, with ``keep_choices``, "choices": {layer: int64[n_target_tokens, k]} in record order.
    """
    model.eval()
    langs = sorted({r["lang"] for r in recs})
    li = {lang: i for i, lang in enumerate(langs)}
    examples = encode_records(tok, recs, max_tokens)
    nll = np.zeros(len(langs))
    ntok = np.zeros(len(langs), dtype=np.int64)
    layers = moe_layers(model)
    counts = {i: np.zeros((len(langs), layer.num_experts), dtype=np.int64) for i, layer in layers}
    choices: dict[int, list] = {i: [] for i, _ in layers}
    dev = model.embed.weight.device
    for s in tqdm(
        range(0, len(examples), batch_size), desc="eval loss", disable=not progress, unit="batch"
    ):
        batch = examples[s : s + batch_size]
        ids, labels = collate(batch)  # [B, T]
        logits, routers = model(ids.to(dev), return_router_logits=True)
        tl = target_token_losses(logits, labels.to(dev)).cpu()  # [B, T-1]
        del logits
        lang_idx = torch.tensor([li[e.lang] for e in batch])  # [B]
        mask = labels[:, 1:] != IGNORE  # [B, T-1]
        for b in range(len(batch)):
            nll[lang_idx[b]] += float(tl[b][mask[b]].sum())
            ntok[lang_idx[b]] += int(mask[b].sum())
        is_tgt = labels != IGNORE  # [B, T] target tokens as router inputs
        tok_lang = lang_idx[:, None].expand_as(ids)[is_tgt]  # [n]
        for (i, layer), rl in zip(layers, routers):
            probs = layer.ops.softmax(rl.float())  # [B*T, E]
            _, idx = route_topk(probs, layer.top_k, layer.renormalize)  # [B*T, k]
            idx = idx.cpu()
            chosen = idx[is_tgt.reshape(-1)]  # [n, k]
            if keep_choices:
                choices[i].append(chosen)
            flat = (tok_lang[:, None] * layer.num_experts + chosen).reshape(-1)  # [n*k]
            counts[i] += (
                torch.bincount(flat, minlength=len(langs) * layer.num_experts)
                .view(len(langs), layer.num_experts)
                .numpy()
            )  # [L, E]
    loss = {lang: float(nll[i] / max(1, ntok[i])) for lang, i in li.items()}
    extra = {"choices": {i: torch.cat(c) for i, c in choices.items()}} if keep_choices else {}
    return {
        **extra,
        "langs": langs,
        "loss": loss,
        "ppl": {k: math.exp(v) for k, v in loss.items()},
        "loss_mean": float(np.mean(list(loss.values()))),
        "ppl_mean": float(np.mean([math.exp(v) for v in loss.values()])),
        "target_tokens": {lang: int(ntok[i]) for lang, i in li.items()},
        "counts": {str(i): c.tolist() for i, c in counts.items()},
    }


def mutual_information(counts: np.ndarray) -> tuple[float, float]:
    """counts int[L, E] -> (I(language; expert) in bits, I / H(language)).
    Zero rows/cols allowed."""
    c = np.asarray(counts, dtype=np.float64)
    n = c.sum()
    if n <= 0:
        return 0.0, 0.0
    p = c / n  # [L, E]
    pl = p.sum(1, keepdims=True)  # [L, 1]
    pe = p.sum(0, keepdims=True)  # [1, E]
    nz = p > 0
    mi = float((p[nz] * np.log2(p[nz] / (pl @ pe)[nz])).sum())
    hl = float(-(pl[pl > 0] * np.log2(pl[pl > 0])).sum())
    return max(0.0, mi), (max(0.0, mi) / hl if hl > 0 else 0.0)


def load_balance(counts: np.ndarray) -> dict:
    """counts int[L, E] -> {"fractions": f_e, "cv": std/mean of f, "max_over_mean": max f * E}."""
    f = np.asarray(counts, dtype=np.float64).sum(0)
    f = f / max(1.0, f.sum())
    E = f.size
    return {
        "fractions": f.tolist(),
        "cv": float(f.std() / f.mean()) if f.mean() > 0 else 0.0,
        "max_over_mean": float(f.max() * E),
    }


def routing_summary(stats: dict) -> dict:
    """MI and load balance per MoE layer and averaged, from :func:`teacher_forced_stats` output."""
    per = {}
    for layer, c in stats["counts"].items():
        mi, nmi = mutual_information(np.array(c))
        per[layer] = {"mi_bits": mi, "mi_norm": nmi, **load_balance(np.array(c))}
    if not per:
        return {"layers": {}, "mi_bits_mean": None, "mi_norm_mean": None, "load_cv_mean": None}
    return {
        "layers": per,
        "mi_bits_mean": float(np.mean([v["mi_bits"] for v in per.values()])),
        "mi_norm_mean": float(np.mean([v["mi_norm"] for v in per.values()])),
        "load_cv_mean": float(np.mean([v["cv"] for v in per.values()])),
    }


@torch.no_grad()
def translate(
    model: Llama,
    tok,
    recs: list[dict],
    max_new_tokens: int = MAX_NEW_TOKENS,
    progress: bool = False,
    batch_size: int = GEN_BATCH,
) -> list[str]:
    """Greedy translations of ``recs``, end token stripped, in the order of ``recs``.

    Prompts are decoded ``batch_size`` at a time, grouped by length (left-padded,
    :func:`engine.model.generate_batch`); ``batch_size=1`` decodes one at a time."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    model.eval()
    eos = end_token_id(tok)
    prompts = [encode_prompt(tok, r["src"], r["lang"]) for r in recs]
    order = sorted(range(len(recs)), key=lambda i: len(prompts[i]))  # similar lengths share a batch
    out: list[str] = [""] * len(recs)
    with tqdm(total=len(recs), desc="translate", disable=not progress, unit="pair") as bar:
        for s in range(0, len(order), batch_size):
            idx = order[s : s + batch_size]
            for i, new in zip(
                idx, generate_batch(model, [prompts[i] for i in idx], max_new_tokens, eos_id=eos)
            ):
                out[i] = tok.decode(new[:-1] if new and new[-1] == eos else new).strip()
            bar.update(len(idx))
    return out


def bleu_tokenizer(lang: str) -> str:
    return "char" if lang in CHAR_TOKENIZED else "13a"


def score_translations(hyps: list[str], recs: list[dict]) -> dict:
    """sacrebleu chrF++ and BLEU per language and their unweighted mean over languages."""
    from sacrebleu.metrics import BLEU, CHRF

    if len(hyps) != len(recs):
        raise ValueError(f"{len(hyps)} hypotheses for {len(recs)} references")
    per: dict[str, dict] = {}
    groups: dict[str, tuple[list, list]] = {}
    for h, r in zip(hyps, recs):
        groups.setdefault(r["lang"], ([], []))
        groups[r["lang"]][0].append(h)
        groups[r["lang"]][1].append(r["tgt"])
    for lang, (hs, rs) in sorted(groups.items()):
        chrf = CHRF(word_order=2).corpus_score(hs, [rs]).score
        bleu = BLEU(tokenize=bleu_tokenizer(lang)).corpus_score(hs, [rs]).score
        per[lang] = {"chrf++": chrf, "bleu": bleu, "n": len(hs)}
    return {
        "per_lang": per,
        "chrf++_mean": float(np.mean([v["chrf++"] for v in per.values()])) if per else None,
        "bleu_mean": float(np.mean([v["bleu"] for v in per.values()])) if per else None,
    }


def sentence_stats(hyps: list[str], recs: list[dict]) -> dict:
    """Per-sentence sacrebleu sufficient statistics: {"chrf++": int[n][24], "bleu": int[n][10]} in
    the order of ``recs`` (BLEU with each language's tokenizer); summing a language's rows and
    calling the metric's ``_compute_score_from_stats`` gives exactly its corpus score (what
    sacrebleu's own paired bootstrap does)."""
    from sacrebleu.metrics import BLEU, CHRF

    if len(hyps) != len(recs):
        raise ValueError(f"{len(hyps)} hypotheses for {len(recs)} references")
    out = {"chrf++": [None] * len(recs), "bleu": [None] * len(recs)}
    groups: dict[str, list[int]] = {}
    for i, r in enumerate(recs):
        groups.setdefault(r["lang"], []).append(i)
    for lang, idx in groups.items():
        hs, rs = [hyps[i] for i in idx], [[recs[i]["tgt"] for i in idx]]
        for key, metric in (
            ("chrf++", CHRF(word_order=2)),
            ("bleu", BLEU(tokenize=bleu_tokenizer(lang))),
        ):
            for i, st in zip(idx, metric._extract_corpus_statistics(hs, rs)):
                out[key][i] = [int(x) for x in st]
    return out


def evaluate_translation(
    model: Llama,
    tok,
    test: list[dict],
    gen_per_lang: int = 200,
    max_new_tokens: int = MAX_NEW_TOKENS,
    batch_size: int = 8,
    progress: bool = False,
    gen_batch: int = GEN_BATCH,
    keep_hyps: bool = False,
) -> dict:
    """Loss/perplexity and routing on all of ``test``; chrF++/BLEU on the first ``gen_per_lang``
    per language.

    ``keep_hyps``: also return "translations": {"lang", "index" (within the language's test pairs),
    "hyps", "stats" (:func:`sentence_stats`)} for every translated pair, for paired bootstrap."""
    t0 = time.perf_counter()
    stats = teacher_forced_stats(model, tok, test, batch_size, progress=progress)
    t1 = time.perf_counter()
    by = _by_lang(test)
    gen = [r for recs in by.values() for r in recs[:gen_per_lang]]
    hyps = (
        translate(model, tok, gen, max_new_tokens, progress, gen_batch) if gen_per_lang > 0 else []
    )
    t2 = time.perf_counter()
    scores = (
        score_translations(hyps, gen)
        if hyps
        else {"per_lang": {}, "chrf++_mean": None, "bleu_mean": None}
    )
    extra = {}
    if keep_hyps and hyps:
        extra["translations"] = {
            "lang": [r["lang"] for r in gen],
            "index": [i for recs in by.values() for i in range(len(recs[:gen_per_lang]))],
            "hyps": hyps,
            "stats": sentence_stats(hyps, gen),
        }
    return {
        **stats,
        "routing": routing_summary(stats),
        "scores": scores,
        "gen_per_lang": gen_per_lang,
        "samples": [
            {"lang": r["lang"], "src": r["src"], "ref": r["tgt"], "hyp": h}
            for r, h in list(zip(gen, hyps))[:: max(1, gen_per_lang)]
        ],
        "eval_seconds": {"loss": t1 - t0, "generate": t2 - t1},
        **extra,
    }


def nli_comparison(
    model: Llama,
    tok,
    recs: list[dict],
    gen_per_lang: int,
    max_new_tokens: int = MAX_NEW_TOKENS,
    progress: bool = False,
) -> dict:
    """The same model on ``ref`` and with every op (router softmax included) on ``nli``.

    Loss and routing on all ``recs`` (teacher forced), chrF++/BLEU on the first
    ``gen_per_lang`` per language. Routing agreement: the fraction of target
    tokens whose top-k expert SET is unchanged, per MoE layer and over all layers.
    """
    import engine

    from ..diagnostics import routing_agreement

    out, ch = {}, {}
    gen = [r for rs in _by_lang(recs).values() for r in rs[:gen_per_lang]]
    for variant in ("ref", "nli"):
        m = model if variant == "ref" else engine.substitute(model, variant="nli")
        t0 = time.perf_counter()
        st = teacher_forced_stats(m, tok, recs, progress=progress, keep_choices=True)
        ch[variant] = st.pop("choices")
        hyps = translate(m, tok, gen, max_new_tokens, progress) if gen else []
        sc = score_translations(hyps, gen) if hyps else {"chrf++_mean": None, "bleu_mean": None}
        out[variant] = {
            "loss_mean": st["loss_mean"],
            "loss": st["loss"],
            "chrf++_mean": sc["chrf++_mean"],
            "bleu_mean": sc["bleu_mean"],
            "seconds": time.perf_counter() - t0,
        }
    per = {str(i): routing_agreement(ch["ref"][i], ch["nli"][i]) for i in ch["ref"]}
    n = {i: ch["ref"][i].shape[0] for i in ch["ref"]}
    total = sum(per[str(i)] * n[i] for i in n) / max(1, sum(n.values()))
    delta = {
        k: (out["nli"][k] - out["ref"][k]) if out["ref"][k] is not None else None
        for k in ("loss_mean", "chrf++_mean", "bleu_mean")
    }
    return {
        **out,
        "delta_nli_minus_ref": delta,
        "routing_agreement": total,
        "routing_agreement_per_layer": per,
        "pairs": len(recs),
        "generated": len(gen),
    }
