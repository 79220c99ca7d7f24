"""`nli sim ...` and `nli table report|refine`: files in, files out, one-line errors."""

import json

import numpy as np
import pytest
from sim_tables import op_tables, standin_tables

import hw_sim
import nli
from nli.cli import main

S = standin_tables()
T = op_tables("standin")


@pytest.fixture()
def files(tmp_path):
    paths = {}
    for name, t in S.items():
        paths[name] = tmp_path / f"{name}.json"
        nli.save_table(t, paths[name])
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((3, 5, 16)) * 3).astype(np.float16)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "xbits.npy", x.view(np.uint16))
    np.save(tmp_path / "w.npy", np.linspace(0.5, 1.5, 16).astype(np.float16))
    np.save(tmp_path / "w_bad.npy", np.ones(7, np.float16))
    np.save(tmp_path / "x32.npy", x.astype(np.float32))
    paths["dir"] = tmp_path
    return paths


def test_elementwise_softmax_rmsnorm_write_the_simulator_bits(files):
    d = files["dir"]
    x = np.load(d / "x.npy")
    assert (
        main(
            [
                "sim",
                "elementwise",
                str(files["silu_wide"]),
                "--input",
                str(d / "xbits.npy"),
                "--output",
                str(d / "y.npy"),
            ]
        )
        == 0
    )
    y = np.load(d / "y.npy")
    assert y.dtype == np.float16 and np.array_equal(
        y.view(np.uint16), hw_sim.run_elementwise(S["silu_wide"], x).view(np.uint16)
    )
    assert (
        main(
            [
                "sim",
                "softmax",
                "--exp",
                str(files["exp_below0"]),
                "--recip",
                str(files["recip_reduced"]),
                "--mode",
                "reduced",
                "--input",
                str(d / "x.npy"),
                "--output",
                str(d / "s.npy"),
            ]
        )
        == 0
    )
    want = hw_sim.softmax(x, S["exp_below0"], S["recip_reduced"], "reduced")
    assert np.array_equal(np.load(d / "s.npy").view(np.uint16), want.view(np.uint16))
    assert (
        main(
            [
                "sim",
                "rmsnorm",
                "--rsqrt",
                str(files["rsqrt_direct"]),
                "--mode",
                "direct",
                "--weight",
                str(d / "w.npy"),
                "--eps",
                "1e-5",
                "--input",
                str(d / "x.npy"),
                "--output",
                str(d / "r.npy"),
            ]
        )
        == 0
    )
    want = hw_sim.rmsnorm(x, np.load(d / "w.npy"), 1e-5, S["rsqrt_direct"], "direct")
    assert np.array_equal(np.load(d / "r.npy").view(np.uint16), want.view(np.uint16))


