"""The generated Verilog (`nli hw rtl`) in a real simulator: Icarus Verilog driven by cocotb.

* Every shipped table: all 65,536 FP16 inputs, in a seeded random order with bubbles,
  back-to-back runs and resets in mid-stream, replayed by a Verilog harness in one
  simulation; every (cycle, y) the unit puts out must be the expected one: the inputs that
  no reset dropped, exactly LATENCY cycles later, with hw_sim's bits (np.array_equal).
* The $readmemh variant on one table, and the fp16 unit (silu, and the dx overflow paths
  to +inf and NaN), the same way.
* cocotb driving the unit's ports cycle by cycle (bubbles, back-to-back, reset mid-stream).
* The file is Verilog-2005 (``iverilog -g2005``), and the CLI's bad-input errors.

Needs ``iverilog`` (``apt-get install -y iverilog``; run.sh installs it as root) and cocotb
(the test extras); without them these tests skip with that command.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
import shutil
import subprocess

import numpy as np
import pytest

import hw_sim
from hw_sim.rtl import emit
from nli.cli import main
from nli.defaults import TABLE_DIR, default_table_path
from nli.table import load_table, save_table, table_from_cutpoints

IVERILOG_HINT = "apt-get install -y iverilog"
SHIPPED = sorted(
    p.stem for p in TABLE_DIR.glob("*.json") if not p.stem.endswith("_bf16")
)  # RTL: fp16
HERE = Path(__file__).resolve().parent
SEED = 17
N_CODES = 1 << 16

try:
    from cocotb_tools.runner import get_runner
except ImportError:  # pragma: no cover - depends on the environment
    get_runner = None

_no_iverilog = pytest.mark.skipif(
    shutil.which("iverilog") is None,
    reason=f"Icarus Verilog not installed; install it with: {IVERILOG_HINT}",
)
_no_cocotb = pytest.mark.skipif(
    get_runner is None, reason="cocotb not installed; pip install cocotb"
)


def needs_sim(f):
    """Skip a test that runs Icarus Verilog under cocotb when either is missing."""
    return _no_iverilog(_no_cocotb(f))


# ----------------------------------------------------------------------------- stimulus
@functools.lru_cache(maxsize=None)
def stimulus(seed: int) -> np.ndarray:
    """int64[cycles, 3]: (rst, in_valid, x) per cycle. Starts in reset; then every FP16 code
    once in a random order, in back-to-back runs separated by bubbles of 1..3 cycles, with
    a few resets of 1..2 cycles in mid-stream (the codes in flight then are extra ones, so
    all 65,536 still come out)."""
    rng = np.random.default_rng(seed)
    codes = rng.permutation(N_CODES)
    rows = [(1, 0, 0)] * 3
    resets = set(rng.choice(np.arange(1000, N_CODES - 1000), size=4, replace=False).tolist())
    for j, c in enumerate(codes):
        if j in resets:  # inputs in flight, then a reset drops them
            rows += [(0, 1, int(v)) for v in rng.integers(0, N_CODES, emit.LATENCY)]
            rows += [(1, int(rng.integers(0, 2)), int(rng.integers(0, N_CODES)))] * int(
                rng.integers(1, 3)
            )
        if rng.random() < 0.05:
            rows += [(0, 0, int(rng.integers(0, N_CODES)))] * int(rng.integers(1, 4))
        rows.append((0, 1, int(c)))
    return np.array(rows, dtype=np.int64)


def expected(stim: np.ndarray, latency: int, offset: int) -> list[tuple[int, int]]:
    """[(output cycle, x)]: an input on cycle i comes out on cycle i + latency - 1 + offset
    unless a reset is applied on one of the cycles i .. i + latency - 1 (numerics-free:
    the valid pipeline's behaviour)."""
    cum = np.concatenate([[0], np.cumsum(stim[:, 0])])
    n = len(stim)
    i = np.arange(n)
    resets = cum[np.minimum(i + latency, n)] - cum[i]  # resets on cycles i .. i + latency - 1
    keep = np.nonzero((stim[:, 1] == 1) & (resets == 0))[0]
    return list(zip((keep + latency - 1 + offset).tolist(), stim[keep, 2].tolist()))


_HARNESS = """`timescale 1ns / 1ps
module nli_sweep;
  reg clk = 1'b0;
  always #5 clk = ~clk;
  reg [17:0] stim [0:{n} - 1];
  reg [15:0] res_y [0:{m} - 1];
  reg [31:0] res_c [0:{m} - 1];
  initial $readmemh("{d}/stim.memh", stim);
  reg rst = 1'b1, in_valid = 1'b0;
  reg [15:0] x = 16'd0;
  wire out_valid;
  wire [15:0] y;
  reg [31:0] cyc = 0, n_out = 0;
  reg done = 1'b0;
  {module} dut (.clk(clk), .rst(rst), .in_valid(in_valid), .x(x),
                .out_valid(out_valid), .y(y));
  always @(posedge clk) begin
    if (cyc < {n}) begin
      rst <= stim[cyc][17]; in_valid <= stim[cyc][16]; x <= stim[cyc][15:0];
    end else begin
      rst <= 1'b0; in_valid <= 1'b0;
    end
    if (out_valid === 1'b1 && n_out < {m}) begin
      res_y[n_out] <= y; res_c[n_out] <= cyc; n_out <= n_out + 1;
    end
    cyc <= cyc + 1;
    if (cyc == {n} + {latency} + 8 && !done) begin
      $writememh("{d}/res_y.memh", res_y, 0, {m} - 1);
      $writememh("{d}/res_c.memh", res_c, 0, {m} - 1);
      done <= 1'b1;
    end
  end
endmodule
"""


def _read_memh(path: Path) -> np.ndarray:
    words = [
        w for ln in path.read_text().splitlines() if not ln.startswith("//") for w in ln.split()
    ]
    return np.array([int(w, 16) if "x" not in w.lower() else -1 for w in words], dtype=np.int64)


def _sweep(table_path: Path, tmp: Path, variant: str) -> None:
    """Generate the RTL of a table, replay stimulus() through it in Icarus, compare."""
    rtl = tmp / "rtl"
    assert main(["hw", "rtl", str(table_path), "-o", str(rtl)]) == 0
    stim = stimulus(SEED)
    want = expected(stim, emit.LATENCY, offset=2)
    xs = np.array([x for _, x in want], dtype=np.uint16)
    ref = hw_sim.run_elementwise(load_table(table_path), xs).view(np.uint16)
    assert np.unique(xs).size == N_CODES  # every code is among the results checked
    words = (stim[:, 0] << 17) | (stim[:, 1] << 16) | stim[:, 2]
    (tmp / "stim.memh").write_text("\n".join(f"{w:05x}" for w in words) + "\n")
    module = emit.MODULE if variant == "baked" else emit.MEM_MODULE
    src = rtl / ("nli_unit.v" if variant == "baked" else "nli_unit_mem.v")
    harness = _HARNESS.format(n=len(stim), m=len(want), d=tmp, module=module, latency=emit.LATENCY)
    if variant == "mem":  # the memory images by absolute path
        params = ", ".join(
            f'.{k}_FILE("{rtl}/nli_unit_{k.lower()}.memh")'
            for k in ("CUT", "MUL", "BINS", "BASE", "LUT", "EDGE")
        )
        harness = harness.replace(f"{module} dut", f"{module} #({params}) dut")
    (tmp / "harness.v").write_text(harness)
    runner = get_runner("icarus")
    runner.build(
        sources=[src, tmp / "harness.v"],
        hdl_toplevel="nli_sweep",
        build_dir=tmp / "build",
        always=True,
    )
    runner.test(
        test_module="rtl_cocotb",
        testcase="sweep",
        hdl_toplevel="nli_sweep",
        build_dir=tmp / "build",
        test_dir=tmp,
        extra_env={"NLI_RTL_CYCLES": str(len(stim) + 64), "NLI_RTL_EXPECT_OUT": str(len(want))},
    )
    got_y = _read_memh(tmp / "res_y.memh")
    got_c = _read_memh(tmp / "res_c.memh")
    assert got_c.size == len(want)
    assert np.array_equal(got_c, np.array([c for c, _ in want])), "outputs on the wrong cycles"
    bad = np.nonzero(got_y != ref.astype(np.int64))[0]
    assert bad.size == 0, (
        f"{bad.size} mismatches, first x = {xs[bad[0]]:#06x}: "
        f"rtl {got_y[bad[0]]:#06x}, hw_sim {ref[bad[0]]:#06x}"
    )


@pytest.mark.slow
@pytest.mark.parametrize("name", SHIPPED)
@needs_sim
def test_every_input_matches_hw_sim(name, tmp_path):
    _sweep(TABLE_DIR / f"{name}.json", tmp_path, "baked")


def _wide_fp16(tmp: Path, dy_zero: bool) -> Path:
    """An fp16 table with a macro interval wider than 65520, so dx overflows to +inf for
    x in [16, 64): y = +inf (dy > 0) or, with equal LUT ends (dy = 0), NaN (numerics §3)."""
    cut = np.array([-65504, 64, 65504], dtype=np.float16).view(np.uint16)
    t = table_from_cutpoints("tanh", cut, [1, 3], "fp16")
    if dy_zero:
        lut = np.array(t.lut)
        lut[1] = lut[0]
        t = t.with_lut(lut)
    out = hw_sim.run_elementwise(t, np.arange(16, 64, dtype=np.float16)).view(np.uint16)
    assert set(out.tolist()) == ({0x7E00} if dy_zero else {0x7C00})  # the path is exercised
    save_table(t, tmp / "wide.json")
    return tmp / "wide.json"


@pytest.mark.slow
@pytest.mark.parametrize("case", ["silu", "inf", "nan"])
@needs_sim
def test_fp16_precision_unit_matches_hw_sim(case, tmp_path):
    if case in ("inf", "nan"):
        path = _wide_fp16(tmp_path, case == "nan")
    else:
        path = tmp_path / "t16.json"
        save_table(load_table(TABLE_DIR / f"{case}.json").with_precision("fp16"), path)
    _sweep(path, tmp_path, "baked")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["reciprocal_reduced"])
