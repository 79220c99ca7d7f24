"""ONNX export of upcycled MoE models (moe.onnx_moe): routing by TopK/GatherElements, sparse
dispatch by NonZero/GatherND/ScatterND, the router softmax on the NLI Softmax function; logits
against the torch path in onnxruntime."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

import engine
from engine.onnx_model_export import export_model
from engine.substitution import substitute
import moe
from nli.cli import main as nli_main
from nli.defaults import default_table

ALL_OPS = ("silu", "rmsnorm", "softmax")
# Same bounds as the dense tiny export (tests/test_onnx_model_export.py): the expert outputs are
# summed in expert order in ONNX and in slot order in torch, and the GEMMs round differently.
REF_LOGITS_ATOL = 1e-5
NLI_LOGITS_ATOL = 2e-3


def _session(proto: onnx.ModelProto) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    return ort.InferenceSession(proto.SerializeToString(), so, providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def tables():
    return {
        "silu": default_table("silu"),
        "exp": default_table("exp"),
        "reciprocal": default_table("reciprocal", "reduced"),
        "rsqrt": default_table("rsqrt", "reduced"),
    }


@pytest.fixture(scope="module")
def dense():
    return engine.load_model("tiny")[0]


def _ids(B, T, seed):
    return torch.randint(0, 256, (B, T), generator=torch.Generator().manual_seed(seed))


def _check_logits(model, proto, ops, tables, atol):
    sess = _session(proto)
    torch_model = substitute(model, ops=ops, variant="nli", tables=tables) if ops else model
    for B, T in ((1, 1), (2, 29)):
        ids = _ids(B, T, B * T)
        got = sess.run(None, {"input_ids": ids.numpy()})[0]
        with torch.no_grad():
            want = torch_model(ids).numpy()
        assert got.shape == want.shape
        err = float(np.max(np.abs(got - want)))
        assert err <= atol, (ops, B, T, err)


@pytest.mark.parametrize(
    "method,select_on",
    [("sparse", "logits"), ("drop", "probs"), ("spri", "logits"), ("partition", "probs")],
)
@pytest.mark.parametrize("ops", [(), ALL_OPS])
def test_moe_export_matches_torch(dense, tables, method, select_on, ops):
    model = moe.upcycle(
        dense, method=method, num_experts=4, top_k=2, layers=[0, 1], select_on=select_on
    )
    proto = export_model(model, ops, tables)
    onnx.checker.check_model(proto)
    _check_logits(model, proto, ops, tables, NLI_LOGITS_ATOL if ops else REF_LOGITS_ATOL)


def test_moe_graph_routes_with_topk_and_no_control_flow(dense, tables):
    model = moe.upcycle(dense, method="drop", num_experts=4, top_k=2, layers=[1])
    proto = export_model(model, ALL_OPS, tables)
    kinds = [n.op_type for n in proto.graph.node]
    assert (
        kinds.count("TopK") == 1 and kinds.count("NonZero") == 4 and kinds.count("ScatterND") == 4
    )
    assert not {"Loop", "If", "Scan"} & set(kinds)
    # the router softmax is the NLI function: two Softmax calls (attention x 2 layers) + 1 router
    assert sum(n.op_type == "SoftmaxReduced" and n.domain == "nli" for n in proto.graph.node) == 3


def test_expert_without_tokens_and_unnormalized_routing(dense, tables):
    model = moe.upcycle(dense, method="drop", num_experts=4, top_k=2, layers=[1], renormalize=False)
    with torch.no_grad():
        model.layers[1].mlp.router.bias[3] = -1e4  # expert 3 never chosen
    proto = export_model(model, ALL_OPS, tables)
    _check_logits(model, proto, ALL_OPS, tables, NLI_LOGITS_ATOL)


def test_cli_exports_a_checkpoint(dense, tmp_path):
    ckpt = tmp_path / "moe_ckpt"
    moe.save_checkpoint(
        ckpt, moe.upcycle(dense, method="sparse", num_experts=4, top_k=2, layers=[1])
    )
    out = tmp_path / "moe.onnx"
    assert nli_main(["export", "onnx", "--model", str(ckpt), "-o", str(out)]) == 0
    onnx.checker.check_model(str(out))
    kinds = {n.op_type for n in onnx.load(out).graph.node}
    assert {"TopK", "GatherElements", "ScatterND"} <= kinds


def test_unregistered_ffn_type_is_refused(dense):
    import copy

    from engine.onnx_export import ExportError

    class OddFFN(torch.nn.Module):
        def forward(self, x):
            return x

    model = copy.deepcopy(dense)
    model.layers[1].mlp = OddFFN()
    with pytest.raises(ExportError, match="layer 1: no ONNX exporter for the FFN type OddFFN"):
        export_model(model, ())
