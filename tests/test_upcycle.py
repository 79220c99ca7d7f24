"""moe/upcycling.py, moe/spri.py, moe/cluster.py, moe/diagnostics.py on the tiny config."""

import pytest
import torch

from engine.model import Llama, LlamaConfig, init_weights
from moe.checkpoint import load_checkpoint, save_checkpoint
from moe.cluster import ensemble_distillation_loss, spherical_kmeans
from moe.diagnostics import init_report, routing_agreement
from moe.layer import moe_layers
from moe.upcycling import METHODS, upcycle

# Sparse upcycling: renormalized weights w1 + w2 == 1 only up to FP32 rounding,
# so the weighted sum of identical experts differs from dense by a few ulps.
SPARSE_LOGIT_ATOL = 1e-5
# Partition: sum of E disjoint expert outputs vs one dense GEMM chain (summation order).
PARTITION_ATOL = 1e-6
# SPRI: float64 SVD pieces stored as float32, the average recomputed in float32.
SPRI_AVG_ATOL = 1e-6


@pytest.fixture(scope="module")
def dense():
    return init_weights(Llama(LlamaConfig.tiny()), seed=1).eval()


@pytest.fixture(scope="module")
def ids():
    return torch.randint(0, 256, (8, 32), generator=torch.Generator().manual_seed(3))


