"""The run plan of benchmarks/train.py: RunSpec entries and their expansion to configs.

First the SPRI (rho, s) sweep on a dev subset (``SWEEP_RUN`` over ``SWEEP_RHO`` x
``SWEEP_S``), then the comparison (``MAIN_RUNS``). Each entry expands, for the
command-line arguments and a seed, to ``(run name, TrainConfig)``; the name and the
config are the run's cache key (tests/test_train_plan.py pins them to the cache). The
SPRI runs of the comparison use the (rho, s) that the sweep chose (:func:`best_spri`).
"""

from __future__ import annotations

from dataclasses import dataclass

from moe.finetune.train_setup import METHODS, MOE_METHODS, TrainConfig

# 0.95 added after 0.9 came out best: is the optimum inside the grid?
SWEEP_RHO = (0.5, 0.75, 0.9, 0.95)
SWEEP_S = (1.0, 2.0, 4.0)
SMOKE_SWEEP = ((0.5, 8.0),)  # the --smoke sweep's one (rho, s) point
GROW_UTILITY = "saliency"
CHOSEN = "chosen"  # RunSpec.upcycle: the SPRI (rho, s) that the sweep chose
SEEDS_FROM = ("all", "first")


@dataclass(frozen=True)
class RunSpec:
    """One entry of the plan; its TrainConfig follows from the arguments and the seed.

    ``name`` may hold ``{rho}`` and ``{scale}``, filled from the upcycling
    options. ``seeds_from``: every ``--seeds`` ("all"), the first of them
    ("first"), or a fixed seed (int). ``steps``: ``--steps`` ("main") or
    ``--sweep-steps`` ("sweep"). ``upcycle``: fixed upcycling options as
    (key, value) pairs, or CHOSEN (the options handed to the expansion).
    ``two_stage``: SPRI's stage 1 takes ``--stage1-frac`` of the steps.
    """

    name: str
    method: str
    seeds_from: str | int = "first"
    steps: str = "main"
    upcycle: tuple[tuple[str, float], ...] | str = ()
    two_stage: bool = False
    grow_select: str | None = None

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"RunSpec {self.name}: unknown method {self.method!r}")
        if not (self.seeds_from in SEEDS_FROM or isinstance(self.seeds_from, int)):
            raise ValueError(f"RunSpec {self.name}: seeds_from {self.seeds_from!r}")
        if self.steps not in ("main", "sweep"):
            raise ValueError(f"RunSpec {self.name}: steps {self.steps!r}")
        if self.upcycle != CHOSEN and not isinstance(self.upcycle, tuple):
            raise ValueError(f"RunSpec {self.name}: upcycle {self.upcycle!r}")

    def seeds(self, seeds: list[int]) -> list[int]:
        if self.seeds_from == "all":
            return list(seeds)
        return seeds[:1] if self.seeds_from == "first" else [self.seeds_from]

    def expand(self, a, seed: int, chosen: dict) -> tuple[str, TrainConfig]:
        """(run name, config) of this entry for ``seed``; ``chosen``: SPRI's (rho, s)."""
        opts = dict(chosen) if self.upcycle == CHOSEN else dict(self.upcycle)
        kw = {}
        if self.upcycle:
            kw["upcycle_opts"] = opts
        if self.two_stage:
            kw["stage1_frac"] = a.stage1_frac
        if self.grow_select is not None:
            kw["grow_select"] = self.grow_select
        steps = a.sweep_steps if self.steps == "sweep" else None
        return self.name.format(**opts), _cfg(a, self.method, seed, steps, **kw)


# The SPRI (rho, s) sweep on dev: this run over SWEEP_RHO x SWEEP_S (SMOKE_SWEEP with --smoke).
SWEEP_RUN = RunSpec(
    "sweep_rho{rho}_s{scale:g}", "spri", 0, steps="sweep", upcycle=CHOSEN, two_stage=True
)
# The comparison, in this order: the "all"-seed runs seed by seed (the whole --smoke plan),
# then the "first"-seed ones. The SPRI runs use the sweep's (rho, s).
MAIN_RUNS = (
    RunSpec("dense_full", "dense_full", "all"),
    RunSpec("sparse", "sparse", "all"),
    RunSpec("spri", "spri", "all", upcycle=CHOSEN, two_stage=True),
    RunSpec("dense_ffn", "dense_ffn"),
    RunSpec("drop", "drop", upcycle=(("ratio", 0.5),)),
    RunSpec("partition", "partition"),
    RunSpec("cluster", "cluster"),
    RunSpec("spri_1stage", "spri", upcycle=CHOSEN),
    RunSpec("grow_uniform", "spri", upcycle=CHOSEN, two_stage=True, grow_select="uniform"),
    RunSpec(
        f"grow_{GROW_UTILITY}", "spri", upcycle=CHOSEN, two_stage=True, grow_select=GROW_UTILITY
    ),
)


def _cfg(a, method, seed, steps=None, **kw) -> TrainConfig:
    scope = a.scope if method in MOE_METHODS else "ffn"
    return TrainConfig(
        method=method,
        seed=seed,
        steps=steps or a.steps,
        batch_size=a.batch,
        lr=a.lr,
        scope=scope,
        device=a.device,
        **kw,
    )


def sweep_plan(a) -> list[tuple[str, TrainConfig]]:
    grid = SMOKE_SWEEP if a.smoke else [(r, s) for r in SWEEP_RHO for s in SWEEP_S]
    (seed,) = SWEEP_RUN.seeds([])
    return [SWEEP_RUN.expand(a, seed, {"rho": r, "scale": s}) for r, s in grid]


def main_plan(a, spri_opts: dict) -> list[tuple[str, TrainConfig]]:
    seeds = [int(s) for s in a.seeds.split(",")]
    every = [r for r in MAIN_RUNS if r.seeds_from == "all"]
    runs = [r.expand(a, seed, spri_opts) for seed in seeds for r in every]
    if a.smoke:
        return runs
    rest = [r for r in MAIN_RUNS if r.seeds_from != "all"]
    return runs + [r.expand(a, seed, spri_opts) for r in rest for seed in r.seeds(seeds)]


def best_spri(sweep: list[dict]) -> dict:
    best = min(sweep, key=lambda r: r["eval"]["loss_mean"])
    o = best["config"]["upcycle_opts"]
    return {"rho": o["rho"], "scale": o["scale"]}
