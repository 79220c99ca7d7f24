"""Synthesis of the generated unit with Yosys (the ``pyosys`` wheel, which bundles yosys and
abc): generic cell counts, a CMOS transistor estimate (``abc -g cmos2; stat -tech cmos``)
and the logic depth of the longest path into each pipeline stage's registers.

Yosys runs in a child process (its log would otherwise flood the caller's stdout); the
numbers come back as ``stat -json`` files and a JSON netlist, which :func:`stage_depths`
walks. Depth counts the cmos2 gates (NAND, NOR, NOT) on a path that starts at an input
port or a flip-flop output and ends at a flip-flop input or an output port.
"""

from __future__ import annotations

from collections import defaultdict
import json
from pathlib import Path
import re
import subprocess
import sys
import tempfile

INSTALL_HINT = "pip install pyosys"
_STAGE = re.compile(r"^\\?r(\d+)_")
_VALID = re.compile(r"^\\?v$")
SYNTH_TIMEOUT_S = 1800

_SCRIPT = r"""
import sys
from pyosys import libyosys as ys
src, top, out = sys.argv[1], sys.argv[2], sys.argv[3]
d = ys.Design()
for cmd in (
    f"read_verilog {src}",
    f"hierarchy -check -top {top}",
    f"synth -top {top} -flatten",
    f"tee -q -o {out}/check.txt check",
    f"tee -q -o {out}/stat_generic.json stat -json",
    "abc -g cmos2",
    "opt_clean",
    f"tee -q -o {out}/stat_cmos.json stat -json -tech cmos",
    f"write_json {out}/netlist.json",
):
    ys.run_pass(cmd, d)
"""


class SynthError(RuntimeError):
    """Yosys is missing or failed: one line, with the install command or the log's path."""


def have_pyosys() -> bool:
    try:
        import importlib.util

        return importlib.util.find_spec("pyosys") is not None
    except (ImportError, ValueError):
        return False


def run_yosys(verilog: Path, top: str, workdir: Path) -> Path:
    """Synthesize ``verilog`` (module ``top``) in a child process; returns ``workdir`` holding
    check.txt, stat_generic.json, stat_cmos.json, netlist.json and yosys.log."""
    if not have_pyosys():
        raise SynthError(f"Yosys (pyosys) is not installed; install it with: {INSTALL_HINT}")
    log = workdir / "yosys.log"
    with open(log, "w") as fh:
        try:
            rc = subprocess.run(
                [sys.executable, "-c", _SCRIPT, str(verilog), top, str(workdir)],
                stdout=fh,
                stderr=subprocess.STDOUT,
                timeout=SYNTH_TIMEOUT_S,
                cwd=verilog.parent,
            ).returncode
        except subprocess.TimeoutExpired:
            raise SynthError(f"yosys: timed out after {SYNTH_TIMEOUT_S} s") from None
    if rc != 0:
        tail = log.read_text(errors="replace").strip().splitlines()[-1:] or ["?"]
        raise SynthError(f"yosys failed (exit {rc}): {tail[0][:200]}")
    return workdir


def _module_stat(path: Path, top: str) -> dict:
    data = json.loads(path.read_text())
    mods = data.get("modules", {})
    mod = mods.get(f"\\{top}") or mods.get(top) or next(iter(mods.values()))
    return mod


def _cells(stat: dict) -> dict[str, int]:
    """{cell type: count} without yosys's bookkeeping cells ($scopeinfo)."""
    types = stat.get("num_cells_by_type") or stat.get("cell_types") or {}
    return {k.lstrip("$"): int(v) for k, v in sorted(types.items()) if k != "$scopeinfo"}


