"""`nli table build|export`: files written, one-line errors with exit code 2."""

import json

import pytest

from nli.cli import main
from nli.published import published_table
from nli.table import load_table, save_table


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_build_writes_spec_keys_and_solver_record(tmp_path, capsys):
    p = tmp_path / "t.json"
    code, out, err = _run(
        capsys,
        "table",
        "build",
        "sigmoid",
        "-o",
        str(p),
        "--domain",
        "1",
        "2",
        "--layout",
        "two-level:2:4",
        "--objective",
        "max",
        "-q",
    )
    assert code == 0 and str(p) in out
    d = json.loads(p.read_text())
    assert (
        d["objective"] == "max"
        and d["layout"] == "two-level:2:4"
        and d["domain"] == ["3c00", "4000"]
    )
    assert isinstance(d["cost"], float) and d["solve_seconds"] >= 0 and d["bins"] == [1, 4, 4, 1]
    assert load_table(p).entries == 11 and d["lut_rounding_in_objective"] is False
    code, _, _ = _run(
        capsys,
        "table",
        "build",
        "sigmoid",
        "-o",
        str(p),
        "--domain",
        "1",
        "2",
        "--layout",
        "single:3",
        "--lut-rounding",
        "-q",
    )
    assert code == 0 and json.loads(p.read_text())["lut_rounding_in_objective"] is True


def test_build_shows_a_progress_bar_per_layer(tmp_path, capsys):
    code, out, err = _run(
        capsys,
        "table",
        "build",
        "silu",
        "-o",
        str(tmp_path / "t.json"),
        "--domain",
        "1",
        "1.5",
        "--layout",
        "single:4",
    )
    assert code == 0 and "DP layers" in err and "3/3" in err


@pytest.mark.parametrize(
    "argv,msg",
    [
        (["table", "build", "cosh"], "unknown function 'cosh'"),
        (["table", "build", "silu", "--domain", "1.0001", "1.0002"], "holds no finite FP16 value"),
        (["table", "build", "silu", "--domain", "2", "1"], "reversed"),
        (["table", "build", "silu", "--domain", "-100000", "1"], "outside FP16"),
        (["table", "build", "silu", "--domain", "1", "one"], "not a number"),
        (
            ["table", "build", "silu", "--domain", "1", "1.002", "--layout", "single:5"],
            "needs 5 cutpoints",
        ),
        (["table", "build", "silu", "--layout", "single:1"], "layout"),
    ],
)
def test_build_errors_are_one_line_exit_2(tmp_path, capsys, argv, msg):
    out = tmp_path / "never.json"
    code, _, err = _run(capsys, *argv, "-o", str(out))
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nli: error:") and msg in lines[0]
    assert not out.exists()


def test_export_formats(tmp_path, capsys):
    t = tmp_path / "t.json"
    save_table(published_table("tanh"), t)
    for fmt, dest in (("c", "t.h"), ("hex", "mem"), ("npz", "t.npz")):
        code, out, _ = _run(
            capsys, "table", "export", str(t), "--format", fmt, "-o", str(tmp_path / dest)
        )
        assert code == 0 and (tmp_path / dest).exists()
    assert "NLI_TANH_LUT[259]" in (tmp_path / "t.h").read_text()


def test_export_rejects_a_table_breaking_a_rule(tmp_path, capsys):
    t = tmp_path / "t.json"
    d = published_table("tanh").to_json_dict()
    d["base"][3] += 1
    t.write_text(json.dumps(d))
    code, _, err = _run(
        capsys, "table", "export", str(t), "--format", "c", "-o", str(tmp_path / "x.h")
    )
    assert code == 2 and "base" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.h").exists()
