"""moe/layer.py, moe/config.py, moe/checkpoint.py on tiny configs."""

import json
import math

from naive import naive_load_balancing_loss, naive_moe_token
import pytest
import torch

from engine.model import REF_OPS, Llama, LlamaConfig, init_weights
from moe.checkpoint import load_checkpoint, save_checkpoint
from moe.config import MoEConfig, parse_layers
from moe.layer import MoEFFN, load_balancing_loss, moe_layers, route_topk, router_z_loss
from moe.model import MoELlama, build_model, moe_config_of

# float32 grouped GEMMs vs a float64 per-token oracle: different summation order;
# the tolerance is relative to the largest output magnitude of the token
MOE_VS_NAIVE_REL = 2e-6


def _layer(E=8, k=2, H=32, D=16, renormalize=True, principal=False, seed=0):
    torch.manual_seed(seed)
    layer = MoEFFN(D, H, E, k, renormalize, principal, residual_scale=E)
    with torch.no_grad():
        for p in layer.parameters():
            p.copy_(torch.randn(p.shape) * 0.3)
    return layer


@pytest.mark.parametrize("dispatch", ["looped", "padded"])
@pytest.mark.parametrize("renormalize", [True, False])
@pytest.mark.parametrize("principal", [False, True])
@pytest.mark.parametrize("E,k", [(8, 2), (4, 1), (4, 4)])
def test_layer_equals_naive_per_token(renormalize, principal, E, k, dispatch, monkeypatch):
    import moe.layer

    monkeypatch.setattr(moe.layer, "DISPATCH", dispatch)
    layer = _layer(E, k, renormalize=renormalize, principal=principal)
    x = torch.randn(3, 7, 16)
    with torch.no_grad():
        y, logits = layer(x)
        g, u, d = layer.expert_weights()
        assert y.shape == x.shape and logits.shape == (21, E)
        for t, xt in enumerate(x.reshape(-1, 16)):
            ref, chosen = naive_moe_token(
                xt, layer.router.weight, layer.router.bias, g, u, d, k, renormalize, REF_OPS.softmax
            )
            torch.testing.assert_close(
                y.reshape(-1, 16)[t].double(),
                ref,
                atol=MOE_VS_NAIVE_REL * float(ref.abs().max()),
                rtol=0,
            )


def test_tie_breaking_lower_index_wins():
    probs = torch.tensor([[0.1, 0.3, 0.3, 0.3], [0.25, 0.25, 0.25, 0.25], [0.5, 0.2, 0.1, 0.2]])
    w, idx = route_topk(probs, 2, renormalize=False)
    assert idx.tolist() == [[1, 2], [0, 1], [0, 1]]
    assert w.reshape(-1).tolist() == pytest.approx([0.3, 0.3, 0.25, 0.25, 0.5, 0.2])
    w, _ = route_topk(probs, 2, renormalize=True)
    assert w.sum(-1).tolist() == pytest.approx([1.0, 1.0, 1.0])


def test_dense_dispatch_matches_sorted_dispatch():
    layer = _layer()
    x = torch.randn(40, 16)
    with torch.no_grad():
        _, _, w, idx = layer.route(x)
        torch.testing.assert_close(
            layer._dense_dispatch(x, w, idx),
            layer._sorted_dispatch(x, w, idx),
            atol=1e-5,
            rtol=1e-5,
        )


