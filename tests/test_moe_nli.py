"""The MoE inference path with NLI substituted (engine.substitute + hw_sim) on the tiny config."""

import numpy as np
import pytest
import torch

from engine.model import Llama, LlamaConfig, OpSet, init_weights
from engine.op_sets import fp16_bits
from engine.substitution import default_tables, substitute
import hw_sim
from moe.diagnostics import chosen_experts, router_logits, routing_agreement
from moe.layer import moe_layers
from moe.upcycling import upcycle

# tiny random model, 512 tokens: the NLI unit's FP16 rounding may flip near-tied routes
TINY_NLI_ROUTING_AGREEMENT_MIN = 0.95


def unit_tables() -> dict:
    """The shipped default tables (reduced reciprocal/rsqrt); a missing one fails the test."""
    return default_tables(["silu", "exp", "reciprocal", "rsqrt"], "reduced")


class RecordingOps(OpSet):
    """Delegates to ``inner`` and records every softmax input/output."""

    def __init__(self, inner):
        self.inner, self.name, self.calls = inner, inner.name, []

    def act(self, x, fn):
        return self.inner.act(x, fn)

    def rmsnorm(self, x, w, eps):
        return self.inner.rmsnorm(x, w, eps)

    def softmax(self, x):
        y = self.inner.softmax(x)
        self.calls.append((x.detach().clone(), y.detach().clone()))
        return y


@pytest.fixture(scope="module")
def moe_model():
    dense = init_weights(Llama(LlamaConfig.tiny()), seed=1).eval()
    ids = torch.randint(0, 256, (4, 32), generator=torch.Generator().manual_seed(3))
    return upcycle(dense, "cluster", 8, 2, calib_ids=ids, temperature=3.0)


def test_nli_router_softmax_equals_hw_sim_bitwise(moe_model):
    tables = unit_tables()
    sub = substitute(moe_model, variant="nli", tables=tables)
    layer = moe_layers(sub)[1][1]
    assert layer.ops is not moe_model.layers[1].mlp.ops  # the router's ops were substituted
    rec = RecordingOps(layer.ops)
    layer.ops = rec
    ids = torch.randint(0, 256, (2, 24), generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        sub(ids)
    assert len(rec.calls) == 1
    x, y = rec.calls[0]
    assert x.shape == (48, 8)
    expect = hw_sim.softmax(fp16_bits(x), tables["exp"], tables["reciprocal"], "reduced")
    got = y.numpy().astype(np.float16)
    assert np.array_equal(got.view(np.uint16), expect.view(np.uint16))
    # and the experts the layer picked are the stable top-k of those FP16 probabilities
    _, _, _, idx = layer.route(layer_input(sub, ids, 1))
    order = np.argsort(-expect.astype(np.float64), axis=1, kind="stable")[:, :2]
    assert np.array_equal(idx.numpy(), order)


def layer_input(model, ids, i):
    got = []
    h = model.layers[i].mlp.register_forward_pre_hook(
        lambda m, a: got.append(a[0].reshape(-1, a[0].shape[-1]))
    )
    with torch.no_grad():
        model(ids)
    h.remove()
    return got[0]


def test_routing_agreement_ref_vs_nli(moe_model):
    sub = substitute(moe_model, variant="nli", tables=unit_tables())
    ids = torch.randint(0, 256, (4, 64), generator=torch.Generator().manual_seed(11))
    a, b = router_logits(moe_model, ids), router_logits(sub, ids)
    agree = [
        routing_agreement(chosen_experts(la, a[i]), chosen_experts(lb, b[i]))
        for (i, la), (_, lb) in zip(moe_layers(moe_model), moe_layers(sub))
    ]
    assert min(agree) >= TINY_NLI_ROUTING_AGREEMENT_MIN, agree
