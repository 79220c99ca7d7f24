"""User functions (`nli table build pkg.module:name --domain LO HI`): bad input gives one line
and exit 2 with nothing written; a user function goes through build, report and export; the
solver's grid-value path gives the built-in's table for a user wrapper of a built-in."""

import json

from naive import naive_point_errors
import numpy as np
import pytest

from nli.cli import main
from nli.functions import get_function
from nli.grid import fp16_grid
from nli.objective import grid_arrays, segment_cost
from nli.solver import solve, table_from_result
from nli.table import load_table
from nli.user_function import allow_import

MODULE = """
import numpy as np
import nli

def silu(x):
    return nli.get_function("silu")(x)

def scalar_only(x):
    return float(x) * 2.0          # raises on an array

def wrong_shape(x):
    return np.zeros(3)

def wrong_dtype(x):
    return x.astype(np.float32)

def pole(x):
    return 1.0 / x

def nan_below(x):
    return np.sqrt(x)

def sine(x):
    return np.sin(x)

NOT_CALLABLE = 3.0
"""


@pytest.fixture
def usermod(tmp_path, monkeypatch, request):
    name = f"nli_usermod_{request.node.name.split('[')[0]}"
    (tmp_path / f"{name}.py").write_text(MODULE)
    (tmp_path / "nli_broken_mod.py").write_text("raise RuntimeError('boom')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


def _build(capsys, tmp_path, spec, *extra):
    out = tmp_path / "t.json"
    code = main(["table", "build", spec, "-o", str(out), "-q", *extra])
    o, e = capsys.readouterr()
    return code, o, e, out


@pytest.mark.parametrize(
    "attr, domain, message",
    [
        ("silu", None, "--domain LO HI is required for a user function"),
        ("nope", ["1", "2"], "has no attribute 'nope'"),
        ("NOT_CALLABLE", ["1", "2"], "is not callable"),
        (
            "scalar_only",
            ["1", "2"],
            "not vectorized: TypeError on a float64 array of 1025 values (first x = 1.0)",
        ),
        ("wrong_shape", ["1", "2"], "not vectorized: returned float64[3]"),
        ("wrong_dtype", ["1", "2"], "not vectorized: returned float32[1025]"),
        ("pole", ["-1", "1"], "is not finite at x = 0.0"),
        ("nan_below", ["-1", "1"], "f(x) = nan is not finite at x = -1.0"),
    ],
)
def test_bad_user_function_one_line_exit_2_nothing_written(
    usermod, tmp_path, capsys, attr, domain, message
):
    extra = ["--domain", *domain] if domain else []
    code, out, err, path = _build(capsys, tmp_path, f"{usermod}:{attr}", *extra)
    assert code == 2 and message in err, err
    assert err.startswith("nli: error:") and err.count("\n") == 1
    assert not path.exists() and list(tmp_path.glob("*.tmp")) == []


@pytest.mark.parametrize(
    "spec, message",
    [
        ("nli_broken_mod:f", "module 'nli_broken_mod' does not import (RuntimeError: boom)"),
        ("no_such_module_xyz:f", "does not import (ModuleNotFoundError"),
        ("bad path:f", "a user function is a dotted path pkg.module:name"),
    ],
)
def test_bad_module_one_line(usermod, tmp_path, capsys, spec, message):
    code, out, err, path = _build(capsys, tmp_path, spec, "--domain", "1", "2")
    assert code == 2 and message in err and err.count("\n") == 1 and not path.exists()


def test_user_wrapper_of_a_builtin_gives_the_builtins_table(usermod):
    # two-level: the user path evaluates f at interior bin edges from grid values
    for layout in ("single:5", "two-level:2:4"):
        ours = solve(f"{usermod}:silu", layout, "mean", domain=(1.0, 2.0), quantized=True)
        ref = solve("silu", layout, "mean", domain=(1.0, 2.0), quantized=True)
        assert np.array_equal(ours.cutpoints, ref.cutpoints)
        assert ours.objective_value == pytest.approx(ref.objective_value, rel=1e-9)
        a, b = table_from_result(ours), table_from_result(ref)
        assert np.array_equal(a.lut, b.lut) and a.function == f"{usermod}:silu"


def test_example_end_to_end_build_report_export(tmp_path, capsys):
    spec = "nli.examples:quick_gelu"
    t = tmp_path / "qg.json"
    assert (
        main(
            [
                "table",
                "build",
                spec,
                "--domain",
                "-2",
                "2",
                "--layout",
                "two-level:2:4",
                "--objective",
                "mean",
                "--lut-rounding",
                "--stride",
                "64",
                "-q",
                "-o",
                str(t),
            ]
        )
        == 0
    )
    table = load_table(t)
    assert table.function == spec and table.meta["layout"] == "two-level:2:4"
    rep_path = tmp_path / "rep.json"
    assert main(["table", "report", str(t), "--json", str(rep_path)]) == 0
    out = capsys.readouterr().out
    assert "sign check:" in out and "tails check:" in out and "provenance:" in out
    rep = json.loads(rep_path.read_text())
    assert rep["function"] == spec and rep["domain"] == [-2.0, 2.0]
    assert rep["provenance"]["solve"] == "thinned (stride 64)"
    assert rep["sign_check"]["ok"] and rep["tails_check"]["ok"]
    # the reference the report used is the user's function
    x = np.array([-1.5, 0.25, 1.75])
    np.testing.assert_allclose(get_function(spec)(x), x / (1 + np.exp(-1.702 * x)), rtol=1e-15)
    # refine (needs f: imports the path again) and the simulator (needs only the table)
    r = tmp_path / "qg_refined.json"
    assert main(["table", "refine", str(t), "--output", str(r), "--sweeps", "1"]) == 0
    assert load_table(r).function == spec
    xin, yout = tmp_path / "x.npy", tmp_path / "y.npy"
    np.save(xin, np.array([-1.0, 0.5, 1.5], np.float16))
    assert main(["sim", "elementwise", str(t), "--input", str(xin), "--output", str(yout)]) == 0
    y = np.load(yout).astype(np.float64)
    err = np.abs(y - get_function(spec)(np.array([-1.0, 0.5, 1.5])))
    assert np.all(err <= rep["max_abs_error"])  # within what the report measured
    h = tmp_path / "qg.h"
    assert main(["table", "export", str(t), "--format", "c", "-o", str(h)]) == 0
    text = h.read_text()
    assert "uint16_t" in text and "quick_gelu" in text


def test_report_of_a_table_whose_module_is_gone(tmp_path, capsys, usermod):
    t = table_from_result(solve(f"{usermod}:silu", "single:3", "mean", domain=(1.0, 2.0)))
    d = t.to_json_dict()
    d["function"] = "nli_gone_module_xyz:silu"
    p = tmp_path / "t.json"
    p.write_text(json.dumps(d))
    assert main(["table", "report", str(p)]) == 2  # not named on the command line: no import
    err = capsys.readouterr().err
    assert "table files never import code" in err and err.count("\n") == 1
    assert main(["table", "report", str(p), "--import-function", "nli_gone_module_xyz:silu"]) == 2
    err = capsys.readouterr().err
    assert "does not import" in err and err.count("\n") == 1


def test_a_table_file_never_imports_code_on_its_own(tmp_path, capsys, monkeypatch):
    # a module with a side effect on import, named by a table file: report and refine refuse
    # to import it unless --import-function names it
    marker = tmp_path / "imported"
    (tmp_path / "nli_evil_mod_xyz.py").write_text(
        f"open({str(marker)!r}, 'w').close()\nimport numpy as np\ndef f(x):\n    return x\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    d = table_from_result(solve("silu", "single:3", "mean", domain=(1.0, 2.0))).to_json_dict()
    d["function"] = "nli_evil_mod_xyz:f"
    p = tmp_path / "t.json"
    p.write_text(json.dumps(d))
    for argv in (
        ["table", "report", str(p)],
        ["table", "refine", str(p), "--output", str(tmp_path / "r.json")],
    ):
        assert main(argv) == 2
        assert "never import code" in capsys.readouterr().err
    assert not marker.exists() and not (tmp_path / "r.json").exists()
    assert main(["table", "report", str(p), "--import-function", "nli_evil_mod_xyz:silu"]) == 2
    assert "the table's function is" in capsys.readouterr().err
    assert not marker.exists()


COST_REL_TOL = 1e-9  # as tests/test_solver.py: float noise of the prefix-sum costs
COST_ABS_TOL = 1e-14
LERP_POINT_TOL = 1e-6  # per grid point: edges from grid values vs exact f, <= h^2 |f''| / 8 / w


def test_user_segment_costs_against_point_sums(usermod):
    """Inflections seen on the grid (sin: 0 and +-pi) and segment costs of a user function:
    single bins exact; 32-bin intervals (edges between grid values) within LERP_POINT_TOL per
    point (unquantized: RNE16 of an edge value could flip at a near-tie)."""
    allow_import(f"{usermod}:sine")  # the library caller names it
    fn = get_function(f"{usermod}:sine")
    x, _ = fp16_grid(-4.0, 4.0)
    G = grid_arrays(fn, x)
    np.testing.assert_allclose(G.infl, [-np.pi, 0.0, np.pi], atol=4e-3)
    rng = np.random.default_rng(3)
    for _ in range(8):
        j = int(rng.integers(0, x.size - 3000))
        k = j + int(rng.integers(2, 3000))
        for q in (False, True):
            errs = naive_point_errors(fn, x, j, k, 1, quantized=q)
            got = segment_cost(G, j, k, 1, "mean", quantized=q)
            assert got == pytest.approx(sum(errs) / x.size, rel=COST_REL_TOL, abs=COST_ABS_TOL)
        errs = naive_point_errors(fn, x, j, k, 32)
        got = segment_cost(G, j, k, 32, "mean")
        assert abs(got - sum(errs) / x.size) <= LERP_POINT_TOL * (k - j + 1) / x.size
