"""Shared by the bf16 ONNX tests (tests/test_onnx_bf16*.py; sessions: tests/onnx_graphs.py): a
runner that feeds and reads bfloat16 tensors as uint16 bit patterns, and bf16 stand-in tables
for the corners of the datapath."""

from __future__ import annotations

import numpy as np
from onnx import TensorProto
import onnxruntime as ort

import nli
from nli.grid import f64_to_bf16_bits

ALL = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)
BF16 = TensorProto.BFLOAT16
PAPER_BINS = [1] + [32] * 8 + [1]


def run(sess: ort.InferenceSession, feeds: dict, out_shape) -> np.ndarray:
    """Run a graph whose bfloat16 inputs are given as uint16 bit patterns (other inputs as numpy
    arrays of their own type); returns the output ``y`` as uint16 BF16 bit patterns."""
    kinds = {i.name: i.type for i in sess.get_inputs()}
    io = sess.io_binding()
    for name, arr in feeds.items():
        arr = np.ascontiguousarray(arr)
        if kinds[name] == "tensor(bfloat16)":
            assert arr.dtype == np.uint16, name
            io.bind_ortvalue_input(
                name, ort.OrtValue.ortvalue_from_numpy_with_onnx_type(arr, onnx_element_type=BF16)
            )
        else:
            io.bind_cpu_input(name, arr)
    out = np.full(out_shape, 0xDEAD, np.uint16)  # a pattern no output here has
    assert sess.get_outputs()[0].type == "tensor(bfloat16)"
    io.bind_ortvalue_output(
        "y", ort.OrtValue.ortvalue_from_numpy_with_onnx_type(out, onnx_element_type=BF16)
    )
    sess.run_with_iobinding(io)
    return out


def bits(values) -> np.ndarray:
    return f64_to_bf16_bits(np.asarray(values, np.float64))


def bits16(values) -> np.ndarray:
    return np.asarray(values, np.float16).view(np.uint16)


def standin_tables() -> dict:
    """bf16 stand-in tables: the corners of the datapath in BF16's range."""
    mk = nli.table_from_cutpoints
    t = {
        "silu_wide": mk(
            "silu", bits([-3e38, -20, -8, -4, -2, 0, 2, 4, 8, 20, 3e38]), PAPER_BINS, dtype="bf16"
        ),
        "recip_reduced": mk(
            "reciprocal",
            bits(np.linspace(1, 2, 11)),
            [32] * 10,
            dtype="bf16",
            domain=["3f80", "4000"],
        ),
        "recip_direct": mk(
            "reciprocal", bits(np.geomspace(2.0**-120, 2.0**120, 11)), PAPER_BINS, dtype="bf16"
        ),
        "rsqrt_reduced": mk(
            "rsqrt", bits(np.geomspace(1, 4, 17)), [1] * 16, dtype="bf16", domain=["3f80", "4080"]
        ),
        "rsqrt_direct": mk(
            "rsqrt", bits(np.geomspace(2.0**-126, 2.0**126, 11)), PAPER_BINS, dtype="bf16"
        ),
        # BF16 subnormal inputs inside a macro interval (narrower ones would overflow mul)
        "tanh_tiny": mk(
            "tanh", bits([-(2.0**-100), 0, 2.0**-120, 2.0**-110, 1]), [1, 4, 8, 64], dtype="bf16"
        ),
        # K = 1: no inner comparator
        "tanh_single": mk("tanh", bits([-1.0, 1.5]), [300], dtype="bf16"),
    }
    exp = mk(
        "exp",
        bits([-90, -40, -9, -7, -5, -3.5, -2.5, -1.5, -0.75, -0.25, 0]),
        PAPER_BINS,
        dtype="bf16",
    )
    t["exp_below0"] = exp.with_lut(exp.lut, below=0)
    # reduced-mode outputs anywhere in BF16's range: y 2^-k overflows, underflows, is subnormal
    extremes = [0x7F7F, 0x0001, 0x7F00, 0x0080, 0x8001, 0x0040, 0x5F00, 0x2000, 0xFF7F, 0x807F]
    for name in ("recip_reduced", "rsqrt_reduced"):
        lut = t[name].lut.copy()
        lut[1 : 1 + len(extremes)] = extremes
        lut[-8:-1] = [0x0001 + i for i in range(7)]
        t[f"{name}_extreme"] = t[name].with_lut(lut)
    z = mk("tanh", bits([-8, -1, 0, 1, 8]), [4, 4, 4, 4], dtype="bf16")
    lut = z.lut.copy()
    lut[[3, 4, 5, 8, 9]] = [0x8000, 0x8000, 0x0000, 0x8000, 0x0001]  # zeros of both signs
    t["zero_signs"] = z.with_lut(lut, below=0x8000, above=0xFF80)  # above = -inf
    return t
