"""`nli hw synth`: the generated Verilog through Yosys (pyosys): no latches, no undriven nets,
a gate-level netlist whose numbers and per-stage depths are reported; and the depth walk
itself on a hand-made netlist."""

from __future__ import annotations

import json

import pytest

from hw_sim.rtl import emit
from hw_sim.rtl.synth import have_pyosys, stage_depths
from nli.cli import main
from nli.defaults import TABLE_DIR


def test_stage_depths_counts_gates_between_registers():
    # in -> NOT -> NAND(., in) -> r2_a.D ; r2_a.Q -> NOT -> out
    net = {
        "modules": {
            "top": {
                "ports": {
                    "x": {"direction": "input", "bits": [2]},
                    "y": {"direction": "output", "bits": [6]},
                },
                "netnames": {"x": {"bits": [2]}, "r2_a": {"bits": [5]}, "y": {"bits": [6]}},
                "cells": {
                    "g1": {
                        "type": "$_NOT_",
                        "port_directions": {"A": "input", "Y": "output"},
                        "connections": {"A": [2], "Y": [3]},
                    },
                    "g2": {
                        "type": "$_NAND_",
                        "port_directions": {"A": "input", "B": "input", "Y": "output"},
                        "connections": {"A": [3], "B": [2], "Y": [4]},
                    },
                    "ff": {
                        "type": "$_DFF_P_",
                        "port_directions": {"C": "input", "D": "input", "Q": "output"},
                        "connections": {"C": [9], "D": [4], "Q": [5]},
                    },
                    "g3": {
                        "type": "$_NOT_",
                        "port_directions": {"A": "input", "Y": "output"},
                        "connections": {"A": [5], "Y": [6]},
                    },
                },
            }
        }
    }
    assert stage_depths(net, "top") == {"2": 2, "output": 1}


@pytest.mark.slow
@pytest.mark.skipif(not have_pyosys(), reason="Yosys not installed; pip install pyosys")
def test_synth_reports_a_clean_netlist(tmp_path, capsys):
    assert main(["hw", "rtl", str(TABLE_DIR / "silu.json"), "-o", str(tmp_path / "u")]) == 0
    out = tmp_path / "synth.json"
    assert main(["hw", "synth", str(tmp_path / "u"), "--json", str(out)]) == 0
    (r,) = json.loads(out.read_text())["designs"]
    assert r["check_warnings"] == []  # yosys `check`: no undriven nets, no logic loops
    types = set(r["generic_cells_by_type"]) | set(r["cmos_cells_by_type"])
    assert not any("DLATCH" in t or "LATCH" in t for t in types)
    assert set(r["cmos_cells_by_type"]) <= {"_NAND_", "_NOR_", "_NOT_"} | {
        t for t in types if "DFF" in t
    }
    assert [k for k in r["depth_per_stage"] if k.isdigit()] == [
        str(s) for s in range(1, emit.LATENCY + 1)
    ]
    assert all(r["depth_per_stage"][str(s)] > 0 for s in range(1, emit.LATENCY + 1))
    assert r["depth_per_stage"]["output"] == 0  # y comes straight from a register
    assert r["logic_transistors"] > 0 and r["flip_flops"] > 16
    assert "depth per stage" in capsys.readouterr().out
