"""`nli eval ppl` on the tiny model: the JSON it writes and its errors."""

import json

from engine_tables import engine_tables
import pytest

from nli.cli import main
from nli.table import save_table

KEYS = {
    "ppl_ref",
    "ppl",
    "tokens",
    "top1_agreement",
    "mean_kl",
    "activation_stats",
    "mode",
    "ops",
    "reciprocal_mode",
    "window",
    "model",
    "text",
    "rmsnorm_input",
}


@pytest.fixture
def text(tmp_path):
    p = tmp_path / "t.txt"
    p.write_text("The quick brown fox jumps over the lazy dog. 0123456789. " * 4, encoding="utf-8")
    return p


def test_eval_ppl_fp16_json(text, tmp_path, capsys):
    out = tmp_path / "r.json"
    rc = main(
        [
            "eval",
            "ppl",
            "--model",
            "tiny",
            "--text",
            str(text),
            "--max-tokens",
            "150",
            "--window",
            "64",
            "--variant",
            "fp16",
            "--json",
            str(out),
            "--no-progress",
        ]
    )
    assert rc == 0
    r = json.loads(out.read_text())
    assert KEYS <= set(r)
    assert (
        r["tokens"] == 150 - 3 and r["mode"] == "fp16" and r["ops"] == ["act", "rmsnorm", "softmax"]
    )
    assert r["ppl"] > 1 and r["ppl_ref"] > 1 and 0.9 < r["top1_agreement"] <= 1
    assert r["rmsnorm_input"] == "scaled"  # the default (numerics §4.1)
    st = r["activation_stats"]
    assert set(st) == {"act", "rmsnorm", "softmax"}
    assert st["rmsnorm"]["min"] <= st["rmsnorm"]["max"] and "mean_square_max" in st["rmsnorm"]
    assert "ppl ref" in capsys.readouterr().out


def test_eval_ppl_nli_with_table_files(text, tmp_path):
    args = []
    for fn, t in engine_tables("direct").items():
        save_table(t, tmp_path / f"{fn}.json")
        args += ["--table", f"{fn}={tmp_path / f'{fn}.json'}"]
    out = tmp_path / "r.json"
    rc = main(
        [
            "eval",
            "ppl",
            "--model",
            "tiny",
            "--text",
            str(text),
            "--max-tokens",
            "100",
            "--ops",
            "softmax,rmsnorm",
            "--mode",
            "nli",
            "--reciprocal-mode",
            "direct",
            "--rmsnorm-input",
            "plain",
            "--json",
            str(out),
            "--no-progress",
        ]
        + args
    )
    assert rc == 0
    r = json.loads(out.read_text())
    assert r["reciprocal_mode"] == "direct" and r["ops"] == ["softmax", "rmsnorm"]
    assert r["rmsnorm_input"] == "plain"
    assert set(r["activation_stats"]) == {"act", "rmsnorm", "softmax"}  # every op is recorded


@pytest.mark.parametrize(
    "argv, msg",
    [
        (["--model", "nope"], "unknown model"),
        (["--variant", "int4"], "variant must be"),
        (["--mode", "int4"], "variant must be"),  # the deprecated alias still parses
        (["--ops", "gelu"], "unknown op"),
        (["--max-tokens", "1"], "max-tokens"),
        (["--window", "4096"], "exceeds the model's context"),
        (["--table", "silu"], "FUNCTION=FILE"),
        (["--rmsnorm-input", "half"], "--rmsnorm-input"),
        (["--text", "/nonexistent/file.txt"], "No such file"),
    ],
)
def test_eval_ppl_errors(argv, msg, text, capsys):
    base = ["eval", "ppl", "--model", "tiny", "--text", str(text), "--no-progress"]
    assert main(base + argv) == 2
    err = capsys.readouterr().err
    assert msg in err and err.count("\n") == 1


def test_eval_ppl_not_utf8(tmp_path, capsys):
    p = tmp_path / "bin.txt"
    p.write_bytes(b"\xff\xfe\x00bad")
    assert main(["eval", "ppl", "--model", "tiny", "--text", str(p)]) == 2
    assert "not UTF-8" in capsys.readouterr().err


def test_demo_perplexities_and_plot(tmp_path):
    import engine
    from engine.demo import demo_perplexities, plot_perplexities

    model, tok = engine.load_model("tiny")
    variants = (
        ("fp16", "fp16", "reduced"),
        ("published_direct", "published", "direct"),
        ("missing", "baseline:magic", "reduced"),
    )
    res = demo_perplexities(
        model, tok, max_tokens=130, variants=variants, window=64, progress=False
    )
    assert res["tokens"] == 63 + 63 + 1 and set(res["modes"]) == {"fp16", "published_direct"}
    assert "unknown baseline" in res["unavailable"]["missing"]
    assert set(res["modes"]) | set(res["unavailable"]) == {"fp16", "published_direct", "missing"}
    plot_perplexities(res, tmp_path / "p.png")
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"
