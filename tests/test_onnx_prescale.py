"""RMSNorm's row prescale in the ONNX export (numerics §4.1 and §8): the standalone FP32-input
RMSNorm graph (nli.RMSNormPrescale, then nli.RMSNorm<Mode>) equals hw_sim.rmsnorm_f32 bit for
bit on the adversarial and seeded rows, in both modes, 'scaled' and 'plain', at both ORT
optimization levels; an exported model whose residual stream exceeds FP16 stays finite and
matches the torch path with the prescale, and collapses to NaN without it, as torch does."""

from __future__ import annotations

from engine_tables import engine_tables
import numpy as np
import onnxruntime as ort
from prescale_rows import N, adversarial_rows, seeded_rows, weights
import pytest
import torch

import engine
from engine.onnx_export import ExportError, export_composite
from engine.onnx_model_export import export_model
from engine.substitution import substitute
import hw_sim
from nli.prescale import prescale_exponents

MODES = ("reduced", "direct")
LEVELS = {
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    "none": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
}
EMBED_PEAK = 2e5  # the tiny model's embeddings scaled so the residual stream exceeds 65520
# Torch and ORT differ only in FP32 matmul summation order; relative to the largest |logit|.
HUGE_LOGITS_RTOL = 1e-3  # measured 0.0 (max |logit| 3.4e6)


def session(model, level="all") -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.graph_optimization_level = LEVELS[level]
    so.intra_op_num_threads = 2
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("rmsnorm_input", ["scaled", "plain"])
def test_fp32_input_rmsnorm_equals_hw_sim(mode, rmsnorm_input):
    t = engine_tables(mode)["rsqrt"]
    proto = export_composite("rmsnorm", {"rsqrt": t}, mode, rmsnorm_input)
    fns = {f.name for f in proto.functions}
    assert ("RMSNormPrescale" in fns) == (rmsnorm_input == "scaled")
    rng = np.random.default_rng(15)
    x = np.concatenate([adversarial_rows(rng), seeded_rows(rng, 40, N)])
    assert (prescale_exponents(x) > 0).sum() >= 20
    w = weights(rng, N)
    for level in LEVELS:
        sess = session(proto, level)
        for eps in (1e-6, 0.0, 2.0**-149, 3e38):
            got = sess.run(None, {"x": x, "weight": w, "eps": np.array(eps, np.float32)})[0]
            with np.errstate(over="ignore"):
                want = hw_sim.rmsnorm_f32(x, w, eps, t, mode, rmsnorm_input)
            assert got.dtype == np.float16
            assert np.array_equal(got.view(np.uint16), want.astype(np.float16).view(np.uint16)), (
                level,
                eps,
            )


def test_bad_rmsnorm_input_is_refused():
    t = engine_tables()
    with pytest.raises(ExportError, match="rmsnorm input: must be one of scaled, plain"):
        export_composite("rmsnorm", {"rsqrt": t["rsqrt"]}, "reduced", "half")
    with pytest.raises(ExportError, match="only for op 'rmsnorm'"):
        export_composite("softmax", t, "reduced", "scaled")
    model, _ = engine.load_model("tiny")
    with pytest.raises(ExportError, match="rmsnorm input"):
        export_model(model, ("rmsnorm",), t, "reduced", rmsnorm_input="fp16")


def test_model_with_a_huge_residual_stream():
    """The tiny model with embeddings scaled to |x| ~ 2e5: the exported graph with the prescale
    gives torch's logits, and both collapse to NaN with 'plain'."""
    model, _ = engine.load_model("tiny")
    with torch.no_grad():
        model.embed.weight.mul_(EMBED_PEAK / model.embed.weight.abs().max())
    tb = engine_tables()
    ops = ("act", "rmsnorm", "softmax")
    ids = torch.randint(
        0, model.cfg.vocab_size, (1, 19), generator=torch.Generator().manual_seed(3)
    )
    for rmsnorm_input in ("scaled", "plain"):
        proto = export_model(model, ops, tb, "reduced", rmsnorm_input=rmsnorm_input)
        calls = {n.op_type for n in proto.graph.node if n.domain == "nli"}
        assert ("RMSNormPrescale" in calls) == (rmsnorm_input == "scaled")
        got = session(proto).run(None, {"input_ids": ids.numpy()})[0]
        sub = substitute(model, ops, "nli", tb, "reduced", rmsnorm_input=rmsnorm_input)
        with torch.no_grad(), np.errstate(over="ignore", invalid="ignore"):
            want = sub(ids).numpy()
        if rmsnorm_input == "plain":
            assert np.isnan(got).all() and np.isnan(want).all()
            continue
        assert np.isfinite(got).all() and np.isfinite(want).all()
        rel = np.max(np.abs(got - want)) / np.max(np.abs(want))
        assert rel <= HUGE_LOGITS_RTOL, rel


def test_cli_export_takes_the_choice(tmp_path, capsys):
    import onnx

    from nli.cli import main as nli_main

    out = tmp_path / "m.onnx"
    base = ["export", "onnx", "--model", "tiny", "--ops", "rmsnorm", "-o", str(out)]
    for choice in ("plain", "scaled"):
        assert nli_main([*base, "--rmsnorm-input", choice]) == 0
        m = onnx.load(out)
        props = {p.key: p.value for p in m.metadata_props}
        assert props["nli.rmsnorm_input"] == choice
        assert ("RMSNormPrescale" in {f.name for f in m.functions}) == (choice == "scaled")
    assert nli_main([*base, "--rmsnorm-input", "half"]) == 2
    err = capsys.readouterr().err
    assert "--rmsnorm-input" in err and err.count("\n") == 1
