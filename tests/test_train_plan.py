"""The fine-tuning benchmarks' declarative plans expand to the runs that the caches hold.

benchmarks/train.py and benchmarks/train_gpu.py list their runs as RunSpec entries
(benchmarks/train_plan.py, benchmarks/train_gpu_plan.py); a change to the expansion would
change a run's name or config (its cache key) and silently rerun hours of training. These
tests pin the expansion to the committed per-run JSONs and to hand-written lists of the plans.
"""

import importlib.util
import json
from pathlib import Path
import re
import sys

import pytest

ROOT = Path(__file__).parents[1]
# the benchmark scripts import their siblings (results_io), as they do when run
# as `python benchmarks/X.py`
sys.path.insert(0, str(ROOT / "benchmarks"))
import train_gpu  # noqa: E402  (needs benchmarks/ on the path, set just above)
import train_gpu_plan  # noqa: E402
import train_plan  # noqa: E402

_spec = importlib.util.spec_from_file_location("bench_train", ROOT / "benchmarks/train.py")
bench_train = importlib.util.module_from_spec(_spec)
sys.modules["bench_train"] = bench_train  # dataclasses look their module up there
_spec.loader.exec_module(bench_train)

CPU_JOB = [  # the resumable CPU job of the full-scope plan (its cache is committed)
    "--device", "cpu", "--workers", "1", "--threads", "1", "--deadline", "1e9",
    "--hard-stop", "1e9", "--cache", "benchmarks/results/train_full_cpu",
]  # fmt: skip


def _cached_runs(cache: Path) -> dict[str, dict]:
    out = {}
    for p in sorted(cache.glob("*_s*.json")):
        if p.name.startswith("nli_") or not re.search(r"_s\d+$", p.stem):
            continue  # the nli re-evaluation, init_sweep.json
        out[p.stem] = json.loads(p.read_text(encoding="utf-8"))
    return out


def test_train_plan_matches_every_cached_run():
    report = json.loads((ROOT / "benchmarks/results/train.json").read_text(encoding="utf-8"))
    a = bench_train.parse_args([])
    plan = bench_train.sweep_plan(a) + bench_train.main_plan(a, report["spri_opts"])
    keys = {f"{n}_s{c.seed}": c.to_dict() for n, c in plan}
    assert len(keys) == len(plan) == 25
    cached = _cached_runs(ROOT / "benchmarks/results/train")
    assert sorted(cached) == sorted(keys)
    for k, res in cached.items():
        assert res["config"] == keys[k], k


def test_train_plan_order_and_settings():
    a = bench_train.parse_args(["--seeds", "3,5"])
    opts = {"rho": 0.9, "scale": 4.0}
    got = [(n, c.seed, c.method) for n, c in bench_train.main_plan(a, opts)]
    assert got == [
        ("dense_full", 3, "dense_full"), ("sparse", 3, "sparse"), ("spri", 3, "spri"),
        ("dense_full", 5, "dense_full"), ("sparse", 5, "sparse"), ("spri", 5, "spri"),
        ("dense_ffn", 3, "dense_ffn"), ("drop", 3, "drop"), ("partition", 3, "partition"),
        ("cluster", 3, "cluster"), ("spri_1stage", 3, "spri"), ("grow_uniform", 3, "spri"),
        ("grow_saliency", 3, "spri"),
    ]  # fmt: skip
    cfg = dict(bench_train.main_plan(a, opts)[6:])
    assert cfg["spri_1stage"].upcycle_opts == opts and cfg["spri_1stage"].stage1_frac == 0.0
    assert cfg["grow_uniform"].stage1_frac == a.stage1_frac == 0.25
    assert cfg["grow_saliency"].grow_select == "saliency"
    assert cfg["drop"].upcycle_opts == {"ratio": 0.5} and cfg["cluster"].upcycle_opts == {}
    smoke = bench_train.parse_args(["--smoke"])
    assert [n for n, _ in bench_train.main_plan(smoke, opts)] == ["dense_full", "sparse", "spri"]
    assert [n for n, _ in bench_train.sweep_plan(smoke)] == ["sweep_rho0.5_s8"]
    sweep = bench_train.sweep_plan(a)
    assert len(sweep) == 12 and sweep[1][0] == "sweep_rho0.5_s2"
    assert all(c.seed == 0 and c.steps == a.sweep_steps for _, c in sweep)