def _params(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("method", METHODS)
def test_dense_model_is_not_modified_and_config_set(dense, ids, method):
    before = _params(dense)
    moe = upcycle(dense, method, 4, 2, calib_ids=ids)
    after = dense.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert moe is not dense and moe.moe_config.method == method
    assert [i for i, _ in moe_layers(moe)] == [0, 1] and moe_layers(dense) == []


def test_sparse_preserves_dense_function(dense, ids):
    moe = upcycle(dense, "sparse", 8, 2)
    with torch.no_grad():
        torch.testing.assert_close(moe(ids), dense(ids), atol=SPARSE_LOGIT_ATOL, rtol=0)
    for _, layer in moe_layers(moe):
        assert layer.router.weight.std().item() == pytest.approx(0.02, rel=0.25)


def test_sparse_top1_weights_are_exactly_one(dense, ids):
    # with k = 1 the renormalized weight is p / p == 1.0 exactly, so only GEMM batching can differ
    moe = upcycle(dense, "sparse", 4, 1)
    x = torch.randn(50, 64)
    with torch.no_grad():
        _, _, w, _ = moe.layers[0].mlp.route(x)
        assert torch.equal(w, torch.ones_like(w))
        torch.testing.assert_close(moe(ids), dense(ids), atol=SPARSE_LOGIT_ATOL, rtol=0)


@pytest.mark.parametrize("ratio", [0.5, 0.25])
def test_drop_changes_exactly_the_requested_fraction(dense, ratio):
    moe = upcycle(dense, "drop", 4, 2, ratio=ratio)
    for i, layer in moe_layers(moe):
        ffn = dense.layers[i].mlp
        H = ffn.gate_proj.out_features
        for e in range(4):
            changed_g = (layer.w_gate[e] != ffn.gate_proj.weight).any(1)  # [H] rows
            changed_u = (layer.w_up[e] != ffn.up_proj.weight).any(1)
            changed_d = (layer.w_down[e] != ffn.down_proj.weight).any(0)  # [H] columns
            assert torch.equal(changed_g, changed_u) and torch.equal(changed_g, changed_d)
            assert int(changed_g.sum()) == round(ratio * H)
            assert torch.equal(torch.nonzero(changed_g).squeeze(1), layer.drop_sets[e])
        # index sets differ between experts
        assert not all(torch.equal(layer.drop_sets[0], s) for s in layer.drop_sets[1:])
        # redrawn values follow the dense matrix's statistics (loosely)
        new = layer.w_gate[0][layer.drop_sets[0]]
        assert new.std().item() == pytest.approx(ffn.gate_proj.weight.std().item(), rel=0.15)


def test_partition_all_experts_reproduce_dense(dense):
    moe = upcycle(dense, "partition", 4, 2)
    x = torch.randn(30, 64)
    with torch.no_grad():
        for i, layer in moe_layers(moe):
            total = sum(layer.expert_forward(x, e) for e in range(4))
            torch.testing.assert_close(total, dense.layers[i].mlp(x), atol=PARTITION_ATOL, rtol=0)
            counts = torch.bincount(layer.partition_labels, minlength=4)
            assert counts.tolist() == [32] * 4  # balanced, disjoint, covering
    with pytest.raises(ValueError, match="multiple of num_experts"):
        upcycle(dense, "partition", 3, 2)


@pytest.mark.parametrize(
    "rho", [0.0, 0.25, 0.5, 0.97]
)  # 0.97: fewer residual components than experts
def test_spri_expert_average_equals_w(dense, rho):
    E = 4
    moe = upcycle(dense, "spri", E, 2, rho=rho, scale=E)
    for i, layer in moe_layers(moe):
        assert layer.principal and layer.residual_scale == E
        ffn = dense.layers[i].mlp
        g, u, d = layer.expert_weights()
        for eff, w in (
            (g, ffn.gate_proj.weight),
            (u, ffn.up_proj.weight),
            (d, ffn.down_proj.weight),
        ):
            torch.testing.assert_close(eff.mean(0), w, atol=SPRI_AVG_ATOL, rtol=0)
        # principal part has rank round(rho * 64); residual ranks are balanced round-robin shares
        r = torch.linalg.matrix_rank(layer.p_gate.double(), atol=1e-5).item()
        assert r == round(rho * 64)
        ranks = [
            torch.linalg.matrix_rank(layer.w_gate[e].double(), atol=1e-5).item() for e in range(E)
        ]
        assert max(ranks) - min(ranks) <= 1 and sum(ranks) == 64 - r


def test_spri_scale_option(dense):
    moe = upcycle(dense, "spri", 4, 2, rho=0.5, scale=1.0)
    layer = moe.layers[0].mlp
    g, _, _ = layer.expert_weights()
    assert layer.residual_scale == 1.0
    # with s = 1 the sum of residuals plus principal is W
    torch.testing.assert_close(
        layer.p_gate + layer.w_gate.sum(0),
        dense.layers[0].mlp.gate_proj.weight,
        atol=SPRI_AVG_ATOL,
        rtol=0,
    )


def test_spherical_kmeans_recovers_planted_clusters():
    g = torch.Generator().manual_seed(0)
    centers = torch.nn.functional.normalize(torch.randn(4, 16, generator=g), dim=1)
    lab = torch.arange(400) % 4
    x = (centers[lab] + 0.05 * torch.randn(400, 16, generator=g)) * (
        1 + torch.rand(400, 1, generator=g)
    )
    _, labels = spherical_kmeans(x, 4, torch.Generator().manual_seed(1))
    # a permutation of the planted labels
    mapping = {int(a): int(b) for a, b in zip(lab, labels)}
    assert len(set(mapping.values())) == 4
    assert all(mapping[int(a)] == int(b) for a, b in zip(lab, labels))


def test_cluster_routes_cluster_tokens_to_their_expert(dense, ids):
    moe = upcycle(dense, "cluster", 4, 2, calib_ids=ids)
    from moe.cluster import collect_ffn_inputs

    xs = collect_ffn_inputs(dense, ids, [0])
    layer = moe.layers[0].mlp
    with torch.no_grad():
        _, _, _, idx = layer.route(xs[0])
    top1 = idx[:, 0]
    frac = (top1 == layer.cluster_labels).double().mean().item()
    assert frac >= 0.95, frac  # a cluster's calibration tokens go to its expert first
    in_topk = (idx == layer.cluster_labels[:, None]).any(1).double().mean().item()
    assert in_topk == 1.0


def test_cluster_needs_calibration(dense):
    with pytest.raises(ValueError, match="calibration"):
        upcycle(dense, "cluster", 4, 2)


def test_cluster_full_rank_experts_equal_dense(dense, ids):
    moe = upcycle(dense, "cluster", 4, 2, calib_ids=ids, rank_fraction=1.0)
    layer = moe.layers[1].mlp
    for e in range(4):
        torch.testing.assert_close(
            layer.w_gate[e], dense.layers[1].mlp.gate_proj.weight, atol=1e-5, rtol=0
        )


def test_ensemble_distillation_loss(dense, ids):
    moe = upcycle(dense, "cluster", 4, 2, calib_ids=ids)
    layer = moe.layers[0].mlp
    x = torch.randn(20, 64)
    loss = ensemble_distillation_loss(layer, x)
    assert loss.item() > 0
    loss.backward()
    assert layer.w_gate.grad is not None and layer.w_gate.grad.abs().sum() > 0
    # identical experts: teacher == routed output, loss 0
    sp = upcycle(dense, "sparse", 4, 2).layers[0].mlp
    assert ensemble_distillation_loss(sp, x).item() < 1e-12


def test_unknown_method_and_bad_layers(dense):
    with pytest.raises(ValueError, match="unknown upcycling method"):
        upcycle(dense, "nope")
    with pytest.raises(ValueError, match="does not exist"):
        upcycle(dense, "sparse", layers=[5])
    with pytest.raises(ValueError, match="already MoE"):
        upcycle(upcycle(dense, "sparse", 4, 2), "sparse")


@pytest.mark.parametrize("method", METHODS)
def test_upcycled_checkpoint_round_trip(dense, ids, method, tmp_path):
    moe = upcycle(dense, method, 4, 2, calib_ids=ids)
    back = load_checkpoint(save_checkpoint(tmp_path / method, moe))
    with torch.no_grad():
        assert torch.equal(moe(ids), back(ids))


def test_init_report(dense, ids):
    sp = init_report(dense, upcycle(dense, "sparse", 4, 2), ids)
    assert sp["kl_to_dense"] < 1e-8 and sp["weight_cosine"] == pytest.approx(1.0)
    assert sp["output_cosine"] == pytest.approx(1.0)
    pa = init_report(dense, upcycle(dense, "partition", 4, 2), ids)
    assert abs(pa["weight_cosine"]) < 0.2 and pa["kl_to_dense"] > sp["kl_to_dense"]
    for rep in (sp, pa):
        for lay in rep["layers"].values():
            assert sum(lay["expert_load"]) == pytest.approx(1.0)
            assert 0 <= lay["routing_entropy"] <= torch.log(torch.tensor(4.0)).item() + 1e-9


def test_routing_agreement_counts_sets():
    a = torch.tensor([[0, 1], [2, 3], [1, 0]])
    b = torch.tensor([[1, 0], [2, 1], [1, 0]])
    assert routing_agreement(a, b) == pytest.approx(2 / 3)
