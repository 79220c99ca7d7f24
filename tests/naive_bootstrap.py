"""Paired bootstrap oracle (moe/finetune/bootstrap.py).

Every resample rebuilds the resampled hypothesis / reference STRING lists and calls sacrebleu's
corpus_score on them (no sufficient statistics involved).
"""


def naive_paired_bootstrap(a_hyps, b_hyps, refs, langs, metric, n, seed):
    """a_hyps / b_hyps: lists (runs) of {lang: [hyp, ...]}; refs {lang: [ref, ...]}
    -> (delta, lo, hi)."""
    return naive_paired_contrast([a_hyps, b_hyps], [1, -1], refs, langs, metric, n, seed)


def naive_paired_contrast(methods, weights, refs, langs, metric, n, seed):
    """methods: lists (runs) of {lang: [hyp, ...]}; the contrast sum_i w_i mean-score(methods[i])
    rescored from the strings on each resample -> (delta, lo, hi)."""
    import numpy as _np
    from sacrebleu.metrics import BLEU as _BLEU
    from sacrebleu.metrics import CHRF as _CHRF

    def corpus(lang, hs, rs):
        if metric == "chrf++":
            return _CHRF(word_order=2).corpus_score(hs, [rs]).score
        tok = "char" if lang in ("ja", "zh", "zh_Hans", "zh_Hant", "th") else "13a"
        return _BLEU(tokenize=tok).corpus_score(hs, [rs]).score

    def contrast(picks):
        def run_score(h):
            return sum(
                corpus(g, [h[g][i] for i in picks[g]], [refs[g][i] for i in picks[g]])
                for g in sorted(langs)
            ) / len(langs)

        return sum(w * sum(run_score(h) for h in m) / len(m) for w, m in zip(weights, methods))

    delta = contrast({g: list(range(len(refs[g]))) for g in langs})
    rng = _np.random.default_rng(seed)
    ds = []
    for _ in range(n):
        picks = {}
        for g in sorted(langs):
            picks[g] = [int(i) for i in rng.integers(0, len(refs[g]), len(refs[g]))]
        ds.append(contrast(picks))
    lo, hi = _np.percentile(ds, [2.5, 97.5])
    return delta, float(lo), float(hi)