def test_run_spec_validates():
    with pytest.raises(ValueError, match="unknown method"):
        train_plan.RunSpec("x", "dense")
    with pytest.raises(ValueError, match="seeds_from"):
        train_plan.RunSpec("x", "spri", "some")
    with pytest.raises(ValueError, match="seeds_from"):
        train_gpu_plan.RunSpec("x", "spri", "spri", "every")
    with pytest.raises(ValueError, match="mixed seeds_from"):
        group = (
            train_gpu_plan.RunSpec("x", "spri", "spri", "all"),
            train_gpu_plan.RunSpec("y", "spri", "spri", "first"),
        )
        train_gpu_plan._check_main_runs((group,))
    with pytest.raises(ValueError, match="is not swept"):
        train_gpu_plan._check_main_runs(((train_gpu_plan.RunSpec("x", "drop", "drop"),),))
    a = train_gpu.parse_args([])
    assert train_gpu_plan.run_ids(a) == [
        f"{t['name']}_s{t['seed']}" for t in train_gpu.sweep_plan(a) + train_gpu.main_plan(a)
    ]


def test_train_gpu_plan_matches_the_cpu_cache_and_its_order():
    a = train_gpu.parse_args(CPU_JOB)
    planned = {f"{t['name']}_s{t['seed']}": t["cfg"].to_dict() for t in train_gpu.sweep_plan(a)}
    cache = ROOT / "benchmarks/results/train_full_cpu"
    cached = _cached_runs(cache)
    main = train_gpu.main_plan(a)
    choice = json.loads((cache / "lr_choice.json").read_text())  # the main runs' LRs, from dev
    # long-budget runs made with another --long-factor than the default's
    factors = {int(m.group(1)) for k in cached if (m := re.search(r"_x(\d+)_s\d+$", k))}
    for f in sorted(factors | {a.long_factor}):
        af = train_gpu.parse_args(CPU_JOB + ["--long-factor", str(f)])
        for t in train_gpu.main_plan(af):
            if t["lr_of"] in choice:
                cfg = train_gpu.task_config(af, t, choice[t["lr_of"]]["lr"])
                planned[f"{t['name']}_s{t['seed']}"] = cfg.to_dict()
    assert cached and set(cached) <= set(planned)  # every cached run is one the plan makes
    for k, res in cached.items():
        assert res["config"] == planned[k], k
    assert [(t["name"], t["seed"], t["lr_of"]) for t in main] == [
        ("dense_full", 0, "dense_full"), ("spri_full", 0, "spri"),
        ("dense_full", 1, "dense_full"), ("spri_full", 1, "spri"),
        ("dense_full", 2, "dense_full"), ("spri_full", 2, "spri"),
        ("sparse_full", 0, "sparse"), ("sparse_full", 1, "sparse"), ("sparse_full", 2, "sparse"),
        ("drop_full", 0, "spri"), ("cluster_full", 0, "spri"), ("spri_1stage_full", 0, "spri"),
        ("dense_full_x4", 0, "dense_full"), ("spri_full_x4", 0, "spri"),
    ]  # fmt: skip
    cfg = {t["name"]: train_gpu.task_config(a, t, 3e-4) for t in main if t["seed"] == 0}
    assert cfg["spri_full_x4"].steps == 800 and cfg["spri_full_x4"].stage1_frac == 0.25
    assert (
        cfg["spri_full"].upcycle_opts == train_gpu_plan.SPRI_OPTS
        and cfg["spri_full"].scope == "full"
    )
    assert cfg["spri_1stage_full"].stage1_frac == 0.0
    assert cfg["drop_full"].upcycle_opts == {"ratio": 0.5} and cfg["dense_full"].scope == "ffn"
    assert cfg["cluster_full"].upcycle_opts == {} and cfg["cluster_full"].lr == 3e-4


def test_train_gpu_only_names_main_plan_runs(capsys):
    a = train_gpu.parse_args(CPU_JOB + ["--only", "sparse_full_s1,spri_1stage_full_s0"])
    assert a.only == ["sparse_full_s1", "spri_1stage_full_s0"]
    for bad in ("sparse_full_s7", "lrsweep_spri_lr0.0001_s0", ","):
        with pytest.raises(SystemExit) as e:
            train_gpu.parse_args(CPU_JOB + ["--only", bad])
        assert e.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert "--only: not a run of the main plan" in err