def stage_depths(netlist: dict, top: str) -> dict[str, int]:
    """{stage: gates on the longest path ending at that stage's registers}; stages are named
    by the register prefix ``r<k>_`` ("1", "2", ...), ``valid`` (the valid shift register)
    and ``output`` (paths into output ports)."""
    mod = netlist["modules"][top]
    names: dict[int, str] = {}
    for name, net in mod["netnames"].items():
        for b in net["bits"]:
            if isinstance(b, int) and (b not in names or names[b].startswith("$")):
                names[b] = name
    driver: dict[int, tuple[str, list]] = {}
    ends: dict[str, list] = defaultdict(list)
    for cell in mod["cells"].values():
        typ, conns = cell["type"], cell["connections"]
        if "DFF" in typ:
            q = conns["Q"][0]
            qname = names.get(q, "") if isinstance(q, int) else ""
            m = _STAGE.match(qname)
            stage = m.group(1) if m else ("valid" if _VALID.match(qname) else "other")
            for pin, bits in conns.items():
                if pin not in ("Q", "C"):
                    ends[stage] += bits
        else:
            outs = [p for p, d in cell["port_directions"].items() if d == "output"]
            ins = [b for p, d in cell["port_directions"].items() if d == "input" for b in conns[p]]
            for p in outs:
                for b in conns[p]:
                    driver[b] = (typ, ins)
    for port in mod["ports"].values():
        if port["direction"] == "output":
            ends["output"] += port["bits"]
    depth: dict[int, int] = {}

    def d(bit) -> int:  # iterative DFS: the netlists are deep enough to overflow recursion
        if not isinstance(bit, int) or bit not in driver:
            return 0
        stack = [bit]
        while stack:
            b = stack[-1]
            if b in depth:
                stack.pop()
                continue
            pending = [
                i for i in driver[b][1] if isinstance(i, int) and i in driver and i not in depth
            ]
            if pending:
                stack.extend(pending)
                continue
            depth[b] = 1 + max(
                (depth.get(i, 0) for i in driver[b][1] if isinstance(i, int)), default=0
            )
            stack.pop()
        return depth[bit]

    return {stage: max((d(b) for b in bits), default=0) for stage, bits in ends.items()}


def _stage_key(s: str):
    return (0, int(s)) if s.isdigit() else (1, s)


def synthesize(verilog: Path, top: str) -> dict:
    """Synthesize ``verilog`` and return {generic_cells(_by_type), cmos_cells(_by_type),
    flip_flops, logic_transistors, check_warnings, depth_per_stage, max_depth} for ``top``."""
    verilog = Path(verilog).resolve()
    with tempfile.TemporaryDirectory(prefix="nli-synth-") as tmp:
        work = run_yosys(verilog, top, Path(tmp))
        generic = _module_stat(work / "stat_generic.json", top)
        cmos_creator = json.loads((work / "stat_cmos.json").read_text()).get("creator", "?")
        cmos = _module_stat(work / "stat_cmos.json", top)
        check = (work / "check.txt").read_text(errors="replace")
        netlist = json.loads((work / "netlist.json").read_text())
    warnings = [ln.strip() for ln in check.splitlines() if "warning" in ln.lower()]
    depths = stage_depths(netlist, top)
    ordered = {k: depths[k] for k in sorted(depths, key=_stage_key)}
    gen_types = _cells(generic)
    cmos_types = _cells(cmos)
    ff = sum(n for t, n in cmos_types.items() if "DFF" in t)
    return {
        "top": top,
        "yosys": str(cmos_creator).split(" (")[0],
        "generic_cells": sum(gen_types.values()),
        "generic_cells_by_type": gen_types,
        "cmos_cells": sum(cmos_types.values()),
        "cmos_cells_by_type": cmos_types,
        "flip_flops": int(ff),
        # yosys counts the NAND/NOR/NOT gates' transistors; flip-flops are not counted ("+")
        "logic_transistors": int(str(cmos.get("estimated_num_transistors", "0")).rstrip("+")),
        "check_warnings": warnings,
        "depth_per_stage": ordered,
        "max_depth": max(ordered.values(), default=0),
    }
