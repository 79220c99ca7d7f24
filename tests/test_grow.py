"""moe/growth.py on the tiny config."""

import pytest
import torch

from engine.model import Llama, LlamaConfig, init_weights
from moe.checkpoint import load_checkpoint, save_checkpoint
from moe.diagnostics import chosen_experts, logit_kl, mapped_routing_agreement, router_logits
from moe.growth import SELECTORS, allocate_copies, grow, grow_sources, grown_sources, utility_scores
from moe.layer import moe_layers
from moe.upcycling import upcycle


@pytest.fixture(scope="module")
def ids():
    return torch.randint(0, 256, (8, 32), generator=torch.Generator().manual_seed(3))


@pytest.fixture(scope="module")
def base(ids):
    dense = init_weights(Llama(LlamaConfig.tiny()), seed=1).eval()
    return upcycle(dense, "drop", 4, 2, router_std=0.5)


@pytest.mark.parametrize("select", SELECTORS)
def test_grow_keeps_topk_and_multiplies_experts(base, ids, select):
    before = {k: v.clone() for k, v in base.state_dict().items()}
    g = grow(base, 2, select, calib_ids=ids)
    assert all(torch.equal(before[k], v) for k, v in base.state_dict().items())  # input untouched
    assert g.moe_config.num_experts == 8 and g.moe_config.top_k == 2
    for (i, old), (_, new) in zip(moe_layers(base), moe_layers(g)):
        assert new.num_experts == 8 and new.top_k == old.top_k == 2
        src = grown_sources(g, i)
        assert torch.equal(src[:4], torch.arange(4))
        counts = torch.bincount(src, minlength=4)
        assert counts.max() <= 3 and counts.min() >= 1 and counts.sum() == 8
        assert torch.equal(new.w_gate, old.w_gate[src]) and torch.equal(new.w_down, old.w_down[src])
        with torch.no_grad():
            _, logits = new(torch.randn(10, 64))
        assert logits.shape == (10, 8)


def test_allocate_copies_greedy_and_capped():
    s = torch.tensor([5.0, 1.0, 3.0, 2.0])
    assert allocate_copies(s, 2, uniform=False).tolist() == [3, 1, 3, 1]
    assert allocate_copies(s, 3, uniform=False).tolist() == [3, 3, 3, 3]
    assert allocate_copies(s, 4, uniform=True).tolist() == [4, 4, 4, 4]
    with pytest.raises(ValueError, match="cap"):
        allocate_copies(s, 4, uniform=False)
    # exact ties go to the lower index
    assert allocate_copies(torch.ones(4), 2, uniform=False).tolist() == [3, 3, 1, 1]
    assert grow_sources(torch.tensor([3, 1, 2])).tolist() == [0, 1, 2, 0, 0, 2]


def test_split_router_preserves_grouped_softmax_mass(base):
    g = grow(base, 2, "weight_norm", router_init="split", noise=0.0, dup_share=None)
    x = torch.randn(50, 64)
    for (i, old), (_, new) in zip(moe_layers(base), moe_layers(g)):
        with torch.no_grad():
            p_old = torch.softmax(old.router(x).double(), -1)  # [N, 4]
            p_new = torch.softmax(new.router(x).double(), -1)  # [N, 8]
        grouped = torch.zeros_like(p_old).index_add_(1, grown_sources(g, i), p_new)
        torch.testing.assert_close(grouped, p_old, atol=1e-6, rtol=0)


def test_scores_are_distinct_per_selector(base, ids):
    s = {sel: utility_scores(base, sel, ids) for sel in SELECTORS}
    for sel in ("weight_norm", "saliency", "grad", "fisher"):
        for v in s[sel].values():
            assert v.shape == (4,) and bool((v > 0).all())
    assert not torch.equal(s["grad"][0], s["saliency"][0])
    with pytest.raises(ValueError, match="calibration"):
        utility_scores(base, "grad", None)


def test_small_dup_share_is_closer_to_function_preserving(base, ids):
    """The function change growth causes, measured: the default small share beats copied router
    rows."""
    pre = router_logits(base, ids)
    res = {}
    for name, kw in {
        "copy": dict(router_init="copy"),
        "split_half": dict(dup_share=None),
        "split_default": {},
    }.items():
        g = grow(base, 2, "uniform", **kw)
        post = router_logits(g, ids)
        agree = [
            mapped_routing_agreement(
                chosen_experts(lo, pre[i]), chosen_experts(ln, post[i]), grown_sources(g, i)
            )
            for (i, lo), (_, ln) in zip(moe_layers(base), moe_layers(g))
        ]
        res[name] = (logit_kl(base, g, ids), min(agree))
    assert res["split_default"][0] < 0.2 * res["copy"][0]
    assert res["split_default"][1] > res["copy"][1] + 0.3
    assert res["copy"][1] < 0.05  # tied copies displace the second choice on (almost) every token


def test_grown_checkpoint_round_trip(base, ids, tmp_path):
    g = grow(base, 2, "fisher", calib_ids=ids)
    back = load_checkpoint(save_checkpoint(tmp_path / "g", g))
    assert back.moe_config.num_experts == 8
    assert back.moe_config.options["grow"][0]["select"] == "fisher"
    assert all(torch.equal(grown_sources(back, i), grown_sources(g, i)) for i, _ in moe_layers(g))
    with pytest.raises(ValueError, match="not been grown"):
        grown_sources(base, 0)
    with torch.no_grad():
        assert torch.equal(g(ids), back(ids))


def test_grow_needs_moe():
    with pytest.raises(ValueError, match="MoE model"):
        grow(init_weights(Llama(LlamaConfig.tiny())), 2)
