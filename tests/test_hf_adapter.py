"""engine.hf_adapter (with engine.hf_roles, hf_attention, hf_tokenizer): Hugging Face models
(written here with save_pretrained) as engine models.

* With the ref ops the adapter's logits equal transformers' eager forward exactly (Llama,
  Qwen3, Gemma 3 with a sliding window shorter than the text).
* Substituted, every op call goes through the OpSet: each RMSNorm module, each attention
  and each activation once per forward, and none of transformers' own softmax, activation or
  rsqrt runs.
* The ops are the same kernels as the native path: the tiny Llama loaded into
  engine.model.Llama makes the same op calls on the same inputs with the same outputs.
* Bad input: unsupported activation or norm, a model that bypasses the extension points.

`nli eval ppl --model hf:PATH` and its one-line errors: tests/test_hf_cli.py.
"""

import pytest
import torch

pytest.importorskip("transformers")

from transformers import (  # noqa: E402
    Gemma3ForCausalLM,
    Gemma3TextConfig,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
    Qwen3Config,
    Qwen3ForCausalLM,
)

import engine  # noqa: E402
from engine.hf_adapter import HFCausalLM  # noqa: E402
from engine.model import REF_OPS, Llama, OpSet  # noqa: E402
from engine.model import LlamaConfig as NativeConfig  # noqa: E402
from engine.substitution import make_ops, substitute  # noqa: E402
from engine.tokenizer import byte_tokenizer  # noqa: E402

KINDS = ("llama", "qwen3", "gemma3")
SEED = 0
TEXT = "The quick brown fox jumps over the lazy dog, twice: 0123456789."  # 63 byte tokens
SLIDING_WINDOW = 8  # Gemma 3's local layers: shorter than TEXT, so the window matters
# RMSNorm modules per layer (+1 final norm): Llama 2; Qwen3 and Gemma 3 add q/k norms; Gemma 3
# has pre/post norms around both attention and FFN
NORMS_PER_LAYER = {"llama": 2, "qwen3": 4, "gemma3": 6}
N_LAYERS = 2


def _common() -> dict:
    return dict(
        vocab_size=257,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=N_LAYERS,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        tie_word_embeddings=True,
        bos_token_id=256,
        eos_token_id=256,
        pad_token_id=None,
    )


def build_hf(kind: str, hidden_act: str | None = None):
    """A seeded random tiny transformers model; norm weights drawn from U[0.5, 1.5) so that a
    wrong norm formula (w vs 1 + w) changes the output."""
    torch.manual_seed(SEED)
    c = _common()
    if kind == "llama":
        m = LlamaForCausalLM(LlamaConfig(**c, rms_norm_eps=1e-5, hidden_act=hidden_act or "silu"))
    elif kind == "qwen3":
        m = Qwen3ForCausalLM(Qwen3Config(**c, head_dim=16, rms_norm_eps=1e-6))
    else:
        cfg = Gemma3TextConfig(
            **c,
            head_dim=16,
            query_pre_attn_scalar=16,
            sliding_window=SLIDING_WINDOW,
            layer_types=["sliding_attention", "full_attention"],
        )
        m = Gemma3ForCausalLM(cfg)
    g = torch.Generator().manual_seed(SEED + 1)
    with torch.no_grad():
        for p in m.parameters():
            if p.dim() == 1:
                p.copy_(torch.rand(p.shape, generator=g) + 0.5)
    return m.eval()


def save(model, path):
    model.save_pretrained(path)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=byte_tokenizer(), bos_token="<|endoftext|>", eos_token="<|endoftext|>"
    )
    tok.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory):
    return {k: save(build_hf(k), tmp_path_factory.mktemp(k)) for k in KINDS}


def text_ids(tok) -> torch.Tensor:
    return torch.tensor([tok.encode(TEXT).ids])  # [1, T]


# ----------------------------------------------------------------------------- ref == transformers
@pytest.mark.parametrize("kind", KINDS)
def test_ref_adapter_equals_transformers(model_dirs, kind):
    model, tok = engine.load_model(f"hf:{model_dirs[kind]}")
    ids = text_ids(tok)
    assert ids.shape[1] > SLIDING_WINDOW
    plain = (
        type(model.hf)
        .from_pretrained(model_dirs[kind], dtype=torch.float32, attn_implementation="eager")
        .eval()
    )
    with torch.no_grad():
        got, want = model(ids), plain(ids).logits
    assert got.dtype == torch.float32 and got.shape == (1, ids.shape[1], 257)
    assert torch.equal(got, want)
    assert model.hf.config._attn_implementation == "nli"


