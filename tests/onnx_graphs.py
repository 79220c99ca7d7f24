"""Shared by the ONNX tests (tests/test_onnx_*.py): sessions in stock onnxruntime (CPU provider)
at the default and at disabled graph optimizations, and the one-function model that checks a
rounding function (RoundFP16, RoundBF16) on FP32 vectors."""

from __future__ import annotations

import onnx
import onnxruntime as ort

from engine.onnx_ops import F32, OPSETS, Builder

LEVELS = {
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    "none": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
}


def session(model: onnx.ModelProto, level: str = "all") -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.graph_optimization_level = LEVELS[level]
    so.intra_op_num_threads = 2
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def rounding_model(op: str, function: onnx.FunctionProto) -> onnx.ModelProto:
    """A checked model ``y = nli.<op>(v)`` on an FP32 vector ``v``, ``function`` the op's body."""
    b = Builder("t")
    b.rename_output(b.call(op, "v"), "y")
    graph = onnx.helper.make_graph(
        b.nodes,
        "round",
        [onnx.helper.make_tensor_value_info("v", F32, ["n"])],
        [onnx.helper.make_tensor_value_info("y", F32, ["n"])],
    )
    model = onnx.helper.make_model(graph, opset_imports=OPSETS, functions=[function])
    model.ir_version = 10
    onnx.checker.check_model(model)
    return model
