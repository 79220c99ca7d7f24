"""MoE upcycling, checkpoints and ONNX export on every native architecture (tiny configs)."""

import numpy as np
import pytest
import torch

from engine.model import Llama, LlamaConfig, init_weights
from engine.substitution import substitute
import moe  # noqa: F401 (registers the MoE FFN's ONNX writer)
from moe.checkpoint import load_checkpoint, save_checkpoint
from moe.layer import moe_layers
from moe.upcycling import upcycle
from nli import default_table

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from engine.onnx_model_export import export_model  # noqa: E402 (needs onnx)

ARCHS = ("llama", "gemma3", "qwen2", "qwen3")
SPARSE_LOGIT_ATOL = 1e-5  # as tests/test_upcycle.py: renormalized top-k weights sum to 1 +- ulps
REF_LOGITS_ATOL = 1e-5  # ONNX vs torch, FP32 ref ops: GEMM summation order only
NLI_LOGITS_ATOL = 2e-3  # ONNX vs torch, ops on the NLI unit: a few FP16 ulps of a logit
SEQ = 13  # > the sliding window (5)


def tiny(arch: str) -> Llama:
    """Seeded tiny model of ``arch``: 3 layers (gemma3: local, global, local), 4 heads of 16 on
    dim 32, random norm weights and biases."""
    cfg = LlamaConfig.for_arch(
        arch, vocab_size=64, dim=32, n_layers=3, n_heads=4, n_kv_heads=2, hidden_dim=48,
        max_seq_len=64, head_dim_override=16, sliding_window=5, global_every=2,
    )  # fmt: skip
    m = init_weights(Llama(cfg), seed=1)
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for name, p in m.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(torch.rand(p.shape, generator=g) + 0.5)
            elif name.endswith("bias"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    return m.eval()


def ids(batch=2, seq=SEQ):
    return torch.randint(0, 64, (batch, seq), generator=torch.Generator().manual_seed(5))


@pytest.mark.parametrize("arch", ARCHS)
def test_sparse_upcycling_preserves_function(arch, tmp_path):
    dense = tiny(arch)
    m = upcycle(dense, "sparse", 4, 2, layers=(0, 1))
    assert [i for i, _ in moe_layers(m)] == [0, 1]
    assert m.layers[0].mlp.activation == dense.cfg.activation
    x = ids()
    with torch.no_grad():
        want = dense(x)
        torch.testing.assert_close(m(x), want, atol=SPARSE_LOGIT_ATOL, rtol=0)
        back = load_checkpoint(save_checkpoint(tmp_path / arch, m))
        assert back.cfg == dense.cfg
        assert torch.equal(back(x), m(x))


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("nli_ops", [False, True])
def test_onnx_export_matches_torch(arch, nli_ops):
    model = tiny(arch)
    ops = ("act", "rmsnorm", "softmax") if nli_ops else ()
    act = model.cfg.activation
    tabs = {
        act: default_table(act),
        "exp": default_table("exp"),
        "reciprocal": default_table("reciprocal", "reduced"),
        "rsqrt": default_table("rsqrt", "reduced"),
    }
    proto = export_model(model, ops, tabs if nli_ops else None, "reduced")
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    want_model = (
        substitute(model, ops=ops, variant="nli", tables=tabs, reciprocal_mode="reduced")
        if nli_ops
        else model
    )
    for B, T in ((1, 1), (2, SEQ)):
        x = ids(B, T)
        got = sess.run(None, {"input_ids": x.numpy()})[0]
        with torch.no_grad():
            want = want_model(x).numpy()
        err = float(np.max(np.abs(got - want)))
        assert err <= (NLI_LOGITS_ATOL if nli_ops else REF_LOGITS_ATOL), (arch, B, T, err)


@pytest.mark.parametrize("arch", ("gemma3", "qwen3"))
def test_onnx_export_of_upcycled_model(arch):
    m = upcycle(tiny(arch), "sparse", 4, 2, layers=(1, 2))
    proto = export_model(m, ())
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    x = ids()
    with torch.no_grad():
        want = m(x).numpy()
    err = float(np.max(np.abs(sess.run(None, {"input_ids": x.numpy()})[0] - want)))
    assert err <= REF_LOGITS_ATOL, err


def test_op_counts_hand_computed_for_gemma3():
    from moe.op_counts import nonlinear_counts

    c = nonlinear_counts(tiny("gemma3").cfg, None, seq=9)
    # 3 blocks x 4 norms of dim 32 + the final one; QK-norms: (4 + 2) heads x 3 blocks of 16
    assert c["rmsnorm"].rows == 13 + 18 and c["rmsnorm"].elements == 13 * 32 + 18 * 16
    # local blocks 0, 2 (window 5): keys seen 1, 2, 3, 4, 5, 5, 5, 5, 5 -> 35/9; global: 45/9
    assert c["attention_softmax"].rows == 12
    assert c["attention_softmax"].elements == pytest.approx(2 * 4 * 35 / 9 + 4 * 5, rel=1e-15)
    assert c["silu"].elements == 3 * 48  # the model's own activation (gelu_tanh here)


@pytest.mark.parametrize("arch", ARCHS)
def test_every_op_goes_through_ops_and_backends_agree(arch):
    """QK-norms and sandwich norms are RMSNorm calls on ``ops`` like the others (so substitution
    covers them), and the numba and torch datapaths give the same logits bit for bit."""
    from engine.evaluate import ActivationStats, attach_recorders, detach_recorders

    model = tiny(arch)
    stats = ActivationStats()
    saved = attach_recorders(model, stats)
    with torch.no_grad():
        model(ids())
    detach_recorders(saved)
    norms = {m for op, m in stats.inputs if op == "rmsnorm"}
    want = {"layers.0.attn_norm", "layers.0.ffn_norm", "norm"}
    if model.cfg.qk_norm:
        want |= {"layers.0.attn.q_norm", "layers.0.attn.k_norm"}
    if model.cfg.sandwich_norms:
        want |= {"layers.0.post_attn_norm", "layers.0.post_ffn_norm"}
    assert want <= norms and len(norms) == len(want) * 3 - 2  # 3 blocks + the final norm
    assert {m for op, m in stats.inputs if op == "act"} == {f"layers.{i}.mlp" for i in range(3)}
    with torch.no_grad():
        a = substitute(model, backend="numba")(ids())
        b = substitute(model, backend="torch")(ids())
    assert torch.equal(a, b)