def test_sliding_window_reaches_the_attention(model_dirs):
    """The same Gemma 3 with full attention on every layer gives other logits on this text, so
    the equality above covers the sliding-window mask."""
    model, tok = engine.load_model(f"hf:{model_dirs['gemma3']}")
    ids = text_ids(tok)
    full = build_hf("gemma3")
    full.config.layer_types = ["full_attention"] * N_LAYERS
    for layer in full.model.layers:
        layer.attention_type = "full_attention"
        layer.self_attn.sliding_window = None
        layer.self_attn.is_sliding = False
    with torch.no_grad():
        assert not torch.equal(model(ids), HFCausalLM(full)(ids))


# ----------------------------------------------------------------------------- op routing
class LoggingOps(OpSet):
    """Delegates to ``inner``, logging (op, module) of every call."""

    def __init__(self, inner, log, module):
        self.inner, self.log, self.module, self.name = inner, log, module, "logging"

    def act(self, x, fn):
        self.log.append(("act", self.module))
        return self.inner.act(x, fn)

    def rmsnorm(self, x, weight, eps):
        self.log.append(("rmsnorm", self.module))
        return self.inner.rmsnorm(x, weight, eps)

    def softmax(self, x):
        self.log.append(("softmax", self.module))
        return self.inner.softmax(x)


def _forbid(*_a, **_k):
    raise AssertionError("transformers' own op ran in a substituted forward")


@pytest.mark.parametrize("kind", KINDS)
def test_every_op_call_goes_through_the_opset(model_dirs, kind, monkeypatch):
    model, tok = engine.load_model(f"hf:{model_dirs[kind]}")
    ids = text_ids(tok)
    sub = substitute(model, variant="nli")
    log = []
    for name, m in sub.named_modules():
        if hasattr(m, "ops"):
            m.ops = LoggingOps(m.ops, log, name)
    for mod, fn in (
        (torch.nn.functional, "softmax"),
        (torch, "softmax"),
        (torch.nn.functional, "silu"),
        (torch.nn.functional, "gelu"),
        (torch, "rsqrt"),
    ):
        monkeypatch.setattr(mod, fn, _forbid)
    with torch.no_grad():
        got = sub(ids)
    monkeypatch.undo()
    roles = model.roles
    assert len(roles["rmsnorm"]) == NORMS_PER_LAYER[kind] * N_LAYERS + 1
    assert len(roles["attention"]) == len(roles["act"]) == N_LAYERS
    want = sorted(
        [("rmsnorm", f"hf.{p}") for p in roles["rmsnorm"]]
        + [("softmax", f"hf.{p}") for p in roles["attention"]]
        + [("act", f"hf.{p}") for p in roles["act"]]
    )
    assert sorted(log) == want  # each module exactly once, nothing else
    with torch.no_grad():
        ref = model(ids)
    assert torch.isfinite(got).all() and not torch.equal(got, ref)


def test_substitute_leaves_the_original_on_ref(model_dirs):
    model, tok = engine.load_model(f"hf:{model_dirs['llama']}")
    ids = text_ids(tok)
    with torch.no_grad():
        before = model(ids)
        substitute(model, variant="nli")(ids)
        assert torch.equal(model(ids), before)
    assert all(m.ops is REF_OPS for m in model.modules() if hasattr(m, "ops"))


# ----------------------------------------------------------------------------- same kernels
def native_from_hf(hf) -> Llama:
    """engine.model.Llama with the weights of a transformers Llama and its RoPE tables (the one
    part computed differently: transformers' float32 vs the engine's float64-then-rounded)."""
    c = hf.config
    nat = Llama(
        NativeConfig(
            vocab_size=c.vocab_size,
            dim=c.hidden_size,
            n_layers=c.num_hidden_layers,
            n_heads=c.num_attention_heads,
            n_kv_heads=c.num_key_value_heads,
            hidden_dim=c.intermediate_size,
            norm_eps=c.rms_norm_eps,
            rope_theta=c.rope_parameters["rope_theta"],
            max_seq_len=c.max_position_embeddings,
            tie_embeddings=True,
        )
    ).eval()
    sd = hf.state_dict()
    names = {"embed.weight": "model.embed_tokens.weight", "norm.weight": "model.norm.weight"}
    for i in range(c.num_hidden_layers):
        names[f"layers.{i}.attn_norm.weight"] = f"model.layers.{i}.input_layernorm.weight"
        names[f"layers.{i}.ffn_norm.weight"] = f"model.layers.{i}.post_attention_layernorm.weight"
        for p in "qkvo":
            names[f"layers.{i}.attn.{p}_proj.weight"] = (
                f"model.layers.{i}.self_attn.{p}_proj.weight"
            )
        for p in ("gate", "up", "down"):
            names[f"layers.{i}.mlp.{p}_proj.weight"] = f"model.layers.{i}.mlp.{p}_proj.weight"
    state = {k: sd[v] for k, v in names.items()}
    state["lm_head.weight"] = sd["model.embed_tokens.weight"]
    nat.load_state_dict(state)
    pos = torch.arange(c.max_position_embeddings)[None]
    cos, sin = hf.model.rotary_emb(torch.zeros(1), pos)  # [1, max_seq, head_dim]
    nat.rope_cos.copy_(cos[0])
    nat.rope_sin.copy_(sin[0])
    return nat