@pytest.mark.parametrize(
    "argv,message",
    [
        (
            [
                "sim",
                "elementwise",
                "{silu_wide}",
                "--input",
                "{dir}/x32.npy",
                "--output",
                "{dir}/o.npy",
            ],
            "dtype float32",
        ),
        (
            [
                "sim",
                "softmax",
                "--exp",
                "{silu_wide}",
                "--recip",
                "{recip_reduced}",
                "--mode",
                "direct",
                "--input",
                "{dir}/x.npy",
                "--output",
                "{dir}/o.npy",
            ],
            "expected a 'exp' table",
        ),
        (
            [
                "sim",
                "softmax",
                "--exp",
                "{exp_below0}",
                "--recip",
                "{recip_reduced}",
                "--mode",
                "both",
                "--input",
                "{dir}/x.npy",
                "--output",
                "{dir}/o.npy",
            ],
            "mode",
        ),
        (
            [
                "sim",
                "rmsnorm",
                "--rsqrt",
                "{rsqrt_direct}",
                "--mode",
                "direct",
                "--weight",
                "{dir}/w_bad.npy",
                "--eps",
                "1e-5",
                "--input",
                "{dir}/x.npy",
                "--output",
                "{dir}/o.npy",
            ],
            "weight",
        ),
        (
            [
                "sim",
                "rmsnorm",
                "--rsqrt",
                "{rsqrt_direct}",
                "--mode",
                "direct",
                "--weight",
                "{dir}/w.npy",
                "--eps",
                "inf",
                "--input",
                "{dir}/x.npy",
                "--output",
                "{dir}/o.npy",
            ],
            "eps",
        ),
        (
            [
                "sim",
                "rmsnorm",
                "--rsqrt",
                "{recip_reduced}",
                "--mode",
                "direct",
                "--weight",
                "{dir}/w.npy",
                "--eps",
                "1e-5",
                "--input",
                "{dir}/x.npy",
                "--output",
                "{dir}/o.npy",
            ],
            "expected a 'rsqrt' table",
        ),
        (
            [
                "sim",
                "elementwise",
                "{dir}/missing.json",
                "--input",
                "{dir}/x.npy",
                "--output",
                "{dir}/o.npy",
            ],
            "no such",
        ),
    ],
)
def test_bad_input_one_line_error_nonzero_exit(files, capsys, argv, message):
    argv = [a.format(**{k: str(v) for k, v in files.items()}) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and message in err and err.startswith("nli: error:")
    assert not (files["dir"] / "o.npy").exists()


def test_table_report_json_and_plot(files):
    d = files["dir"]
    assert (
        main(
            [
                "table",
                "report",
                str(files["recip_reduced"]),
                "--json",
                str(d / "r.json"),
                "--plot",
                str(d / "r.png"),
            ]
        )
        == 0
    )
    rep = json.loads((d / "r.json").read_text())
    assert rep["inputs"] == 1025 and rep["domain"] == [1.0, 2.0]
    assert (d / "r.png").stat().st_size > 1000


def test_table_refine_and_sim_cost(files, capsys):
    d = files["dir"]
    assert (
        main(
            [
                "table",
                "refine",
                str(files["recip_reduced"]),
                "--output",
                str(d / "ref.json"),
                "--sweeps",
                "1",
                "--json",
                str(d / "ref_summary.json"),
            ]
        )
        == 0
    )
    t = nli.load_table(d / "ref.json")
    assert t.meta["refined"]["objective"] == "mean_rel"
    summary = json.loads((d / "ref_summary.json").read_text())
    assert summary["after"]["mean_rel_error"] <= summary["before"]["mean_rel_error"]
    assert main(["sim", "cost", "--lanes", "4", "--json", str(d / "c.json")]) == 0
    assert "not a measurement" in capsys.readouterr().out
    assert json.loads((d / "c.json").read_text())["lanes"] == 4


@pytest.mark.parametrize(
    "argv,message",
    [
        (
            [
                "sim",
                "softmax",
                "--exp",
                "{exp_below0}",
                "--recip",
                "{recip_reduced}",
                "--mode",
                "direct",
            ],
            "reciprocal table: the 'reciprocal' table spans [1, 2], "
            "a reduced-domain table; direct mode",
        ),
        (
            [
                "sim",
                "softmax",
                "--exp",
                "{exp_below0}",
                "--recip",
                "{recip_direct}",
                "--mode",
                "reduced",
            ],
            "reduced mode needs a 'reciprocal' table over the reduced domain [1, 2]",
        ),
        (
            [
                "sim",
                "softmax",
                "--exp",
                "{exp_below0}",
                "--recip",
                "{exp_below0}",
                "--mode",
                "reduced",
            ],
            "reciprocal table: table is for 'exp', expected a 'reciprocal' table (reduced mode)",
        ),
        (
            [
                "sim",
                "rmsnorm",
                "--rsqrt",
                "{rsqrt_single}",
                "--mode",
                "direct",
                "--weight",
                "{dir}/w.npy",
                "--eps",
                "1e-5",
            ],
            "rsqrt table: the 'rsqrt' table spans [1, 4], a reduced-domain table; direct mode",
        ),
        (
            [
                "sim",
                "rmsnorm",
                "--rsqrt",
                "{rsqrt_direct}",
                "--mode",
                "reduced",
                "--weight",
                "{dir}/w.npy",
                "--eps",
                "1e-5",
            ],
            "reduced mode needs a 'rsqrt' table over the reduced domain [1, 4]",
        ),
    ],
)
def test_table_domain_that_does_not_fit_the_mode_is_a_one_line_error(files, capsys, argv, message):
    argv = [a.format(**{k: str(v) for k, v in files.items()}) for a in argv]
    argv += ["--input", str(files["dir"] / "x.npy"), "--output", str(files["dir"] / "o.npy")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and message in err and err.startswith("nli: error:"), err
    assert not (files["dir"] / "o.npy").exists()


def test_table_report_intervals_prints_one_line_per_region(files, capsys):
    t = S["recip_reduced"]
    assert main(["table", "report", str(files["recip_reduced"])]) == 0
    plain = capsys.readouterr().out
    assert main(["table", "report", str(files["recip_reduced"]), "--intervals"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("    ")]
    assert "by interval" not in plain and "by interval" in out
    from hw_sim.report_checks import table_report

    want = table_report(t)["by_interval"]
    assert len(rows) == len(want) and len(out.splitlines()) == len(plain.splitlines()) + 1 + len(
        want
    )
    for line, r in zip(rows, want):
        assert line.split()[0] == r["region"].split()[0]
        assert f"{r['inputs']} inputs, {r['not_correctly_rounded']} not CR" in line