@needs_sim
def test_readmemh_variant_matches_hw_sim(name, tmp_path):
    _sweep(TABLE_DIR / f"{name}.json", tmp_path, "mem")


@needs_sim
def test_cocotb_drives_the_ports_cycle_by_cycle(tmp_path):
    path = Path(default_table_path("gelu"))
    assert main(["hw", "rtl", str(path), "-o", str(tmp_path / "rtl")]) == 0
    rng = np.random.default_rng(SEED + 1)
    n = 300
    stim = np.stack(
        [
            np.zeros(n, np.int64),
            (rng.random(n) < 0.7).astype(np.int64),
            rng.integers(0, N_CODES, n),
        ],
        axis=1,
    )
    stim[:2, 0] = 1  # reset at the start
    stim[40:60, 1] = 1  # a back-to-back run
    stim[100, 0] = 1  # a one-cycle reset in mid-stream, with inputs in flight
    stim[200:203, 0] = 1
    want = expected(stim, emit.LATENCY, offset=0)
    ys = hw_sim.run_elementwise(load_table(path), np.array([x for _, x in want], np.uint16))
    per_cycle = [None] * (n + emit.LATENCY)
    for (c, _), y in zip(want, ys.view(np.uint16).tolist()):
        per_cycle[c] = y
    plan = {"latency": emit.LATENCY, "steps": stim.tolist(), "expect": per_cycle}
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    runner = get_runner("icarus")
    runner.build(
        sources=[tmp_path / "rtl" / "nli_unit.v"],
        hdl_toplevel="nli_unit",
        build_dir=tmp_path / "build",
        always=True,
    )
    runner.test(
        test_module="rtl_cocotb",
        testcase="handshake",
        hdl_toplevel="nli_unit",
        build_dir=tmp_path / "build",
        test_dir=tmp_path,
        extra_env={"NLI_RTL_EXPECT": str(tmp_path / "plan.json")},
    )
    assert 150 < len(want) < n  # bubbles and resets took some inputs away, most came out


