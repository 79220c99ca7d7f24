"""Throughput of the torch backend of the NLI unit against the numba one (hw_sim), same run, CPU.

Cases (the shipped default tables; reciprocal/rsqrt in ``--reciprocal-mode``):

* ``elementwise``: the silu table on 1M float32 values (``run_elementwise_f32``);
* ``softmax``: rows [9*256, 256] (SmolLM2's 9 heads on 256 tokens) with a causal -inf mask;
* ``rmsnorm``: rows [256, 576] (SmolLM2's width on 256 tokens);
* ``smollm2_forward``: one SmolLM2 forward on 256 tokens with all three ops substituted
  (engine.substitute, ``backend="numba"`` vs ``"torch"``), when its GGUF is installed.

Both backends run on one thread (torch, numba and OMP), interleaved round by round, each
keeping its best time. ``ratio`` is torch throughput over numba throughput on one core: numba
CPU time / torch CPU time (process CPU time, which a preempting neighbour on a shared machine
does not inflate; the wall-time ratio is recorded too); the target is >= 0.5. Every case also
records whether the two outputs are bit-identical (uint32 views / torch.equal).

Usage: OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 python benchmarks/torch_backend.py
       [--repeats 25] [--model-repeats 3] [--reciprocal-mode reduced] [--skip-model]
       [--out benchmarks/results/torch_backend.json]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"  # before numba / torch start their thread pools

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numba  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

import engine  # noqa: E402
from engine.substitution import substitute  # noqa: E402
from engine.torch_ops import rmsnorm_f32, softmax_f32  # noqa: E402
from engine.torch_unit import run_elementwise_f32  # noqa: E402
import hw_sim  # noqa: E402
import nli  # noqa: E402
from nli.formats import BACKENDS, MODES  # noqa: E402

from results_io import results_path, write_results  # noqa: E402

LOADAVG = os.getloadavg()  # the machine's load when the run began (it may be shared)
SEED = 0
THREADS = 1
TARGET_RATIO = 0.5  # the target: torch throughput >= 0.5x numba's
COMMAND = "OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 python benchmarks/torch_backend.py"


def _interleaved(runners: dict, repeats: int) -> dict:
    """{runner: (best CPU seconds, best wall seconds)} over ``repeats`` rounds, one untimed
    warm-up each. CPU time is the process's (``time.process_time``): on a shared machine a
    preempted call loses wall time but no CPU time, and both backends use one thread."""
    for f in runners.values():
        f()
    cpu = {k: [] for k in runners}
    wall = {k: [] for k in runners}
    for _ in range(repeats):
        for k, f in runners.items():
            c0, t0 = time.process_time(), time.perf_counter()
            f()
            cpu[k].append(time.process_time() - c0)
            wall[k].append(time.perf_counter() - t0)
    return {k: (min(cpu[k]), min(wall[k])) for k in runners}


def _result(name: str, size: str, t: dict, same: bool) -> dict:
    (nc, nw), (tc, tw) = t["numba"], t["torch"]
    res = {
        "case": name,
        "size": size,
        "numba_cpu_s": nc,
        "torch_cpu_s": tc,
        "ratio": nc / tc,
        "numba_wall_s": nw,
        "torch_wall_s": tw,
        "ratio_wall": nw / tw,
        "bit_identical": same,
    }
    print(
        f"{name} {size}: CPU numba {nc * 1e3:.2f} ms, torch {tc * 1e3:.2f} ms, torch/numba "
        f"throughput {res['ratio']:.2f} (wall {res['ratio_wall']:.2f}), bit-identical {same}"
    )
    return res


def _case(name: str, size: str, numba_fn, torch_fn, repeats: int) -> dict:
    a, b = numba_fn(), torch_fn()
    a = a.numpy() if isinstance(a, torch.Tensor) else a
    same = bool(np.array_equal(np.ascontiguousarray(a).view(np.uint32), b.numpy().view(np.uint32)))
    return _result(name, size, _interleaved({"numba": numba_fn, "torch": torch_fn}, repeats), same)


def micro(mode: str, repeats: int) -> list[dict]:
    rng = np.random.default_rng(SEED)
    act = nli.default_table("silu", "direct")
    exp = nli.default_table("exp", "direct")
    recip = nli.default_table("reciprocal", mode)
    rsq = nli.default_table("rsqrt", mode)
    x = (rng.standard_normal(1 << 20) * 4).astype(np.float32)
    xt = torch.from_numpy(x)
    s = (rng.standard_normal((9, 256, 256)) * 3).astype(np.float32)
    s[:, np.triu_indices(256, 1)[0], np.triu_indices(256, 1)[1]] = -np.inf  # causal mask
    s = s.reshape(9 * 256, 256)
    st = torch.from_numpy(s)
    r = rng.standard_normal((256, 576)).astype(np.float32)
    rt = torch.from_numpy(r)
    w = rng.uniform(0.5, 1.5, 576).astype(np.float16)
    wt = torch.from_numpy(w)
    return [
        _case(
            "elementwise",
            "[1048576]",
            lambda: hw_sim.run_elementwise_f32(act, x),
            lambda: run_elementwise_f32(act, xt),
            repeats,
        ),
        _case(
            "softmax",
            "[2304, 256] causal",
            lambda: hw_sim.softmax_f32(s, exp, recip, mode),
            lambda: softmax_f32(st, exp, recip, mode),
            repeats,
        ),
        _case(
            "rmsnorm",
            "[256, 576]",
            lambda: hw_sim.rmsnorm_f32(r, w, 1e-5, rsq, mode),
            lambda: rmsnorm_f32(rt, wt, 1e-5, rsq, mode),
            repeats,
        ),
    ]


def model_forward(mode: str, repeats: int, tokens: int = 256) -> dict:
    model, _ = engine.load_model("smollm2")
    ids = torch.randint(
        0, model.cfg.vocab_size, (1, tokens), generator=torch.Generator().manual_seed(SEED)
    )
    subs = {
        b: substitute(model, ops="act,rmsnorm,softmax", reciprocal_mode=mode, backend=b)
        for b in BACKENDS
    }

    def run(b):
        with torch.no_grad():
            return subs[b](ids)

    same = bool(torch.equal(run("numba"), run("torch")))
    t = _interleaved({b: (lambda b=b: run(b)) for b in subs}, repeats)
    return _result("smollm2_forward", f"[1, {tokens}] tokens, ops act,rmsnorm,softmax", t, same)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=25, help="rounds of the op cases")
    ap.add_argument("--model-repeats", type=int, default=3, help="rounds of the forward")
    ap.add_argument("--reciprocal-mode", default="reduced", choices=MODES)
    ap.add_argument("--skip-model", action="store_true", help="no SmolLM2 forward")
    ap.add_argument("--out", default=str(results_path("torch_backend.json")))
    args = ap.parse_args(argv)
    torch.set_num_threads(THREADS)
    numba.set_num_threads(THREADS)
    results = micro(args.reciprocal_mode, args.repeats)
    if not args.skip_model:
        try:
            results.append(model_forward(args.reciprocal_mode, args.model_repeats))
        except (FileNotFoundError, ImportError) as e:  # the SmolLM2 GGUF is not installed
            print(f"smollm2_forward: skipped ({e})")
    doc = {
        "benchmark": "torch_backend",
        "command": " ".join([COMMAND, *sys.argv[1:]]),
        "threads": THREADS,
        "repeats": args.repeats,
        "model_repeats": args.model_repeats,
        "loadavg_at_start": list(LOADAVG),
        "reciprocal_mode": args.reciprocal_mode,
        "target_ratio": TARGET_RATIO,
        "ratio_meaning": "torch throughput / numba throughput on one core: numba_cpu_s / "
        "torch_cpu_s, best process CPU times (ratio_wall: the same from best wall times)",
        "torch": torch.__version__,
        "numba": numba.__version__,
    }
    return write_results(args.out, doc, results)


if __name__ == "__main__":
    raise SystemExit(main())
