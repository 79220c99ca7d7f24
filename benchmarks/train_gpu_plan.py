"""The run plan of benchmarks/train_gpu.py: the LR sweep, then the main runs by priority.

Phase 1 (``SWEEP_RUNS``): dense_full, sparse and spri at every ``--lrs``, scored on
dev. Phase 2 (``MAIN_RUNS``): groups of RunSpec entries in priority order, each at the
LR its ``lr_of`` method chose on dev (:func:`choose_lrs`). The plan is a list of task
dicts; a phase-2 task's TrainConfig is made once its LR is known (:func:`task_config`).
Builds no config at import or in :func:`run_ids` (no torch).
"""

from __future__ import annotations

from dataclasses import dataclass

LRS = (5e-5, 1e-4, 3e-4)
# chosen on dev by the CPU (rho, s) sweep: benchmarks/results/train.json
SPRI_OPTS = {"rho": 0.95, "scale": 2.0}
DROP_OPTS = {"ratio": 0.5}  # as in benchmarks/train.py
SEEDS_FROM = ("all", "first")


@dataclass(frozen=True)
class RunSpec:
    """One entry of the plan; its TrainConfig follows from the arguments, a seed and an LR.

    ``name`` may hold ``{long_factor}``. ``lr_of``: the method whose
    dev-chosen LR the run trains at (None in the LR sweep, which sets its
    own). ``seeds_from``: every ``--seeds`` ("all") or the first ("first").
    ``long``: ``--long-factor`` x ``--steps``. ``upcycle``: upcycling
    options as (key, value) pairs. ``two_stage``: SPRI's stage 1 takes
    ``--stage1-frac`` of the steps.
    """

    name: str
    method: str
    lr_of: str | None = None
    seeds_from: str = "first"
    long: bool = False
    upcycle: tuple[tuple[str, float], ...] = ()
    two_stage: bool = False

    def __post_init__(self):  # the method itself is checked by TrainConfig
        if self.seeds_from not in SEEDS_FROM:
            raise ValueError(f"RunSpec {self.name}: seeds_from {self.seeds_from!r}")

    def kw(self, a) -> dict:
        """TrainConfig keywords besides method/seed/lr/steps."""
        kw = {}
        if self.upcycle:
            kw["upcycle_opts"] = dict(self.upcycle)
        if self.two_stage:
            kw["stage1_frac"] = a.stage1_frac
        return kw


_SPRI = tuple(SPRI_OPTS.items())
# Phase 1, the LR sweep: each of these at every --lrs (name + "_lr<lr>"), first seed, dev loss.
SWEEP_RUNS = (
    RunSpec("lrsweep_dense_full", "dense_full"),
    RunSpec("lrsweep_sparse", "sparse"),
    RunSpec("lrsweep_spri", "spri", upcycle=_SPRI, two_stage=True),
)
SWEPT = tuple(r.method for r in SWEEP_RUNS)
# Phase 2 in priority order: groups of runs, each group expanded seed by seed. The three
# one-seed methods (about 1 h each on one CPU thread) come before the 4x-budget pair (about 4 h
# each): each of them completes a comparison of the verdict sooner.
MAIN_RUNS = (
    (
        RunSpec("dense_full", "dense_full", "dense_full", "all"),
        RunSpec("spri_full", "spri", "spri", "all", upcycle=_SPRI, two_stage=True),
    ),
    (RunSpec("sparse_full", "sparse", "sparse", "all"),),
    (
        RunSpec("drop_full", "drop", "spri", upcycle=tuple(DROP_OPTS.items())),
        RunSpec("cluster_full", "cluster", "spri"),
        RunSpec("spri_1stage_full", "spri", "spri", upcycle=_SPRI),
    ),
    (
        RunSpec("dense_full_x{long_factor}", "dense_full", "dense_full", long=True),
        RunSpec(
            "spri_full_x{long_factor}", "spri", "spri", long=True, upcycle=_SPRI, two_stage=True
        ),
    ),
)


def _check_main_runs(groups) -> None:
    """One seed rule per group; each LR comes from a swept method (else the run never starts)."""
    for group in groups:
        if len({r.seeds_from for r in group}) != 1:
            raise ValueError(f"MAIN_RUNS: mixed seeds_from in {[r.name for r in group]}")
        for r in group:
            if r.lr_of not in SWEPT:
                raise ValueError(f"MAIN_RUNS: {r.name}: lr_of {r.lr_of!r} is not swept ({SWEPT})")


_check_main_runs(MAIN_RUNS)


def _cfg(a, method: str, seed: int, lr: float, steps: int, **kw):
    from moe.finetune.train_setup import TrainConfig

    scope = "full" if method not in ("dense_full", "dense_ffn") else "ffn"
    return TrainConfig(
        method=method,
        seed=seed,
        steps=steps,
        batch_size=a.batch,
        lr=lr,
        scope=scope,
        device=a.device,
        **kw,
    )


def _sweep_name(r: RunSpec, lr: float) -> str:
    return f"{r.name}_lr{lr:g}"


def run_ids(a) -> list[str]:
    """``<name>_s<seed>`` of every run of the plan, in order (builds no config: no torch)."""
    sweep = [f"{_sweep_name(r, lr)}_s{a.seeds[0]}" for r in SWEEP_RUNS for lr in a.lrs]
    return sweep + [f"{t['name']}_s{t['seed']}" for t in main_plan(a)]


def sweep_plan(a) -> list[dict]:
    """The LR sweep: one task per (method, lr), dev loss only."""
    return [
        {
            "name": _sweep_name(r, lr),
            "method": r.method,
            "lr_of": None,
            "seed": a.seeds[0],
            "split": "dev",
            "cfg": _cfg(a, r.method, a.seeds[0], lr, a.sweep_steps, **r.kw(a)),
        }
        for r in SWEEP_RUNS
        for lr in a.lrs
    ]


def main_plan(a) -> list[dict]:
    """Phase 2 in priority order; ``lr_of``: whose chosen LR the run uses.

    ``kw``: the TrainConfig keywords besides method/seed/lr/steps (the config
    is made at dispatch, once that LR is known: :func:`task_config`)."""
    out = []
    for group in MAIN_RUNS:
        how = group[0].seeds_from  # one per group: _check_main_runs
        for seed in a.seeds if how == "all" else a.seeds[:1]:
            out += [
                {
                    "name": r.name.format(long_factor=a.long_factor),
                    "method": r.method,
                    "lr_of": r.lr_of,
                    "seed": seed,
                    "split": "test",
                    "steps": a.steps * (a.long_factor if r.long else 1),
                    "kw": r.kw(a),
                }
                for r in group
            ]
    return out


def task_config(a, task: dict, lr: float):
    """The TrainConfig of a phase-2 task at the LR ``lr``."""
    return _cfg(a, task["method"], task["seed"], lr, task["steps"], **task["kw"])


def choose_lrs(sweep_results: dict[str, dict]) -> dict[str, dict]:
    """{method: {"lr": chosen, "dev_loss": {lr: loss}}} for the methods whose sweep is complete."""
    by: dict[str, dict] = {}
    for r in sweep_results.values():
        by.setdefault(r["config"]["method"], {})[r["config"]["lr"]] = r["eval"]["loss_mean"]
    return {
        m: {"lr": min(d, key=d.get), "dev_loss": {f"{k:g}": v for k, v in sorted(d.items())}}
        for m, d in by.items()
    }
