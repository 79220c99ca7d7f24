"""Throughput of the bf16 unit against the fp16 unit (hw_sim, numba), same run, one thread.

Issue 18's target: the bf16 unit within 20% of the fp16 unit's throughput. Cases, each on the
shipped default tables of its dtype (reciprocal/rsqrt in ``--reciprocal-mode``), float32 model
activations in and out (the entry points the engine calls):

* ``elementwise:<fn>``: ``run_elementwise_f32`` on 4M float32 values (N(0, 3^2)), for silu and
  gelu_tanh (the two model activations);
* ``softmax``: rows [9*256, 256] (SmolLM2's 9 heads on 256 tokens) with a causal -inf mask
  (``softmax_f32`` vs ``softmax_bf16_f32``);
* ``rmsnorm``: rows [256, 576] (``rmsnorm_f32`` vs ``rmsnorm_bf16_f32``).

The two dtypes run interleaved round by round, each keeping its best process CPU time (which a
preempting neighbour on a shared machine does not inflate). ``ratio`` is bf16 time / fp16 time:
below 1.2 meets the target.

Usage: NUMBA_NUM_THREADS=1 python benchmarks/unit_bf16_speed.py [--repeats 15]
Writes benchmarks/results/unit_bf16_speed.json.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from nli.formats import MODES

from results_io import results_path, stamp_tables, write_json

TARGET_RATIO = 1.2
SEED = 0


def _cases(mode: str):
    import hw_sim
    from nli.defaults import default_table
    from nli.grid import f32_to_bf16_bits

    rng = np.random.default_rng(SEED)
    x = (rng.standard_normal(1 << 22) * 3).astype(np.float32)
    s = (rng.standard_normal((9 * 256, 256)) * 4).astype(np.float32)
    mask = np.triu(np.ones((256, 256), dtype=bool), 1)
    s = s.reshape(9, 256, 256)
    s[:, mask] = -np.inf
    s = s.reshape(9 * 256, 256)
    h = (rng.standard_normal((256, 576)) * 2).astype(np.float32)
    w = (1 + 0.1 * rng.standard_normal(576)).astype(np.float32)
    w16 = w.astype(np.float16)
    wb = f32_to_bf16_bits(w)

    def tabs(dt):
        def t(fn, m="direct"):
            return default_table(fn, m, dtype=dt)

        return t

    t16, tb = tabs("fp16"), tabs("bf16")
    cases = {}
    for fn in ("silu", "gelu_tanh"):
        a, b = t16(fn), tb(fn)
        cases[f"elementwise:{fn}"] = (
            lambda a=a: hw_sim.run_elementwise_f32(a, x),
            lambda b=b: hw_sim.run_elementwise_f32(b, x),
        )
    e16, r16, q16 = t16("exp"), t16("reciprocal", mode), t16("rsqrt", mode)
    eb, rb, qb = tb("exp"), tb("reciprocal", mode), tb("rsqrt", mode)
    cases["softmax"] = (
        lambda: hw_sim.softmax_f32(s, e16, r16, mode),
        lambda: hw_sim.softmax_bf16_f32(s, eb, rb, mode),
    )
    cases["rmsnorm"] = (
        lambda: hw_sim.rmsnorm_f32(h, w16, 1e-5, q16, mode),
        lambda: hw_sim.rmsnorm_bf16_f32(h, wb, 1e-5, qb, mode),
    )
    return cases


def _cpu(f) -> tuple[float, float]:
    w0, c0 = time.perf_counter(), time.process_time()
    f()
    return time.process_time() - c0, time.perf_counter() - w0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--reciprocal-mode", default="reduced", choices=MODES)
    a = p.parse_args(argv)
    cases = _cases(a.reciprocal_mode)
    for f16, fb in cases.values():  # compile and fill the output-LUT caches
        f16(), fb()
    best = {k: [np.inf, np.inf, np.inf, np.inf] for k in cases}
    for _ in range(a.repeats):
        for k, (f16, fb) in cases.items():
            c, w = _cpu(f16)
            best[k][0], best[k][2] = min(best[k][0], c), min(best[k][2], w)
            c, w = _cpu(fb)
            best[k][1], best[k][3] = min(best[k][1], c), min(best[k][3], w)
    rows = {}
    for k, (c16, cb, w16, wb) in best.items():
        rows[k] = {
            "fp16_cpu_s": c16,
            "bf16_cpu_s": cb,
            "ratio": cb / c16,
            "ratio_wall": wb / w16,
            "meets_target": bool(cb / c16 <= TARGET_RATIO),
        }
        print(f"{k:22s} fp16 {c16 * 1e3:8.2f} ms  bf16 {cb * 1e3:8.2f} ms  ratio {cb / c16:.2f}")
    out = {
        "command": "NUMBA_NUM_THREADS=1 python benchmarks/unit_bf16_speed.py",
        "repeats": a.repeats,
        "reciprocal_mode": a.reciprocal_mode,
        "numba_threads": os.environ.get("NUMBA_NUM_THREADS"),
        "loadavg": list(os.getloadavg()),
        "target_ratio": TARGET_RATIO,
        "cases": rows,
    }
    print(f"wrote {write_json(results_path('unit_bf16_speed.json'), stamp_tables(out))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
