"""moe.finetune.sft / moe.finetune.train_setup / moe.finetune.train /
moe.finetune.translate_eval on the tiny config."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from engine import load_tiny
from moe.finetune.sft import (
    IGNORE,
    batch_indices,
    collate,
    encode_example,
    end_token_id,
    predicting_positions,
    prompt_format,
    selected_target_loss,
    target_loss,
)
from moe.finetune.train import load_state, train
from moe.finetune.train_setup import PRINCIPAL_NAMES, TrainConfig, lr_at, set_stage, trainable_names
from moe.finetune.translate_eval import (
    evaluate_translation,
    load_balance,
    mutual_information,
    score_translations,
)

LAYERS = (0, 1)


def _recs(n=48):
    langs = [("de", "Wort"), ("ja", "単語"), ("ar", "كلمة")]
    return [
        {"lang": lang, "src": f"word {i}", "tgt": f"{w} {i}"} for i in range(n) for lang, w in langs
    ]


def _cfg(method="sparse", **kw):
    base = dict(
        method=method,
        steps=4,
        batch_size=4,
        num_experts=4,
        top_k=2,
        layers=LAYERS,
        warmup_steps=1,
        lr=1e-3,
        ckpt_every=2,
        calib_examples=8,
    )
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture(scope="module")
def tiny():
    torch.set_num_threads(1)
    return load_tiny()


# ------------------------------------------------------------------ sft
def test_prompt_and_labels(tiny):
    _, tok = tiny
    assert prompt_format(tok) == "plain"
    ex = encode_example(tok, {"lang": "de", "src": "Save", "tgt": "Speichern"})
    assert tok.decode(list(ex.ids[: ex.n_prompt])) == "Translate to German:\nSave\n"
    assert (
        ex.ids[-1] == end_token_id(tok)
        and tok.decode(list(ex.ids[ex.n_prompt : -1])) == "Speichern"
    )
    short = encode_example(tok, {"lang": "de", "src": "a", "tgt": "b"})
    ids, labels = collate([ex, short])
    assert ids.shape == labels.shape == (2, len(ex.ids))
    assert (labels[0, : ex.n_prompt] == IGNORE).all() and (
        labels[0, ex.n_prompt :] == ids[0, ex.n_prompt :]
    ).all()
    assert (labels[1, len(short.ids) :] == IGNORE).all() and int((labels[1] != IGNORE).sum()) == 2


# the head on target positions only: the same rows of the head GEMM (BLAS may block fewer rows
# differently), one CE mean instead of a sum / count
SELECTED_LOSS_RTOL = 1e-6


def test_loss_from_selected_positions_equals_full_loss(tiny):
    model, tok = tiny
    exs = [encode_example(tok, r) for r in _recs(4)[:5]]
    ids, labels = collate(exs)
    at = predicting_positions(labels)
    assert int(at.sum()) == int((labels[:, 1:] != IGNORE).sum()) and not at[:, -1].any()
    with torch.no_grad():
        full = target_loss(model(ids), labels)
        sel_logits = model(ids, logits_at=at)
        torch.testing.assert_close(
            sel_logits, model(ids)[at], rtol=SELECTED_LOSS_RTOL, atol=SELECTED_LOSS_RTOL
        )
        assert math.isclose(
            float(selected_target_loss(sel_logits, labels)), float(full), rel_tol=SELECTED_LOSS_RTOL
        )
    with pytest.raises(ValueError, match="logits_at must be bool"):
        model(ids, logits_at=at.long())


def test_batch_indices_walk_seeded_epochs():
    n, b = 10, 4
    seq = [i for s in range(5) for i in batch_indices(n, b, 3, s)]  # 20 = two epochs
    assert sorted(seq[:10]) == list(range(10)) and sorted(seq[10:]) == list(range(10))
    assert seq[:10] != seq[10:]
    assert batch_indices(n, b, 3, 2) == seq[8:12] and batch_indices(n, b, 4, 0) != seq[:4]


def test_lr_schedule():
    c = TrainConfig(steps=100, lr=1.0, min_lr_frac=0.1, warmup_steps=10)
    assert lr_at(c, 0) == pytest.approx(0.1) and lr_at(c, 9) == pytest.approx(1.0)
    assert lr_at(c, 10) == pytest.approx(1.0) and lr_at(c, 99) == pytest.approx(0.1)
    assert all(lr_at(c, t) >= lr_at(c, t + 1) for t in range(10, 99))


def test_config_validation():
    with pytest.raises(ValueError, match="unknown method"):
        TrainConfig(method="nope")
    with pytest.raises(ValueError, match="spri' only"):
        TrainConfig(method="sparse", stage1_frac=0.5)
    with pytest.raises(ValueError, match="spri' only"):
        TrainConfig(method="drop", grow_select="uniform")


# ------------------------------------------------------------------ every method runs
METHOD_CASES = [
    ("dense_full", {}),
    ("dense_ffn", {}),
    ("sparse", {}),
    ("drop", {"upcycle_opts": {"ratio": 0.5}}),
    ("partition", {}),
    ("cluster", {}),
    ("spri", {"stage1_frac": 0.5}),
    ("spri", {}),
    ("spri", {"grow_select": "uniform"}),
    ("spri", {"grow_select": "saliency"}),
]


@pytest.mark.parametrize(
    "method,kw",
    METHOD_CASES,
    ids=[f"{m}{'-' + '-'.join(map(str, k.values())) if k else ''}" for m, k in METHOD_CASES],
)
def test_method_runs_and_trains_only_its_parameters(tiny, method, kw):
    dense, tok = tiny
    before = {n: p.detach().clone() for n, p in dense.named_parameters()}
    cfg = _cfg(method, **kw)
    model, s = train(dense, tok, _recs(), cfg, None, progress=False)
    assert all(
        torch.equal(p, before[n]) for n, p in dense.named_parameters()
    )  # dense model untouched
    assert (
        s["steps_done"] == 4
        and len(s["loss_log"]) == 4
        and all(math.isfinite(v) for v in s["loss_log"])
    )
    assert s["target_tokens"] > 0 and s["tokens"] > s["target_tokens"]
    trained = set(trainable_names(model, cfg, 2))
    for n, p in model.named_parameters():
        if n in before and n not in trained:  # frozen parameters keep the dense values
            assert torch.equal(p, before[n]), n
    changed = [
        n
        for n, p in model.named_parameters()
        if n in trained and (n not in before or not torch.equal(p, before[n]))
    ]
    assert changed, "no trainable parameter moved"
    if method == "dense_ffn":
        assert trained == {n for n, _ in dense.named_parameters() if ".mlp." in n}
    if method not in ("dense_full", "dense_ffn"):
        assert all(".mlp." in n for n in trained)
        E = model.moe_config.num_experts
        assert E == 4 and model.moe_config.top_k == 2  # growth 2 -> 4 keeps top-k
        assert s["grown"] == ("grow_select" in kw)
        assert s["params"]["active"] < s["params"]["total"]


# ------------------------------------------------------------------ equal trainable scope
@pytest.mark.parametrize(
    "method,kw", [("sparse", {}), ("spri", {"stage1_frac": 0.5}), ("cluster", {})]
)
def test_full_scope_trains_every_parameter(tiny, method, kw):
    dense, tok = tiny
    before = {n: p.detach().clone() for n, p in dense.named_parameters()}
    cfg = _cfg(method, scope="full", **kw)
    model, s = train(dense, tok, _recs(), cfg, None, progress=False)
    names = [n for n, _ in model.named_parameters()]
    assert trainable_names(model, cfg, 2) == names
    stage1 = set(trainable_names(model, cfg, 1))
    assert stage1 == {n for n in names if not (kw and n.rsplit(".", 1)[-1] in PRINCIPAL_NAMES)}
    moved = {
        n for n, p in model.named_parameters() if n in before and not torch.equal(p, before[n])
    }
    assert {"embed.weight", "layers.0.attn.q_proj.weight", "layers.0.attn_norm.weight"} <= moved
    assert s["params"]["trainable"] == s["params"]["total"] > s["params"]["active"]


def test_scope_and_device_defaults_keep_the_cache_key():
    d = _cfg("spri").to_dict()
    assert (
        "scope" not in d and "device" not in d
    )  # results cached before these fields keep matching
    full = _cfg("spri", scope="full", device="cuda").to_dict()
    assert full["scope"] == "full" and full["device"] == "cuda"
    assert TrainConfig.from_dict(full) == _cfg("spri", scope="full", device="cuda")
    assert TrainConfig.from_dict(d) == _cfg("spri")
    for bad, msg in (({"scope": "all"}, "scope"), ({"device": "tpu"}, "device")):
        with pytest.raises(ValueError, match=msg):
            _cfg("spri", **bad)
    with pytest.raises(ValueError, match="MoE methods"):
        _cfg("dense_full", scope="full")


# ------------------------------------------------------------------ SPRI two-stage
def test_two_stage_freezes_exactly_the_principal_part(tiny, tmp_path):
    dense, tok = tiny
    cfg = _cfg("spri", stage1_frac=0.5)
    m1, s1 = train(dense, tok, _recs(), cfg, tmp_path, stop_after=2, progress=False)
    init, _ = train(
        dense,
        tok,
        _recs(),
        _cfg("spri", stage1_frac=0.5, steps=4),
        None,
        stop_after=0,
        progress=False,
    )
    moe_names = {n for n, _ in m1.named_parameters() if ".mlp." in n}
    stage1 = set(trainable_names(m1, cfg, 1))
    principal = {n for n in moe_names if n.rsplit(".", 1)[-1] in PRINCIPAL_NAMES}
    assert principal and stage1 == moe_names - principal
    set_stage(m1, cfg, 1)
    assert {n for n, p in m1.named_parameters() if p.requires_grad} == stage1
    p0 = dict(init.named_parameters())
    for n, p in m1.named_parameters():
        if n in principal:
            assert torch.equal(p, p0[n]), f"{n} moved in stage 1"
        elif n in stage1 and not n.endswith("router.bias"):
            assert not torch.equal(p, p0[n]), f"{n} did not train in stage 1"
    m2, s2 = train(dense, tok, _recs(), cfg, tmp_path, progress=False)  # resume into stage 2
    assert s2["steps_done"] == 4
    assert all(not torch.equal(p, p0[n]) for n, p in m2.named_parameters() if n in principal)


# ------------------------------------------------------------------ resume determinism
@pytest.mark.parametrize(
    "method,kw,stop",
    [
        ("dense_full", {}, 3),
        ("spri", {"stage1_frac": 0.25, "grow_select": "saliency"}, 3),
        ("cluster", {}, 2),
    ],
)
def test_interrupt_and_resume_is_bitwise_identical(tiny, tmp_path, method, kw, stop):
    dense, tok = tiny
    cfg = _cfg(method, steps=6, ckpt_every=100, **kw)
    straight, s_a = train(dense, tok, _recs(), cfg, tmp_path / "a", progress=False)
    half, s_h = train(dense, tok, _recs(), cfg, tmp_path / "b", stop_after=stop, progress=False)
    assert s_h["steps_done"] == stop and not s_h["finished"]
    resumed, s_b = train(dense, tok, _recs(), cfg, tmp_path / "b", progress=False)
    assert s_b["finished"] and s_b["loss_log"] == s_a["loss_log"]
    sa, sb = straight.state_dict(), resumed.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    oa = load_state(tmp_path / "a" / "state.pt", cfg)["optimizer"]["state"]
    ob = load_state(tmp_path / "b" / "state.pt", cfg)["optimizer"]["state"]
    assert oa.keys() == ob.keys() and all(
        torch.equal(oa[i]["exp_avg_sq"], ob[i]["exp_avg_sq"]) for i in oa
    )
    with pytest.raises(ValueError, match="another run config"):
        train(
            dense,
            tok,
            _recs(),
            _cfg(method, steps=7, ckpt_every=100, **kw),
            tmp_path / "b",
            progress=False,
        )


class _Payload:
    """Unpickling this runs code: it creates the file ``marker`` (a stand-in for an attacker's
    payload)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').close()",))