@pytest.mark.parametrize("dispatch", ["looped", "padded"])
def test_layer_backward_reaches_all_parameters(dispatch, monkeypatch):
    import moe.layer

    monkeypatch.setattr(moe.layer, "DISPATCH", dispatch)
    layer = _layer(principal=True)
    y, logits = layer(torch.randn(64, 16))
    (y.pow(2).mean() + 0.01 * load_balancing_loss(logits, layer.top_k)).backward()
    for name, p in layer.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_aux_loss_hand_computed():
    # 3 tokens, E=3, k=1. logits chosen so probs are easy: token 0 -> expert 0, 1 -> 1, 2 -> 0
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.2], [0.2, 0.6, 0.2], [0.7, 0.2, 0.1]]))
    # f = [2/3, 1/3, 0]; P = [1.4/3, 1.1/3, 0.5/3];
    # loss = 3 * (2/3*1.4/3 + 1/3*1.1/3) = (2.8 + 1.1)/3
    assert float(load_balancing_loss(logits, 1)) == pytest.approx(3.9 / 3, abs=1e-6)
    probs = torch.softmax(logits, -1).tolist()
    assert float(load_balancing_loss(logits, 1)) == pytest.approx(
        naive_load_balancing_loss(probs, [[0], [1], [0]], 3), abs=1e-6
    )
    # k = 2: choices {0,1}, {1,0}, {0,1}: f = [1/2, 1/2, 0]
    assert float(load_balancing_loss(logits, 2)) == pytest.approx(
        3 * (0.5 * 1.4 / 3 + 0.5 * 1.1 / 3), abs=1e-6
    )
    # uniform router: loss exactly 1 at perfect balance
    assert float(load_balancing_loss(torch.zeros(4, 4), 1)) == pytest.approx(4 * 0.25, abs=1e-6)


def test_z_loss_hand_computed():
    logits = torch.tensor([[0.0, 0.0], [math.log(3.0), 0.0]])
    expect = (math.log(2.0) ** 2 + math.log(4.0) ** 2) / 2
    assert float(router_z_loss(logits)) == pytest.approx(expect, abs=1e-6)


def test_moe_model_forward_collects_router_logits():
    cfg = LlamaConfig.tiny()
    mcfg = MoEConfig(layers=(1,), num_experts=4, top_k=2, expert_hidden_dim=32)
    model = init_weights(build_model(cfg, mcfg), seed=3)
    ids = torch.randint(0, cfg.vocab_size, (2, 9))
    logits, routers = model(ids, return_router_logits=True)
    assert logits.shape == (2, 9, cfg.vocab_size)
    assert len(routers) == 1 and routers[0].shape == (18, 4)


def test_config_validation_and_layers_parsing():
    cfg = LlamaConfig(n_layers=30)
    assert parse_layers(None, cfg) == tuple(range(22, 30))
    assert parse_layers("last2", cfg) == (28, 29)
    assert parse_layers("0,3-5", cfg) == (0, 3, 4, 5)
    with pytest.raises(ValueError, match="do not exist"):
        parse_layers("29-30", cfg)
    with pytest.raises(ValueError, match="top_k"):
        MoEConfig(layers=(0,), num_experts=2, top_k=3)
    with pytest.raises(ValueError, match="sorted"):
        MoEConfig(layers=(3, 1))


def test_checkpoint_round_trip(tmp_path):
    cfg = LlamaConfig.tiny()
    mcfg = MoEConfig(
        layers=(0, 1),
        num_experts=4,
        top_k=2,
        expert_hidden_dim=32,
        principal=True,
        residual_scale=4.0,
        method="test",
        options={"rho": 0.5},
    )
    model = init_weights(build_model(cfg, mcfg), seed=5).eval()
    save_checkpoint(tmp_path / "ck", model, provenance={"source": "tiny"})
    back = load_checkpoint(tmp_path / "ck")
    assert (
        isinstance(back, MoELlama)
        and back.moe_config == mcfg
        and back.provenance == {"source": "tiny"}
    )
    ids = torch.randint(0, cfg.vocab_size, (2, 8))
    with torch.no_grad():
        assert torch.equal(model(ids), back(ids))
    assert back.lm_head.weight is back.embed.weight  # tied embeddings survive


