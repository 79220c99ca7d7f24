"""Paired bootstrap over test sentences (moe/finetune/bootstrap.py) and the stored sentence
statistics."""

from naive import naive_paired_bootstrap, naive_paired_contrast
import pytest

from moe.finetune.bootstrap import paired_bootstrap, paired_contrast, run_table, score
from moe.finetune.translate_eval import score_translations, sentence_stats

SUM_ORDER_TOL = 1e-9  # means over runs/languages summed in a different order than the oracle's

REFS = {
    "de": [
        "Das ist ein kleines Haus.",
        "Ich habe heute keine Zeit.",
        "Der Hund schläft im Garten.",
        "Wir fahren morgen nach Berlin.",
        "Das Wetter ist schön.",
    ],
    "ja": [
        "これは小さな家です。",
        "今日は時間がありません。",
        "犬は庭で寝ています。",
        "明日ベルリンに行きます。",
    ],
}
HYP_A = {
    "de": [
        "Das ist ein kleines Haus.",
        "Ich habe keine Zeit heute.",
        "Der Hund schläft.",
        "Morgen fahren wir nach Berlin.",
        "Das Wetter ist gut.",
    ],
    "ja": [
        "これは小さい家です。",
        "今日は時間がない。",
        "犬は庭で寝ています。",
        "明日ベルリンへ行く。",
    ],
}
HYP_B = {
    "de": [
        "Dies ist Haus.",
        "Ich habe Zeit.",
        "Ein Hund im Garten.",
        "Berlin morgen.",
        "Wetter schön.",
    ],
    "ja": ["家です。", "時間。", "犬が寝る。", "ベルリン。"],
}
HYP_C = {
    "de": [
        "Das ist ein Haus.",
        "Ich habe heute Zeit.",
        "Der Hund schläft im Haus.",
        "Wir fahren nach Berlin.",
        "Das Wetter ist schön.",
    ],
    "ja": [
        "これは家です。",
        "今日は時間がありません。",
        "犬は寝ています。",
        "明日ベルリンに行きます。",
    ],
}


def _recs():
    return [{"lang": g, "tgt": t} for g in REFS for t in REFS[g]]


def _translations(hyps):
    recs = _recs()
    hs = [hyps[r["lang"]][i] for g in REFS for i, r in enumerate(x for x in recs if x["lang"] == g)]
    return {
        "lang": [r["lang"] for r in recs],
        "index": [i for g in REFS for i in range(len(REFS[g]))],
        "hyps": hs,
        "stats": sentence_stats(hs, recs),
    }


@pytest.mark.parametrize("metric", ["chrf++", "bleu"])
def test_summed_sentence_stats_give_the_corpus_score(metric):
    t = _translations(HYP_A)
    sc = score_translations(t["hyps"], _recs())
    assert score(run_table(t, metric), metric) == sc[f"{metric}_mean"]


@pytest.mark.parametrize("metric", ["chrf++", "bleu"])
def test_paired_bootstrap_matches_string_level_oracle(metric):
    a, b, c = _translations(HYP_A), _translations(HYP_B), _translations(HYP_C)
    got = paired_bootstrap([a, c], [b], metric, n=25, seed=3)
    want = naive_paired_bootstrap([HYP_A, HYP_C], [HYP_B], REFS, list(REFS), metric, n=25, seed=3)
    assert (got["delta"], got["lo"], got["hi"]) == pytest.approx(want, rel=0, abs=SUM_ORDER_TOL)
    assert got["delta"] > 0 and got["lo"] <= got["delta"] <= got["hi"]
    assert got["sentences"] == 9 and got["n_resamples"] == 25


def test_identical_methods_have_a_zero_interval():
    a = _translations(HYP_A)
    got = paired_bootstrap([a], [a], "chrf++", n=10)
    assert got["delta"] == got["lo"] == got["hi"] == 0.0


def test_different_sentence_sets_are_refused():
    a = _translations(HYP_A)
    b = {**a, "index": [i + 1 for i in a["index"]]}
    with pytest.raises(ValueError, match="different test sentences"):
        paired_bootstrap([a], [b], "bleu", n=2)


@pytest.mark.parametrize("metric", ["chrf++", "bleu"])
def test_paired_contrast_of_four_methods_matches_the_string_level_oracle(metric):
    """How much the gap A - B changes between two settings: (A2 - B2) - (A1 - B1)."""
    a, b, c = _translations(HYP_A), _translations(HYP_B), _translations(HYP_C)
    w = [1.0, -1.0, -1.0, 1.0]
    got = paired_contrast([[a], [c], [c], [b]], w, metric, n=25, seed=3)
    want = naive_paired_contrast([[HYP_A], [HYP_C], [HYP_C], [HYP_B]], w, REFS, list(REFS),
                                 metric, n=25, seed=3)  # fmt: skip
    assert (got["delta"], got["lo"], got["hi"]) == pytest.approx(want, rel=0, abs=SUM_ORDER_TOL)
    sa, sb, sc = (score(run_table(t, metric), metric) for t in (a, b, c))
    assert got["delta"] == pytest.approx((sa - sc) - (sc - sb), rel=0, abs=SUM_ORDER_TOL)
    assert got["lo"] <= got["delta"] <= got["hi"]
    # A - B is the two-method contrast, the same resamples: bit for bit
    two = paired_contrast([[a], [b]], [1.0, -1.0], metric, n=25, seed=3)
    assert two == paired_bootstrap([a], [b], metric, n=25, seed=3)
    with pytest.raises(ValueError, match="one weight"):
        paired_contrast([[a], [b]], [1.0], metric, n=2)
