"""engine with dtype bf16 (numerics §13): the bf16 variant (exact ops, BF16 in and out) against
the mpmath oracle, the nli variant's op calls against hw_sim's bf16 ops on RNE_bf16 of their
inputs (native and hf: models), the fused and unfused paths, and the one-line errors (torch
backend, mixed formats, variants without bf16 tables)."""

import json

from bf16_tables import bf16_engine_tables
from naive import naive_bf16_rmsnorm_bits, naive_bf16_silu_bits, naive_bf16_softmax_bits
import numpy as np
import pytest
from sim_tables import standin_tables
from test_substitute import Capture
import torch

import engine
from engine import substitute
from engine.op_sets import Bf16Ops, UnitOps
from engine.substitution import make_ops, share_weights_copy
import hw_sim
from nli.cli import main
from nli.grid import f32_to_bf16_bits, f64_to_bf16_bits
from nli.table import save_table

SEED = 1818
MODES = ("direct", "reduced")


def bf16_of(y: torch.Tensor) -> np.ndarray:
    """float32 tensor holding BF16 values -> their uint16 patterns (asserting they are BF16)."""
    b = y.detach().contiguous().numpy().view(np.uint32)
    assert np.all(b & 0xFFFF == 0), "not BF16 values"
    return (b >> 16).astype(np.uint16)


def _check_calls(calls, tb, mode):
    seen = set()
    for op, x, w, eps, y in calls:
        seen.add(op)
        xb = f32_to_bf16_bits(x.numpy())
        if op == "softmax":
            want = hw_sim.softmax_bf16(xb, tb["exp"], tb["reciprocal"], mode)
        elif op == "rmsnorm":
            wb = f32_to_bf16_bits(w.detach().float().numpy())
            want = hw_sim.rmsnorm_bf16(xb, wb, eps, tb["rsqrt"], mode)
        else:
            want = hw_sim.output_lut(tb[op])[xb]
        assert np.array_equal(bf16_of(y), want), op
    return seen


@pytest.mark.parametrize("mode", MODES)
def test_model_ops_equal_hw_sim_bf16_bits(mode):
    """Every op call of a tiny-model forward with dtype bf16 == hw_sim's bf16 op on RNE_bf16 of
    its FP32 input (and weight); the outputs are BF16 values."""
    tb = bf16_engine_tables(mode)
    model, tok = engine.load_model("tiny")
    sub = substitute(model, variant="nli", tables=tb, reciprocal_mode=mode, dtype="bf16")
    assert sub.ops.name == f"nli[act,rmsnorm,softmax]/{mode}/bf16"
    cap = Capture(sub.ops)
    sub.set_ops(cap)
    ids = torch.tensor([tok.encode("BF16 end to end: 0123456789.").ids])
    with torch.no_grad():
        sub(ids)
    assert _check_calls(cap.calls, tb, mode) == {"silu", "rmsnorm", "softmax"}


def test_unfused_path_is_the_same_function():
    tb = bf16_engine_tables("reduced")
    rng = np.random.default_rng(SEED)
    x = torch.from_numpy((rng.standard_normal((40, 24)) * 30).astype(np.float32))
    x[3, 12:] = -torch.inf
    w = torch.linspace(-2, 2, 24)
    fused = UnitOps(tb, fused=True, dtype="bf16")
    unfused = UnitOps(tb, fused=False, dtype="bf16")
    for f in (lambda o: o.softmax(x), lambda o: o.rmsnorm(x, w, 1e-6), lambda o: o.act(x, "silu")):
        assert torch.equal(f(fused).view(torch.int32), f(unfused).view(torch.int32))


def test_bf16_variant_is_correctly_rounded():
    rng = np.random.default_rng(SEED + 1)
    x = (rng.standard_normal((5, 20)) * [[0.1], [1], [5], [30], [1e20]]).astype(np.float32)
    x[2, 8:] = -np.inf
    w = rng.uniform(-2, 2, 20).astype(np.float32)
    ops = Bf16Ops()
    xt = torch.from_numpy(x)
    sm = bf16_of(ops.softmax(xt))
    rows = [0, 1, 3, 4]
    rms = bf16_of(ops.rmsnorm(xt[rows], torch.from_numpy(w), 1e-5))
    act = bf16_of(ops.act(xt[[0, 1, 3]], "silu"))
    xb, wb = f32_to_bf16_bits(x), f32_to_bf16_bits(w)
    for i in range(5):
        assert np.array_equal(sm[i], naive_bf16_softmax_bits(xb[i]))
    for k, i in enumerate(rows):
        assert np.array_equal(rms[k], naive_bf16_rmsnorm_bits(xb[i], wb, 1e-5))
    assert np.array_equal(act.reshape(-1), naive_bf16_silu_bits(xb[[0, 1, 3]].reshape(-1)))


def test_bf16_and_fp16_variants_differ_where_the_formats_do():
    """A value past FP16's range stays finite in BF16 (RMSNorm needs no prescale there), and
    BF16's 8-bit significand is coarser than FP16's 11 on ordinary values."""
    x = torch.tensor([[1e6, 3.0, -2.0, 0.5]])
    w = torch.ones(4)
    y = Bf16Ops().rmsnorm(x, w, 1e-6)
    assert torch.isfinite(y).all() and y[0, 0] > 1.9
    v = torch.tensor([[1.0 + 2**-9]])
    assert Bf16Ops().act(v, "silu") != make_ops(["act"], "fp16").act(v, "silu")


