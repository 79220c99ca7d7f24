"""Bit-exactness of the torch datapath on CUDA against hw_sim on the CPU (a short GPU check).

On the GPU: every shipped table in fp32 and fp16 precision over all 65,536 encodings
(``engine.torch_unit.output_bits``); ``run_elementwise_f32`` on float32 values between FP16
values; Softmax and RMSNorm (both §4.1 input handlings) on seeded and adversarial rows in both
reciprocal modes; all of it with torch's FP16 conversion (if it passes the per-device probe)
and again with the integer RNE16; and the fast conversion against the integer RNE16 on all
2^32 float32 patterns. BF16 (numerics §13): every shipped bf16 table over all 65,536 encodings,
``run_elementwise_f32`` of a bf16 table, the reduced reciprocal / rsqrt on random FP32 patterns,
Softmax and RMSNorm (``engine.torch_ops_bf16``) on the same rows plus BF16's own edges (squares
past FP32's range or down to FP32 subnormals, NaNs of both signs), all against hw_sim.ops_bf16.
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


def _rows_bf16(n: int) -> np.ndarray:
    """:func:`_rows` plus BF16's edges: squares past FP32's range, squares that fall to FP32
    subnormals, +-max and a value rounding to inf, NaNs of both signs with payloads."""
    rng = np.random.default_rng(SEED + 7 * n)
    extra = [
        rng.uniform(2e19, 1e30, n) * rng.choice([-1, 1], n),
        rng.uniform(1e-23, 1e-19, n) * rng.choice([-1, 1], n),
        np.resize([3.38e38, -3.38e38, 3.4e38, 0.0], n),
    ]
    nans = np.repeat(rng.standard_normal((1, n)).astype(np.float32), 3, 0)
    nans[:, n // 2] = np.array([0xFFC00001, 0xFF800001, 0x7F800001], np.uint32).view(np.float32)
    return np.concatenate([_rows(n), np.asarray(extra, np.float32), nans])


def _bf16_checks(dev: torch.device, res: dict) -> None:
    """The bf16 datapath and ops on ``dev`` against hw_sim (shipped bf16 tables; their
    reciprocal and rsqrt are reduced-mode tables, so the inverses run in reduced mode)."""
    from engine import torch_ops_bf16, torch_unit
    import hw_sim
    import nli
    from nli.defaults import BF16_DEFAULT_TABLES

    for f, m in BF16_DEFAULT_TABLES:
        t = nli.default_table(f, m, "bf16")
        got = torch_unit.output_bits(t, dev).cpu().numpy().astype(np.uint16)
        res["checks"][f"bf16 table {f}/{m}"] = int(np.sum(got != hw_sim.output_lut(t)))
    rng = np.random.default_rng(SEED + 1)
    scale = rng.choice([1e-38, 1e-6, 1, 100, 1e20, 1e38], 1 << 20)
    with np.errstate(over="ignore"):
        x = (rng.standard_normal(1 << 20) * scale).astype("f4")
    silu = nli.default_table("silu", "direct", "bf16")
    got = torch_unit.run_elementwise_f32(silu, torch.from_numpy(x).to(dev))
    want = hw_sim.run_elementwise_f32(silu, x)
    res["checks"]["bf16 elementwise silu f32"] = int(np.sum(_u32(got) != _u32(want)))
    exp = nli.default_table("exp", "direct", "bf16")
    rec = nli.default_table("reciprocal", "reduced", "bf16")
    rsq = nli.default_table("rsqrt", "reduced", "bf16")
    v = rng.integers(0, 1 << 32, 1 << 20, dtype=np.uint64).astype(np.uint32).view(np.float32)
    for name, ours, ref, t in (
        ("reciprocal", torch_ops_bf16.reciprocal_bf16, hw_sim.reciprocal_bf16, rec),
        ("rsqrt", torch_ops_bf16.rsqrt_bf16, hw_sim.rsqrt_bf16, rsq),
    ):
        got = ours(torch.from_numpy(v).to(dev), t, "reduced").view(torch.int16).cpu().numpy()
        want = ref(v, t, "reduced")
        res["checks"][f"bf16 {name} reduced"] = int(np.sum(got.view(np.uint16) != want))
    bad_s = bad_r = 0
    for n in ROW_LENGTHS:
        rows = _rows_bf16(n)
        xt = torch.from_numpy(rows).to(dev)
        want = hw_sim.softmax_bf16_f32(rows, exp, rec, "reduced")
        got = torch_ops_bf16.softmax_bf16_f32(xt, exp, rec, "reduced")
        bad_s += int(np.sum(_u32(got) != _u32(want)))
        w = nli.grid.f64_to_bf16_bits(rng.uniform(-2, 2, n))
        wt = torch.from_numpy(w.astype(np.int32)).to(dev).to(torch.int16)
        for eps in (1e-6, 0.0, 1e-40, -1e-40):
            want = hw_sim.rmsnorm_bf16_f32(rows, w, eps, rsq, "reduced")
            got = torch_ops_bf16.rmsnorm_bf16_f32(xt, wt, eps, rsq, "reduced")
            bad_r += int(np.sum(_u32(got) != _u32(want)))
    res["checks"]["bf16 softmax reduced"] = bad_s
    res["checks"]["bf16 rmsnorm reduced"] = bad_r


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
    _bf16_checks(dev, res)
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
    from results_io import stamp_tables, write_json

    res = check(torch.device("cuda", 0) if dev.type == "cuda" else dev)
    write_json(args.out, stamp_tables(res))
    for k, v in res["checks"].items():
        print(f"{'ok ' if v == 0 else 'BAD'} {k}: {v} mismatches")
    print(f"fast rounding on {res['device']}: {res['fast_rounding']}; wrote {args.out}")
    return 0 if res["mismatches"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
