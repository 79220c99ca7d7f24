"""Paired bootstrap over test sentences for the difference of two methods' chrF++ / BLEU,
and for any weighted sum of several methods' scores (:func:`paired_contrast`: how a gap
changes between two budgets).

The score of a run is the unweighted mean over languages of each language's
corpus score (as in :func:`moe.finetune.translate_eval.score_translations`),
computed by sacrebleu from summed per-sentence sufficient statistics (what
:func:`moe.finetune.translate_eval.sentence_stats` stores; sacrebleu's own
paired bootstrap does the same). A method's score is the mean over its runs
(seeds). One resample draws, for every language in sorted order, ``n_lang``
sentence positions with replacement (``numpy.random.default_rng(seed)``,
``integers(0, n_lang, n_lang)``); the same positions are used for every run
of both methods (paired). The interval is the 2.5 / 97.5 percentile of the
resampled differences A - B.
"""

from __future__ import annotations

import numpy as np

METRICS = ("chrf++", "bleu")
N_RESAMPLES = 1000
SEED = 0
CI = 0.95


def _scorer(metric: str, lang: str):
    from sacrebleu.metrics import BLEU, CHRF

    from .translate_eval import bleu_tokenizer

    m = CHRF(word_order=2) if metric == "chrf++" else BLEU(tokenize=bleu_tokenizer(lang))
    return lambda stats: m._compute_score_from_stats([int(x) for x in stats]).score


def run_table(translations: dict, metric: str) -> dict[str, dict[int, list[int]]]:
    """One run's stored translations -> {lang: {sentence index: stats}} for ``metric``."""
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    out: dict[str, dict[int, list[int]]] = {}
    for lang, i, st in zip(
        translations["lang"], translations["index"], translations["stats"][metric]
    ):
        out.setdefault(lang, {})[int(i)] = st
    return out


def _aligned(runs: list[dict]) -> tuple[list[str], dict[str, list[int]]]:
    """The languages and per-language sentence indices every run has (must be the same set)."""
    langs = sorted(runs[0])
    for r in runs[1:]:
        if sorted(r) != langs or any(sorted(r[g]) != sorted(runs[0][g]) for g in langs):
            raise ValueError(
                "runs translated different test sentences; paired bootstrap needs the same ones"
            )
    return langs, {g: sorted(runs[0][g]) for g in langs}


def score(
    run: dict[str, dict[int, list[int]]], metric: str, counts: dict[str, np.ndarray] | None = None
) -> float:
    """Mean over languages of the corpus score; ``counts[lang]`` int[n]: how often each sentence (in
    sorted-index order) is in the sample (None: once each)."""
    vals = []
    for lang in sorted(run):
        ids = sorted(run[lang])
        st = np.array([run[lang][i] for i in ids], dtype=np.int64)  # [n, m]
        c = np.ones(len(ids), dtype=np.int64) if counts is None else counts[lang]
        vals.append(_scorer(metric, lang)(c @ st))
    return float(np.mean(vals))


def paired_bootstrap(
    a_runs: list[dict], b_runs: list[dict], metric: str, n: int = N_RESAMPLES, seed: int = SEED
) -> dict:
    """A - B (each the mean over its runs' stored translations) with a paired-bootstrap 95%
    interval.

    a_runs / b_runs: lists of ``translations`` dicts (see module doc). Returns {"delta", "lo", "hi",
    "p_a_not_better" (share of resamples with A - B <= 0), "n_resamples", "seed", "sentences"}."""
    if not a_runs or not b_runs:
        raise ValueError("paired_bootstrap needs at least one run per method")
    return paired_contrast([a_runs, b_runs], [1.0, -1.0], metric, n, seed)


def paired_contrast(
    methods: list[list[dict]], weights: list[float], metric: str, n: int = N_RESAMPLES,
    seed: int = SEED,
) -> dict:  # fmt: skip
    """sum_i weights[i] * score(methods[i]) (each the mean over its runs), with a paired-bootstrap
    95% interval: every resample scores every run of every method on the same sentences. With
    methods (A, B) and weights (1, -1) it is :func:`paired_bootstrap`'s A - B, the same
    resamples; (A2, B2, A1, B1) with (1, -1, -1, 1) is how much the gap A - B changes from
    setting 1 to setting 2. "p_a_not_better": the share of resamples with a contrast <= 0."""
    if len(methods) != len(weights) or any(not m for m in methods):
        raise ValueError("paired_contrast needs one weight and at least one run per method")
    tables = [[run_table(t, metric) for t in m] for m in methods]
    flat = [t for m in tables for t in m]
    langs, ids = _aligned(flat)
    scorers = {g: _scorer(metric, g) for g in langs}
    stats = {
        g: [np.array([r[g][i] for i in ids[g]], dtype=np.int64) for r in flat] for g in langs
    }  # [n_g, m]
    ends = np.cumsum([0] + [len(m) for m in tables])

    def value(counts):
        per_run = np.mean(
            [[scorers[g](counts[g] @ stats[g][k]) for g in langs] for k in range(len(flat))],
            axis=1,
        )  # [runs] mean over languages
        return float(sum(w * per_run[a:b].mean() for w, a, b in zip(weights, ends[:-1], ends[1:])))

    delta = value({g: np.ones(len(ids[g]), dtype=np.int64) for g in langs})
    rng = np.random.default_rng(seed)
    ds = np.empty(n)
    for r in range(n):
        counts = {}
        for g in langs:
            pick = rng.integers(0, len(ids[g]), len(ids[g]))
            counts[g] = np.bincount(pick, minlength=len(ids[g]))
        ds[r] = value(counts)
    lo, hi = np.percentile(ds, [100 * (1 - CI) / 2, 100 * (1 + CI) / 2])
    return {
        "delta": delta,
        "lo": float(lo),
        "hi": float(hi),
        "p_a_not_better": float(np.mean(ds <= 0)),
        "n_resamples": n,
        "seed": seed,
        "sentences": int(sum(len(v) for v in ids.values())),
    }