# ----------------------------------------------------------------------------- the file itself
@_no_iverilog
def test_the_file_is_verilog_2005_and_self_contained(tmp_path):
    assert main(["hw", "rtl", str(default_table_path("exp")), "-o", str(tmp_path)]) == 0
    text = (tmp_path / "nli_unit.v").read_text()
    assert "`include" not in text
    assert f"localparam LATENCY = {emit.LATENCY};" in text
    ports = text[text.index("module nli_unit (") :].split(");")[0]
    for p in (
        "input  wire        clk",
        "input  wire        rst",
        "input  wire        in_valid",
        "input  wire [15:0] x",
        "output wire        out_valid",
        "output wire [15:0] y",
    ):
        assert p in ports
    for f in ("nli_unit.v", "nli_unit_mem.v"):
        r = subprocess.run(
            ["iverilog", "-g2005", "-Wall", "-o", os.devnull, str(tmp_path / f)],
            capture_output=True,
            text=True,
        )
        assert r.returncode == 0, r.stderr
    mem = (tmp_path / "nli_unit_lut.memh").read_text().splitlines()
    assert len(mem) == 1 + 259 and mem[0].startswith("// exp")


def test_rtl_command_prints_the_latency(tmp_path, capsys):
    assert main(["hw", "rtl", str(default_table_path("tanh")), "-o", str(tmp_path / "o")]) == 0
    assert f"LATENCY = {emit.LATENCY} cycles" in capsys.readouterr().out


def test_bad_input_is_one_line_exit_2_and_nothing_written(tmp_path, capsys):
    # an fp16 unit cannot hold reciprocal's scales: RNE16(mul[0]) overflows (numerics §2)
    d = json.loads(Path(default_table_path("reciprocal")).read_text())
    (tmp_path / "fp16.json").write_text(json.dumps({**d, "precision": "fp16"}))
    (tmp_path / "file").write_text("x")
    cases = [
        ([str(tmp_path / "fp16.json"), "-o", str(tmp_path / "a")], "RNE16(mul[0]) overflows"),
        ([str(tmp_path / "missing.json"), "-o", str(tmp_path / "b")], "missing.json"),
        ([str(default_table_path("silu")), "-o", str(tmp_path / "file")], "not a directory"),
    ]
    for args, what in cases:
        assert main(["hw", "rtl", *args]) == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and what in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "fp16.json"]
    assert main(["hw", "synth", str(tmp_path / "nowhere")]) == 2
    assert "nli hw rtl" in capsys.readouterr().err
