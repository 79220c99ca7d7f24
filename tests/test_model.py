"""engine.model and engine.load_model("tiny"): the tiny LLaMA loads, runs, is causal and seeded."""

import pytest
import torch

import engine
from engine.model import Llama, LlamaConfig, generate, generate_batch
from engine.substitution import substitute


def test_tiny_loads_and_runs():
    model, tok = engine.load_model("tiny")
    assert model.cfg == LlamaConfig.tiny(vocab_size=257)
    assert tok.get_vocab_size() == 257
    ids = torch.tensor([tok.encode("hello, tiny model").ids])
    logits = model(ids)
    assert logits.shape == (1, ids.shape[1], 257)
    assert logits.dtype == torch.float32 and torch.isfinite(logits).all()


def test_tiny_is_seeded():
    a, _ = engine.load_model("tiny")
    b, _ = engine.load_model("tiny")
    for (na, pa), (nb, pb) in zip(a.named_parameters(), b.named_parameters()):
        assert na == nb and torch.equal(pa, pb)
    c, _ = engine.load_tiny(seed=1)
    assert not torch.equal(a.layers[0].attn.q_proj.weight, c.layers[0].attn.q_proj.weight)


def test_causal_and_tied():
    model, _ = engine.load_model("tiny")
    assert model.lm_head.weight is model.embed.weight
    x = torch.randint(0, 257, (1, 12), generator=torch.Generator().manual_seed(0))
    y = x.clone()
    y[0, 8:] = (y[0, 8:] + 1) % 257
    with torch.no_grad():
        lx, ly = model(x), model(y)
    assert torch.equal(lx[0, :8], ly[0, :8])  # earlier positions do not see later tokens
    assert not torch.allclose(lx[0, 8:], ly[0, 8:])


def test_kv_cache_generation_matches_full_forward():
    model, _ = engine.load_model("tiny")
    x = torch.tensor([[72, 101, 108, 108, 111]])
    out = generate(model, x, max_new_tokens=4)
    assert out.shape == (1, 9) and torch.equal(out[:, :5], x)
    with torch.no_grad():  # greedy continuation recomputed without a cache
        full = model(out[:, :-1])
    assert torch.equal(full[0, 4:].argmax(-1), out[0, 5:])


# a left-padded row computes what it computes alone; the batched GEMMs may round differently
PADDED_ROW_ATOL = 1e-5


def test_left_padded_rows_equal_their_unpadded_forward():
    model, _ = engine.load_model("tiny")
    g = torch.Generator().manual_seed(2)
    rows = [torch.randint(1, 257, (n,), generator=g) for n in (7, 3, 11)]
    ids = torch.zeros(3, 11, dtype=torch.long)
    valid = torch.zeros(3, 11, dtype=torch.bool)
    for b, r in enumerate(rows):
        ids[b, 11 - len(r) :], valid[b, 11 - len(r) :] = r, True
    with torch.no_grad():
        batched = model(ids, valid=valid)  # [3, 11, V]
        for b, r in enumerate(rows):
            alone = model(r[None])[0]  # [n, V]
            assert torch.isfinite(batched[b]).all()  # pad rows too (a pad query sees its own key)
            torch.testing.assert_close(
                batched[b, 11 - len(r) :], alone, rtol=0, atol=PADDED_ROW_ATOL
            )
    with pytest.raises(ValueError, match="valid must be bool"):
        model(ids, valid=valid[:, :5])


@pytest.mark.parametrize("mode", ["ref", "nli"])
def test_batched_greedy_decoding_equals_one_at_a_time(mode):
    model, _ = engine.load_model("tiny")
    if mode == "nli":
        model = substitute(model, variant="nli")
    g = torch.Generator().manual_seed(1)
    prompts = [torch.randint(1, 257, (n,), generator=g).tolist() for n in (3, 9, 1, 17, 5)]
    single = [generate(model, torch.tensor([p]), 10)[0, len(p) :].tolist() for p in prompts]
    assert generate_batch(model, prompts, 10) == single
    eos = single[1][3]  # a token some rows emit: they stop there, the others go on
    single = [
        generate(model, torch.tensor([p]), 10, eos_id=eos)[0, len(p) :].tolist() for p in prompts
    ]
    assert any(len(s) < 10 for s in single) and any(len(s) == 10 for s in single)
    assert generate_batch(model, prompts, 10, eos_id=eos) == single
    with pytest.raises(ValueError, match="no empty prompt"):
        generate_batch(model, [[1], []], 4)


def test_bad_inputs():
    model, _ = engine.load_model("tiny")
    with pytest.raises(ValueError, match="batch, seq"):
        model(torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match="max_seq_len"):
        model(torch.zeros(1, 513, dtype=torch.long))
    with pytest.raises(ValueError, match="unknown model"):
        engine.load_model("gpt-17")
    with pytest.raises(ValueError, match="n_heads"):
        LlamaConfig(dim=64, n_heads=5)


def test_model_resolver_hook():
    sentinel = (Llama(LlamaConfig.tiny()), None)

    def fn(name):
        return sentinel if name == "my-checkpoint" else None

    engine.register_model_resolver(fn)
    try:
        assert engine.load_model("my-checkpoint") is sentinel
        assert engine.load_model("tiny")[0] is not sentinel[0]
    finally:
        engine._RESOLVERS.remove(fn)
