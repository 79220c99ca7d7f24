"""cocotb tests run inside Icarus Verilog by tests/test_rtl.py (not collected by pytest).

* ``sweep``: the harness ``nli_sweep`` (written by test_rtl.py) clocks the unit itself and
  replays a stimulus file of (rst, in_valid, x) per cycle; this test waits for its ``done``
  and checks that it finished before the cycle limit. test_rtl.py then compares every
  recorded (cycle, y) with hw_sim.
* ``handshake``: drives ``nli_unit`` directly from Python, cycle by cycle: bubbles,
  back-to-back inputs and a reset in mid-stream, checking out_valid and y on every cycle
  against the expectations in the JSON file named by ``NLI_RTL_EXPECT``.
"""

from __future__ import annotations

import json
import os

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge, Timer


@cocotb.test()
async def sweep(dut):
    limit = int(os.environ["NLI_RTL_CYCLES"]) + 64
    for _ in range(limit // 4096 + 1):
        if int(dut.done.value):
            break
        await Timer(4096 * 10, unit="ns")  # the harness clock: 10 ns
    assert int(dut.done.value) == 1, "the harness did not finish within the cycle limit"
    assert int(dut.n_out.value) == int(os.environ["NLI_RTL_EXPECT_OUT"]), (
        f"{int(dut.n_out.value)} results came out, expected {os.environ['NLI_RTL_EXPECT_OUT']}"
    )


@cocotb.test()
async def handshake(dut):
    with open(os.environ["NLI_RTL_EXPECT"]) as fh:
        plan = json.load(fh)
    latency = plan["latency"]
    assert int(dut.LATENCY.value) == latency
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    steps = plan["steps"]  # per cycle: [rst, in_valid, x]
    want = plan["expect"]  # per cycle: null (out_valid low) or the expected y
    seen = 0
    for k in range(len(steps) + latency + 2):
        rst, valid, x = steps[k] if k < len(steps) else (0, 0, 0)
        dut.rst.value = rst
        dut.in_valid.value = valid
        dut.x.value = x
        await RisingEdge(dut.clk)
        await ReadOnly()
        exp = want[k] if k < len(want) else None
        got_valid = int(dut.out_valid.value)
        if exp is None:
            assert got_valid == 0, f"cycle {k}: out_valid high, expected low"
        else:
            assert got_valid == 1, f"cycle {k}: out_valid low, expected y = {exp:#06x}"
            got = int(dut.y.value)
            assert got == exp, f"cycle {k}: y = {got:#06x}, expected {exp:#06x}"
            seen += 1
        await Timer(1, unit="ns")  # leave the read-only phase before driving again
    assert seen == sum(e is not None for e in want)
