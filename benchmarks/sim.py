"""Simulator throughput against torch FP32 on the same machine, in the same run.

Measures elements/s of the bit-accurate simulator (hw_sim) for elementwise
SiLU, Softmax over rows of 1024 and RMSNorm over rows of 576, and of
torch.nn.functional.silu, torch.softmax and a torch FP32 RMSNorm on the same
shapes. Sim and torch runs alternate and each side keeps its best time, so a
busy machine slows both alike. Targets (issue 3): elementwise >= 0.5x torch's
SiLU, composite ops >= 0.25x torch's.

Usage: python benchmarks/sim.py [--repeats N] [--out benchmarks/results/sim.json]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import numba
import numpy as np
import torch

import hw_sim
import nli
from nli.defaults import default_table_path

from results_io import results_path, stamp_tables, write_json

SEED = 0
TARGETS = {
    "silu": 0.5,
    "softmax_direct": 0.25,
    "softmax_reduced": 0.25,
    "rmsnorm_direct": 0.25,
    "rmsnorm_reduced": 0.25,
}


def _tables():
    """The shipped default tables (nli/tables) this benchmark runs, and where each came from."""
    keys = [
        ("silu", "direct"),
        ("exp", "direct"),
        ("reciprocal", "direct"),
        ("reciprocal", "reduced"),
        ("rsqrt", "direct"),
        ("rsqrt", "reduced"),
    ]
    return {k: nli.default_table(*k) for k in keys}, {
        "-".join(k): f"shipped {default_table_path(*k).name}" for k in keys
    }


def _best(fn_sim, fn_torch, repeats, clock=time.perf_counter):
    """Alternate the two callables; return the best time of each (seconds) on ``clock``."""
    fn_sim(), fn_torch()  # warm-up: JIT, output LUTs, allocator
    ts, tt = [], []
    for _ in range(repeats):
        t0 = clock()
        fn_sim()
        ts.append(clock() - t0)
        t0 = clock()
        fn_torch()
        tt.append(clock() - t0)
    return min(ts), min(tt)


def run(repeats: int) -> dict:
    rng = np.random.default_rng(SEED)
    tables, source = _tables()
    results = {}

    x = (rng.standard_normal(1 << 22) * 4).astype(np.float16)  # (4M,)
    xt = torch.from_numpy(x.astype(np.float32))
    silu = tables[("silu", "direct")]
    cases = [
        (
            "silu",
            x.size,
            lambda: hw_sim.run_elementwise(silu, x),
            lambda: torch.nn.functional.silu(xt),
        )
    ]
    cases.append(
        (
            "silu_direct_kernel",
            x.size,
            lambda: hw_sim.run_elementwise(silu, x, method="direct"),
            lambda: torch.nn.functional.silu(xt),
        )
    )

    xs = (rng.standard_normal((4096, 1024)) * 4).astype(np.float16)  # rows of 1024
    xs[:, 700:] = -np.inf  # a causal-style mask on part of each row (sim does the same work)
    xst = torch.from_numpy(xs.astype(np.float32))
    for mode in hw_sim.MODES:
        e, r = tables[("exp", "direct")], tables[("reciprocal", mode)]
        cases.append(
            (
                f"softmax_{mode}",
                xs.size,
                lambda e=e, r=r, m=mode: hw_sim.softmax(xs, e, r, m),
                lambda: torch.softmax(xst, -1),
            )
        )

    xr = (rng.standard_normal((8192, 576)) * 2).astype(np.float16)  # rows of 576
    w = (1 + 0.1 * rng.standard_normal(576)).astype(np.float16)
    xrt, wt = torch.from_numpy(xr.astype(np.float32)), torch.from_numpy(w.astype(np.float32))

    def torch_rmsnorm():
        return xrt * torch.rsqrt(xrt.pow(2).mean(-1, keepdim=True) + 1e-5) * wt

    for mode in hw_sim.MODES:
        q = tables[("rsqrt", mode)]
        cases.append(
            (
                f"rmsnorm_{mode}",
                xr.size,
                lambda q=q, m=mode: hw_sim.rmsnorm(xr, w, 1e-5, q, m),
                torch_rmsnorm,
            )
        )

    for name, n, fs, ft in cases:
        ts, tt = _best(fs, ft, repeats)
        ratio = (n / ts) / (n / tt)
        results[name] = {
            "elements": n,
            "sim_elements_per_s": n / ts,
            "torch_fp32_elements_per_s": n / tt,
            "ratio_sim_over_torch": ratio,
            "target_ratio": TARGETS.get(name),
            "meets_target": None if name not in TARGETS else bool(ratio >= TARGETS[name]),
        }
        print(
            f"{name:20s} sim {n / ts / 1e6:9.1f} M/s   torch {n / tt / 1e6:9.1f} M/s   ratio "
            f"{ratio:5.2f}" + (f"  (target {TARGETS[name]})" if name in TARGETS else "")
        )

    # the same on one thread each, timed in process CPU seconds: robust to other load on the box
    threads = numba.get_num_threads(), torch.get_num_threads()
    numba.set_num_threads(1)
    torch.set_num_threads(1)
    single = {}
    try:
        for name, n, fs, ft in cases:
            ts, tt = _best(fs, ft, max(3, repeats // 2), clock=time.process_time)
            single[name] = {
                "sim_ns_per_element": ts / n * 1e9,
                "torch_ns_per_element": tt / n * 1e9,
                "ratio_sim_over_torch": tt / ts,
            }
            print(
                f"{name:20s} 1 thread, CPU time: sim {ts / n * 1e9:6.2f} ns/elem   "
                f"torch {tt / n * 1e9:6.2f} ns/elem   ratio {tt / ts:5.2f}"
            )
    finally:
        numba.set_num_threads(threads[0])
        torch.set_num_threads(threads[1])
    return {
        "results": results,
        "single_thread_cpu_time": single,
        "tables": source,
        "repeats": repeats,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "load_average_at_end": os.getloadavg(),
            "numba_threads": numba.get_num_threads(),
            "numba_threading_layer": numba.threading_layer(),
            "torch_threads": torch.get_num_threads(),
            "python": sys.version.split()[0],
            "torch": torch.__version__,
            "numba": numba.__version__,
        },
        "note": (
            "results: best wall time of `repeats` alternating runs, default threads; "
            "single_thread_cpu_time: one thread each, best process CPU time; "
            "ratio = sim throughput / torch FP32 throughput"
        ),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--out", default=str(results_path("sim.json")))
    args = ap.parse_args(argv)
    report = run(args.repeats)
    write_json(args.out, stamp_tables(report))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