def test_hf_model_routes_bf16_ops(tmp_path):
    """An hf: model substituted with dtype bf16 sends its op calls to the same bf16 unit."""
    pytest.importorskip("transformers")
    from test_hf_adapter import build_hf, save, text_ids

    model, tok = engine.load_model(f"hf:{save(build_hf('llama'), tmp_path / 'llama')}")
    tb = bf16_engine_tables("reduced")
    cap = Capture(make_ops(variant="nli", tables=tb, dtype="bf16"))
    sub = share_weights_copy(model).set_ops(cap)
    with torch.no_grad():
        sub(text_ids(tok))
    assert _check_calls(cap.calls, tb, "reduced") == {"silu", "rmsnorm", "softmax"}


def test_make_ops_errors():
    tb = bf16_engine_tables("reduced")
    fp16 = standin_tables()
    torch_ops = make_ops(variant="nli", tables=tb, dtype="bf16", backend="torch")  # accepted
    assert torch_ops.routes["act"]._torch(torch.zeros(1)) and torch_ops.name.endswith("/bf16")
    with pytest.raises(ValueError, match="rsqrt table is fp16"):
        make_ops(variant="nli", tables={**tb, "rsqrt": fp16["rsqrt_single"]}, dtype="bf16")
    with pytest.raises(ValueError, match="silu table is bf16"):
        make_ops(["act"], variant="nli", tables={"silu": tb["silu"]})
    with pytest.raises(ValueError, match="with dtype bf16 use the bf16 variant"):
        make_ops(variant="fp16", dtype="bf16")
    with pytest.raises(ValueError, match="fp16 tables only"):
        make_ops(variant="published", dtype="bf16")
    assert make_ops(variant="bf16").name == "bf16[act,rmsnorm,softmax]"


# ----------------------------------------------------------------------------- CLI
@pytest.fixture
def text(tmp_path):
    p = tmp_path / "t.txt"
    p.write_text("Bit for bit, BF16 from end to end. " * 6, encoding="utf-8")
    return str(p)


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    return err


def test_cli_bf16_variant_and_nli_with_bf16_tables(text, tmp_path):
    base = ["eval", "ppl", "--model", "tiny", "--text", text, "--no-progress"]
    out = tmp_path / "bf16.json"
    assert main([*base, "--variant", "bf16", "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["dtype"] == "bf16" and r["mode"] == "bf16" and r["ppl"] > 0
    files = []
    for fn, t in bf16_engine_tables("reduced").items():
        save_table(t, tmp_path / f"{fn}.json")
        files += ["--table", f"{fn}={tmp_path / f'{fn}.json'}"]
    out2 = tmp_path / "nli.json"
    assert main([*base, "--dtype", "bf16", *files, "--json", str(out2)]) == 0
    r2 = json.loads(out2.read_text())
    assert r2["dtype"] == "bf16" and r2["mode"] == "nli" and r2["ppl"] > 0


def test_cli_bf16_shipped_defaults(text, tmp_path, capsys):
    """--dtype bf16 alone runs the shipped bf16 defaults (reduced mode); direct mode, whose bf16
    reciprocal / rsqrt tables are not shipped, is a one-line error naming the missing file."""
    base = ["eval", "ppl", "--model", "tiny", "--text", text, "--no-progress"]
    out = tmp_path / "r.json"
    assert main([*base, "--dtype", "bf16", "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["dtype"] == "bf16" and r["rmsnorm_input"].startswith("none") and r["ppl"] > 0
    assert "no RMSNorm prescale" in capsys.readouterr().out
    assert main([*base, "--dtype", "bf16", "--reciprocal-mode", "direct"]) == 2
    assert "no shipped table at" in _one_line(capsys)


@pytest.mark.parametrize(
    "argv, msg",
    [
        (["--dtype", "bf16", "--variant", "fp16"], "use the bf16 variant"),
        (["--dtype", "fp16", "--variant", "bf16"], "use the fp16 variant"),
        (["--dtype", "bf16", "--variant", "baseline:uniform"], "fp16 tables only"),
        (["--dtype", "bf16", "--rmsnorm-input", "scaled"], "bf16 has none"),
        (["--dtype", "bf17"], "invalid choice"),
    ],
)
def test_cli_bf16_errors(argv, msg, text, capsys):
    base = ["eval", "ppl", "--model", "tiny", "--text", text, "--no-progress"]
    assert main([*base, *argv]) == 2
    assert msg in _one_line(capsys)


def test_cli_table_of_the_wrong_dtype(text, tmp_path, capsys):
    path = tmp_path / "silu.json"
    save_table(bf16_engine_tables("reduced")["silu"], path)
    base = ["eval", "ppl", "--model", "tiny", "--text", text, "--no-progress"]
    assert main([*base, "--table", f"silu={path}"]) == 2
    err = _one_line(capsys)
    assert "--table silu: the table is bf16, but the unit runs fp16" in err


def test_bf16_inputs_round_to_nearest_even():
    """The op boundary is RNE_bf16 (ties to even), not truncation: 1 + 2^-8 (a tie) goes to 1,
    1 + 3 * 2^-8 to 1 + 2^-6 (the even neighbour above)."""
    x = torch.tensor([1 + 2**-8, 1 + 3 * 2**-8], dtype=torch.float32)
    b = f32_to_bf16_bits(x.numpy())
    assert np.array_equal(b, f64_to_bf16_bits(np.array([1.0, 1 + 2**-6])))