def _plain(obj) -> bool:
    """True if obj is built only of tensors and dict / list / tuple / str / int / float / bool /
    None."""
    if isinstance(obj, dict):
        return all(isinstance(k, (str, int)) and _plain(v) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return all(_plain(v) for v in obj)
    return obj is None or isinstance(obj, (torch.Tensor, str, int, float, bool))


def test_resume_state_is_plain_data_and_a_crafted_state_is_refused(tiny, tmp_path):
    dense, tok = tiny
    cfg = _cfg("spri", steps=2, ckpt_every=100, grow_select="uniform")
    train(dense, tok, _recs(), cfg, tmp_path / "run", progress=False)
    path = tmp_path / "run" / "state.pt"
    state = load_state(path, cfg)  # the safe loader reads what train wrote
    assert _plain(state) and isinstance(state["rng"]["python"]["internal"], list)
    # a crafted state.pt: the genuine state plus an object whose unpickling runs code
    marker = tmp_path / "payload_ran"
    crafted = tmp_path / "evil" / "state.pt"
    crafted.parent.mkdir()
    torch.save({**state, "log": _Payload(marker)}, crafted)
    torch.load(
        crafted, weights_only=False
    )  # the unsafe loader runs it: the file really is a payload
    assert marker.exists()
    marker.unlink()
    with pytest.raises(ValueError, match=r"refused to load.*exec"):
        load_state(crafted, cfg)
    with pytest.raises(ValueError, match="refused to load"):
        train(
            dense, tok, _recs(), cfg, crafted.parent, progress=False
        )  # resuming from it is refused too
    assert not marker.exists()


# ------------------------------------------------------------------ evaluation
def test_mutual_information_and_load_balance():
    assert mutual_information(np.eye(4) * 10) == pytest.approx((2.0, 1.0))
    assert mutual_information(np.ones((3, 5)))[0] == pytest.approx(0.0, abs=1e-12)
    mi, nmi = mutual_information(np.array([[3, 1], [1, 3]]))
    p = np.array([[3, 1], [1, 3]]) / 8
    assert mi == pytest.approx(float((p * np.log2(p / 0.25)).sum())) and nmi == pytest.approx(mi)
    lb = load_balance(np.array([[2, 2, 0, 0], [2, 2, 0, 0]]))
    assert (
        lb["fractions"] == [0.5, 0.5, 0, 0]
        and lb["max_over_mean"] == 2.0
        and lb["cv"] == pytest.approx(1.0)
    )


def test_scores_are_sacrebleu_per_language():
    de, ja = (
        "Das ist ein kleiner Test der Welt",
        "こんにちは世界",
    )  # BLEU needs >= 4 tokens (ja: characters)
    recs = [{"lang": "de", "src": "a", "tgt": de}, {"lang": "ja", "src": "b", "tgt": ja}]
    perfect = score_translations([de, ja], recs)
    assert perfect["per_lang"]["de"]["chrf++"] == pytest.approx(100) and perfect[
        "bleu_mean"
    ] == pytest.approx(100)
    bad = score_translations(["Tschüss", "さようなら"], recs)
    assert bad["chrf++_mean"] < 30


def test_evaluate_end_to_end(tiny):
    dense, tok = tiny
    model, _ = train(dense, tok, _recs(), _cfg("spri", steps=2), None, progress=False)
    test = _recs(6)
    ev = evaluate_translation(model, tok, test, gen_per_lang=2, max_new_tokens=4)
    assert set(ev["loss"]) == {"de", "ja", "ar"} and all(
        math.isfinite(v) and v > 0 for v in ev["loss"].values()
    )
    assert ev["ppl"]["de"] == pytest.approx(math.exp(ev["loss"]["de"]))
    for layer in map(str, LAYERS):  # k = 2 assignments per target token
        assert np.array(ev["counts"][layer]).sum() == 2 * sum(ev["target_tokens"].values())
    assert 0 <= ev["routing"]["mi_norm_mean"] <= 1
    assert sum(v["n"] for v in ev["scores"]["per_lang"].values()) == 6


def test_evaluate_keeps_hypotheses_and_sentence_stats(tiny):
    dense, tok = tiny
    model, _ = train(dense, tok, _recs(), _cfg("sparse", steps=2), None, progress=False)
    test = _recs(6)
    ev = evaluate_translation(
        model, tok, test, gen_per_lang=3, max_new_tokens=4, gen_batch=2, keep_hyps=True
    )
    t = ev["translations"]
    assert len(t["hyps"]) == 9 and sorted(t["lang"]) == sorted(["de", "ja", "ar"] * 3)
    assert [i for g, i in zip(t["lang"], t["index"]) if g == "de"] == [0, 1, 2]
    assert (
        len(t["stats"]["chrf++"][0]) == 24 and len(t["stats"]["bleu"][0]) == 10
    )  # chrF++ 8 orders x 3, BLEU 2 + 2 x 4
    same = evaluate_translation(model, tok, test, gen_per_lang=3, max_new_tokens=4, gen_batch=2)
    assert same["scores"] == ev["scores"] and "translations" not in same
