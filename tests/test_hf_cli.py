"""`nli eval ppl --model hf:PATH` on the tiny transformers models of tests/test_hf_adapter.py,
and the CLI's one-line errors (no config.json, transformers missing, accelerate missing for
--device-map, bad device)."""

import json
import sys

import pytest

pytest.importorskip("transformers")

import test_hf_adapter  # noqa: E402
from test_hf_adapter import TEXT  # noqa: E402

from nli.cli import main  # noqa: E402

# the module-scoped tiny models (tests/test_hf_adapter.py), found by name
model_dirs = test_hf_adapter.model_dirs


@pytest.fixture
def text_file(tmp_path):
    p = tmp_path / "t.txt"
    p.write_text(TEXT * 3, encoding="utf-8")
    return p


def eval_args(model, text_file, *extra):
    return ["eval", "ppl", "--model", model, "--text", str(text_file), "--no-progress", *extra]


def test_cli_eval_ppl_on_hf_model(model_dirs, text_file, tmp_path):
    out = tmp_path / "r.json"
    args = eval_args(f"hf:{model_dirs['gemma3']}", text_file, "--window", "64")
    assert main([*args, "--device", "cpu", "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["tokens"] == len(TEXT * 3) - 3  # windows of 64: 63 + 63 + 60 predictions
    assert r["ops"] == ["act", "rmsnorm", "softmax"] and r["ppl"] > 0 and r["ppl_ref"] > 0
    assert r["activation_stats"]["rmsnorm"]["peak_module"].startswith("hf.model.")


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("nli: error: ") and err.count("\n") == 1 and "Traceback" not in err
    return err


def test_cli_directory_without_config(tmp_path, text_file, capsys):
    (tmp_path / "empty").mkdir()
    out = tmp_path / "r.json"
    assert main([*eval_args(f"hf:{tmp_path / 'empty'}", text_file), "--json", str(out)]) == 2
    assert "no config.json" in _one_line_error(capsys) and not out.exists()


def test_cli_missing_path(tmp_path, text_file, capsys):
    assert main(eval_args(f"hf:{tmp_path / 'nope'}", text_file)) == 2
    assert "no such file or directory" in _one_line_error(capsys)


def test_cli_transformers_missing(model_dirs, text_file, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "transformers", None)  # `import transformers` fails
    assert main(eval_args(f"hf:{model_dirs['llama']}", text_file)) == 2
    assert "pip install 'nli-engine[hf]'" in _one_line_error(capsys)


def test_cli_accelerate_missing_for_device_map(model_dirs, text_file, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "accelerate", None)
    args = eval_args(f"hf:{model_dirs['llama']}", text_file, "--device-map", "auto")
    assert main(args) == 2
    err = _one_line_error(capsys)
    assert "accelerate" in err and "pip install" in err


@pytest.mark.parametrize(
    "device, why",
    [("cuda:99", "does not exist"), ("tpu", "not a device name"), ("meta", "unsupported type")],
)
def test_cli_bad_device(text_file, tmp_path, capsys, device, why):
    out = tmp_path / "r.json"
    assert main([*eval_args("tiny", text_file), "--device", device, "--json", str(out)]) == 2
    err = _one_line_error(capsys)
    assert why in err and device in err and not out.exists()


def test_cli_device_map_needs_hf_model(text_file, capsys):
    assert main([*eval_args("tiny", text_file), "--device-map", "auto"]) == 2
    assert "hf:" in _one_line_error(capsys)


def test_cli_device_map_auto(model_dirs, text_file, tmp_path):
    pytest.importorskip("accelerate")
    out = tmp_path / "r.json"
    args = eval_args(f"hf:{model_dirs['llama']}", text_file, "--device-map", "auto")
    assert main([*args, "--variant", "fp16", "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["device"] == "auto" and r["tokens"] == len(TEXT * 3) - 1 and r["ppl"] > 0