def test_moe_config_is_construction_data():
    cfg = LlamaConfig.tiny()
    mcfg = MoEConfig(layers=(1,), num_experts=4, top_k=2, expert_hidden_dim=32, select_on="probs")
    model = build_model(cfg, mcfg)
    assert isinstance(model, MoELlama) and moe_config_of(model) == mcfg
    assert [i for i, _ in moe_layers(model)] == [1] and model.layers[1].mlp.select_on == "probs"
    with pytest.raises(AttributeError):
        model.moe_config = MoEConfig(layers=(0,))  # read-only: another config is another model
    assert moe_config_of(build_model(cfg, None)) is None and not moe_layers(build_model(cfg, None))
    wrong = MoEFFN(cfg.dim, 32, 4, 2, select_on="logits")  # disagrees with the config's select_on
    with pytest.raises(ValueError, match="layer 1: select_on 'logits' differs"):
        MoELlama(cfg, mcfg, {1: wrong})
    with pytest.raises(ValueError, match=r"blocks \[0\]"):
        MoELlama(cfg, mcfg, {0: wrong})


def test_crafted_weights_file_is_refused_without_running(tmp_path):
    cfg = LlamaConfig.tiny()
    model = init_weights(
        build_model(cfg, MoEConfig(layers=(1,), num_experts=2, top_k=1, expert_hidden_dim=16))
    )
    path = save_checkpoint(tmp_path / "ck", model)
    marker = tmp_path / "payload_ran"

    class Payload:
        def __reduce__(self):
            return (exec, (f"open({str(marker)!r}, 'w').close()",))

    state = torch.load(path / "weights.pt", weights_only=True)
    torch.save({**state, "norm.weight": Payload()}, path / "weights.pt")
    with pytest.raises(ValueError, match="refused to load"):
        load_checkpoint(path)
    assert not marker.exists()


def test_checkpoint_config_mismatch_is_a_clear_error(tmp_path):
    cfg = LlamaConfig.tiny()
    model = init_weights(
        build_model(cfg, MoEConfig(layers=(1,), num_experts=4, top_k=2, expert_hidden_dim=32))
    )
    path = save_checkpoint(tmp_path / "ck", model)
    conf = json.loads((path / "config.json").read_text())
    conf["moe"]["num_experts"] = 8
    (path / "config.json").write_text(json.dumps(conf))
    with pytest.raises(
        ValueError, match=r"config does not match tensors: layers\.1\.mlp\.\w+ has shape"
    ):
        load_checkpoint(path)
    conf["moe"]["layers"] = [0]
    conf["moe"]["num_experts"] = 4
    (path / "config.json").write_text(json.dumps(conf))
    with pytest.raises(ValueError, match="missing .*layers.0.mlp"):
        load_checkpoint(path)
    conf["moe"]["layers"] = [5]
    (path / "config.json").write_text(json.dumps(conf))
    with pytest.raises(ValueError, match=r"MoE layers \[5\] do not exist"):
        load_checkpoint(path)


def test_moe_layers_lists_only_moe_blocks():
    model = build_model(
        LlamaConfig.tiny(), MoEConfig(layers=(1,), num_experts=2, top_k=1, expert_hidden_dim=8)
    )
    assert [i for i, _ in moe_layers(model)] == [1]
    assert moe_layers(Llama(LlamaConfig.tiny())) == []


def test_select_on_logits_avoids_fp16_ties():
    layer = _layer(E=4, k=1)
    logits = torch.tensor([[0.0, 1e-4, -1.0, -2.0]])  # probs tie once rounded to FP16

    def half(x):
        return torch.softmax(x, -1).half().float()

    layer.ops = type("HalfOps", (), {"softmax": staticmethod(half)})()
    layer.select_on = "probs"
    _, _, idx = layer.select(logits)
    assert idx.tolist() == [[0]]  # FP16 tie: lower index wins
    layer.select_on = "logits"
    probs, w, idx = layer.select(logits)
    assert idx.tolist() == [[1]] and w.tolist() == [[1.0]]
    with pytest.raises(ValueError, match="select_on"):
        MoEFFN(8, 8, 2, 1, select_on="nope")