class TapeOps(OpSet):
    """Delegates to ``inner``, appending (op, input, output) of every call to ``tape``."""

    def __init__(self, inner, tape):
        self.inner, self.tape, self.name = inner, tape, "tape"

    def act(self, x, fn):
        y = self.inner.act(x, fn)
        self.tape.append((f"act:{fn}", x.clone(), y.clone()))
        return y

    def rmsnorm(self, x, weight, eps):
        y = self.inner.rmsnorm(x, weight, eps)
        self.tape.append((f"rmsnorm:{eps}", x.clone(), y.clone()))
        return y

    def softmax(self, x):
        y = self.inner.softmax(x)
        self.tape.append(("softmax", x.clone(), y.clone()))
        return y


def test_same_kernels_as_the_native_path(model_dirs):
    model, tok = engine.load_model(f"hf:{model_dirs['llama']}")
    native = native_from_hf(model.hf)
    ids = text_ids(tok)
    ops = make_ops(variant="nli", activation="silu")  # one unit OpSet, as substitute builds it
    tapes = {}
    for label, m in (("hf", model), ("native", native)):
        tapes[label] = []
        with torch.no_grad():
            out = m.set_ops(TapeOps(ops, tapes[label]))(ids)
        m.set_ops(REF_OPS)
        tapes[label].append(("logits", ids, out))
    hf_tape, nat_tape = tapes["hf"], tapes["native"]
    # 2 layers x (2 norms + softmax + act) + final norm + logits
    assert len(hf_tape) == len(nat_tape) == N_LAYERS * 4 + 2
    for (op_a, x_a, y_a), (op_b, x_b, y_b) in zip(hf_tape, nat_tape):
        assert op_a == op_b
        assert torch.equal(x_a, x_b), op_a
        assert torch.equal(y_a, y_b), op_a


# ----------------------------------------------------------------------------- refused models
def test_unsupported_activation(tmp_path):
    d = save(build_hf("llama", hidden_act="relu"), tmp_path / "relu")
    with pytest.raises(ValueError, match=r"unsupported activation 'relu'.*silu.*gelu_pytorch_tanh"):
        engine.load_model(f"hf:{d}")


def test_unsupported_norm_class():
    m = build_hf("llama")
    m.model.norm = torch.nn.LayerNorm(64)
    with pytest.raises(ValueError, match="unsupported norm class LayerNorm .*model.norm"):
        HFCausalLM(m)


def test_bypassed_extension_point_is_refused():
    m = build_hf("llama")
    mlp = m.model.layers[1].mlp
    mlp.forward = lambda x: mlp.down_proj(
        torch.nn.functional.silu(mlp.gate_proj(x)) * mlp.up_proj(x)
    )
    with pytest.raises(ValueError, match="model.layers.1.mlp.act_fn never calls its op"):
        HFCausalLM(m)


def test_tokenizer_ids_are_transformers(model_dirs):
    from transformers import AutoTokenizer

    _, tok = engine.load_model(f"hf:{model_dirs['llama']}")
    want = AutoTokenizer.from_pretrained(model_dirs["llama"]).encode(TEXT)
    assert tok.encode(TEXT).ids == want and tok.decode(want) == TEXT
    assert tok.get_vocab_size() == 257 and tok.token_to_id("<|endoftext|>") == 256


@pytest.mark.parametrize("kind", KINDS)
def test_numba_and_torch_backends_agree_on_the_adapter(model_dirs, kind):
    """The adapter hands its op calls to whichever unit backend substitute builds: the numba
    and the pure-torch datapaths give bit-identical logits."""
    model, tok = engine.load_model(f"hf:{model_dirs[kind]}")
    ids = text_ids(tok)
    with torch.no_grad():
        got = {b: substitute(model, variant="nli", backend=b)(ids) for b in ("numba", "torch")}
    assert torch.equal(got["numba"], got["torch"])
