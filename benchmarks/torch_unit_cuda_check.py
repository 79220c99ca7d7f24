"""Bit-exactness of the torch datapath on CUDA against hw_sim on the CPU (a short GPU check).

On the GPU: every shipped table in fp32 and fp16 precision over all 65,536 encodings
(``engine.torch_unit.output_bits``); ``run_elementwise_f32`` on float32 values between FP16
values; Softmax and RMSNorm (both §4.1 input handlings) on seeded and adversarial rows in both
reciprocal modes; all of it with torch's FP16 conversion (if it passes the per-device probe)
and again with the integer RNE16; and the fast conversion against the integer RNE16 on all
2^32 float32 patterns.
Everything is compared with hw_sim on the CPU on uint16 / uint32 views. Writes a JSON and
exits 1 on any mismatch; without CUDA it says so in one line and exits 0, checking nothing.

Usage: python benchmarks/torch_unit_cuda_check.py [--out benchmarks/results/torch_unit_cuda.json]
       [--device cuda]   (``--device cpu``: a dry run of the script, without the 2^32 part)
"""

from __future__ import annotations

import argparse
import itertools
import sys

import numpy as np
import torch

SEED = 0
ROW_LENGTHS = (1, 7, 64, 300, 1031)
CHUNK = 1 << 26  # float32 patterns per step of the all-2^32 check


def _rows(n: int) -> np.ndarray:
    """float32 rows: several scales, -inf masks, a NaN row, an all -inf row, subnormals,
    +-0, values that overflow FP16, a huge/tiny row."""
    rng = np.random.default_rng(SEED + n)
    rows = [rng.standard_normal(n) * s for s in (1e-3, 1, 4, 300, 3e4)]
    r = rng.standard_normal(n) * 3
    r[rng.random(n) < 0.4] = -np.inf
    rows.append(r)
    r = rng.standard_normal(n)
    r[n // 2] = np.nan
    rows += [r, np.full(n, -np.inf), rng.integers(-1023, 1024, n) * 2.0**-24]
    r = np.zeros(n)
    r[::2] = -0.0
    rows += [r, rng.uniform(2e4, 7e4, n) * rng.choice([-1, 1], n)]
    rows.append(np.where(np.arange(n) % 2, 3e38, 1e-40))
    return np.asarray(rows, dtype=np.float32)


def _u32(a) -> np.ndarray:
    a = a.cpu().numpy() if isinstance(a, torch.Tensor) else a
    return np.ascontiguousarray(a).view(np.uint32)


def check(dev: torch.device) -> dict:
    from engine import torch_unit
    from engine.torch_ops import rmsnorm_f32, softmax_f32
    import hw_sim
    import nli
    from nli.defaults import default_table_path
    from nli.formats import MODES, PRECISIONS, RMSNORM_INPUTS
    from nli.table import TableError

    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else str(dev)
    res: dict = {"device": name, "fast_rounding": None, "checks": {}}
    res["fast_rounding"] = torch_unit.fast_rounding(dev)
    shipped = [(f, m) for f, m in nli.default_table_names() if default_table_path(f, m).exists()]
    for f, m in shipped:  # the datapath itself (integer construction, on the GPU)
        for prec in PRECISIONS:
            try:
                t = nli.default_table(f, m).with_precision(prec)
            except TableError:
                continue
            got = torch_unit.output_bits(t, dev).cpu().numpy().astype(np.uint16)
            res["checks"][f"table {f}/{m}/{prec}"] = int(np.sum(got != hw_sim.output_lut(t)))
    rng = np.random.default_rng(SEED)
    x = (rng.standard_normal(1 << 20) * rng.choice([1e-6, 1, 100, 3e4], 1 << 20)).astype("f4")
    modes = {False: "integer"} if not res["fast_rounding"] else {True: "fast", False: "integer"}
    for fast, label in modes.items():
        torch_unit._FAST_OK[str(dev)] = fast
        silu = nli.default_table("silu", "direct")
        want = hw_sim.run_elementwise_f32(silu, x)
        got = torch_unit.run_elementwise_f32(silu, torch.from_numpy(x).to(dev))
        res["checks"][f"{label} elementwise silu f32"] = int(np.sum(_u32(got) != _u32(want)))
        for mode in MODES:
            exp = nli.default_table("exp", "direct")
            rec = nli.default_table("reciprocal", mode)
            rsq = nli.default_table("rsqrt", mode)
            bad_s = bad_r = 0
            for n in ROW_LENGTHS:
                rows = _rows(n)
                xt = torch.from_numpy(rows).to(dev)
                w = rng.uniform(-2, 2, n).astype(np.float16)
                want = hw_sim.softmax_f32(rows, exp, rec, mode)
                bad_s += int(np.sum(_u32(softmax_f32(xt, exp, rec, mode)) != _u32(want)))
                for eps, inp in itertools.product((1e-5, 0.0, 1e-40), RMSNORM_INPUTS):
                    want = hw_sim.rmsnorm_f32(rows, w, eps, rsq, mode, inp)
                    got = rmsnorm_f32(xt, torch.from_numpy(w).to(dev), eps, rsq, mode, inp)
                    bad_r += int(np.sum(_u32(got) != _u32(want)))
            res["checks"][f"{label} softmax {mode}"] = bad_s
            res["checks"][f"{label} rmsnorm {mode}"] = bad_r
    torch_unit._FAST_OK.pop(str(dev), None)
    if dev.type == "cuda" and torch_unit.fast_rounding(dev):  # the probe's verdict, everywhere
        bad = 0
        for start in range(0, 1 << 32, CHUNK):
            pat = torch.arange(start, start + CHUNK, dtype=torch.int64, device=dev)
            v = torch_unit.f32(torch.where(pat >= 1 << 31, pat - (1 << 32), pat).to(torch.int32))
            a, b = torch_unit.rne16(v), torch_unit._fast_round16(v)
            nan = ((a & 0x7FFF) > 0x7C00) & ((b & 0x7FFF) > 0x7C00)
            bad += int(((a != b) & ~nan).sum())
        res["checks"]["fast round16 vs rne16, all 2^32 float32"] = bad
    res["mismatches"] = int(sum(res["checks"].values()))
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="benchmarks/results/torch_unit_cuda.json")
    ap.add_argument(
        "--device", default="cuda", help="cuda (default), or cpu for a dry run of this script"
    )
    args = ap.parse_args(argv)
    dev = torch.device(args.device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        print("torch_unit_cuda_check: CUDA is not available here; nothing checked")
        return 0
    from results_io import write_json

    res = check(torch.device("cuda", 0) if dev.type == "cuda" else dev)
    write_json(args.out, res)
    for k, v in res["checks"].items():
        print(f"{'ok ' if v == 0 else 'BAD'} {k}: {v} mismatches")
    print(f"fast rounding on {res['device']}: {res['fast_rounding']}; wrote {args.out}")
    return 0 if res["mismatches"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
