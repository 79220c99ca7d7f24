"""hw_sim.rtl: the NLI unit as synthesizable Verilog, generated from a table (emit), and its
synthesis with Yosys (synth). The Verilog is verified against hw_sim bit for bit in
tests/test_rtl.py (Icarus Verilog driven by cocotb)."""
