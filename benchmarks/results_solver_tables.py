"""docs/results.md's solver tables: exact solve times, the exact tables against the shipped
ones, the datapath-exact objectives (from benchmarks/results/solver*.json,
exact_tables/*.summary.json and datapath_solver.json). Used by results_sections.py."""

from __future__ import annotations

EXACT_TARGET_S = 600  # wall seconds per function: the exact mean + LUT-rounding solve, 2 cores
PAPER_TARGET_S = 150  # wall seconds per function: the exact paper-objective solve, 2 cores
EXACT_SOLVE_TARGETS_S = {"mean+lut": EXACT_TARGET_S, "paper": PAPER_TARGET_S}  # solver_exact.py
SINGLE_TARGET_S = 60  # wall seconds per function: the exact single:11 solve, 2 cores


def solver_md(d) -> str:
    """Exact paper-layout optimum vs the shipped table, through the spec datapath (fp32)."""
    out = [
        "| function | grid points | table | paper cost "
        "| mean rel | max rel | mean ulp | max ulp | % CR |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for key, r in d.items():
        if not isinstance(r, dict) or "tables" not in r:
            continue
        for label in ("optimum paper", "shipped default", "NLI published"):
            t = r["tables"].get(label)
            if not t or "mean_rel_error" not in t:
                continue
            out.append(
                f"| {key} | {r['grid_points']} | {label} | {t['paper_cost']:.3e} | "
                f"{t['mean_rel_error']:.2e} | {t['max_rel_error']:.2e} | {t['mean_ulp']:.3f} | "
                f"{t['max_ulp']} | {t['pct_correctly_rounded']:.2f}% |"
            )
    return "\n".join(out)


def solver_times_md(s, solve: str, target: int, extra_cols: bool) -> str:
    """Wall (and CPU) seconds of one exact solve per function, from solver.json."""
    head = (
        "| function | grid points | wall (s) | CPU (s) |"
        + (" paper cost |" if extra_cols else "")
        + " target (s) |"
    )
    out = [head, "|" + "---|" * (head.count("|") - 1)]
    for key, r in s.items():
        v = r.get("solves", {}).get(solve) if isinstance(r, dict) else None
        if not v or not v.get("finished"):
            continue
        row = f"| {key} | {r['grid_points']} | {v['wall_seconds']:.1f} | {v['cpu_seconds']:.0f} |"
        if extra_cols:
            row += f" {v['cost']:.3e} |"
        out.append(row + f" <= {target} |")
    return "\n".join(out)


def paper_walls(s: dict, se: dict) -> dict:
    """{function: wall seconds} of the exact paper-layout solve on each full (direct) domain:
    the 2-thread benchmarks/solver_exact.py run (``se``, the newer solver) where one finished,
    else benchmarks/solver.py's (``s``)."""
    walls = {
        fn: r["solves"]["paper"]["wall_seconds"]
        for fn, r in s.items()
        if isinstance(r, dict)
        and r.get("mode") == "direct"
        and r["solves"].get("paper", {}).get("finished")
    }
    for fn, solves in se.items():
        r = solves.get("paper", {}).get("threads_2", {})
        if r.get("finished"):
            walls[fn] = r["wall_seconds"]
    return walls


def finished_exact_runs(se: dict, threads: int) -> dict:
    """{function: run} of the finished mean + LUT-rounding runs on ``threads`` threads in
    solver_exact.json (``se``)."""
    runs = {fn: s.get("mean+lut", {}).get(f"threads_{threads}", {}) for fn, s in se.items()}
    return {fn: r for fn, r in runs.items() if r.get("finished")}


def exact_solves_md(se, targets: dict) -> str:
    """One row per run of benchmarks/solver_exact.py (solver_exact.json): function, solve,
    threads, wall and CPU seconds (or how far an unfinished run got), cost, solver commit, and
    the solve's target (``targets``: wall seconds per solve name)."""
    head = (
        "| function | solve | threads | grid points | wall (s) | CPU (s) | cost | solver "
        "| target (s) |"
    )
    out = [head, "|" + "---|" * (head.count("|") - 1)]
    for fn, solves in se.items():
        for name, runs in solves.items():
            for r in runs.values():
                if r.get("finished"):
                    wall, cpu = f"{r['wall_seconds']:.0f}", f"{r['cpu_seconds']:.0f}"
                    pts, cost = f"{r['grid_points']:,}", f"{r['cost']:.6e}"
                else:
                    done = len(r["layer_wall"])
                    wall = f"> {r['limit_seconds']:.0f} (stopped, {done} layers done)"
                    cpu, pts, cost = "-", "-", "-"
                out.append(
                    f"| {fn} | {name} | {r['threads']} | {pts} | {wall} | {cpu} | {cost} | "
                    f"{r.get('solver_commit') or '-'} | <= {targets[name]} |"
                )
    return "\n".join(out)


def exact_label(key: str, summary: dict) -> str:
    """A build_exact_tables.py summary's name in the docs: its function, and "(fp16 widths)"
    for a solve whose macro intervals were kept wide enough for the fp16-precision unit."""
    if summary.get("min_widths") == "fp16":
        return f"{summary.get('function', key.split('.')[0])} (fp16 widths)"
    return key


def exact_tables_md(summaries: dict) -> str:
    """Per function (benchmarks/build_exact_tables.py summaries): the stride-32 thinned and the
    exact optimum of `mean` + LUT rounding, the exact one refined, and the shipped table, on
    the objective and through the fp32 datapath over every input; whether the exact table
    beats the shipped one on % CR without a worse max ulp, keeping a valid fp16-precision
    variant where the shipped one has one (the rule for shipping it)."""
    head = (
        "| function | table | objective (mean + LUT) | vs exact | % CR | max ulp | mean ulp "
        "| mean rel | beats shipped |"
    )
    out = [head, "|" + "---|" * (head.count("|") - 1)]
    names = {
        "thinned_raw": "thinned (stride 32)",
        "exact_raw": "exact",
        "exact_refined": "exact, refined",
        "shipped": "shipped (thinned, refined)",
    }
    for fn, s in summaries.items():
        if "report" not in s or "thinned_solve" not in s:
            continue
        exact = s["solve"]["cost"]
        label_fn = exact_label(fn, s)
        obj = {
            "thinned_raw": s["thinned_solve"]["cost"],
            "exact_raw": exact,
            "shipped": s["shipped_objective"],
        }
        installed = s.get("installed", False)
        for key, label in names.items():
            r = s["report"][key]
            o = obj.get(key)
            ov = "-" if o is None else f"{o:.5e}"
            gap = "-" if o is None else f"{100 * (o / exact - 1):+.1f}%"
            if key == "shipped" and installed:
                label = "replaced (thinned, refined)"
            ships = ""
            if key == "exact_refined":
                ships = "yes, shipped" if installed else ("yes" if s["ships"] else "no")
                v = s.get("fp16_variant_valid", {})
                if not installed and v.get("shipped") and not v.get("exact_refined"):
                    ships += " (its fp16-precision variant is invalid: an RNE16(mul) overflows)"
            out.append(
                f"| {label_fn} | {label} | {ov} | {gap} | {r['pct_correctly_rounded']:.2f} | "
                f"{r['max_ulp']} | {r['mean_ulp']:.4f} | {r['mean_rel_error']:.4e} | {ships} |"
            )
    return "\n".join(out)


def thread_pairs(se: dict) -> dict:
    """{function: (1-thread run, 2-thread run)} of the finished exact mean + LUT-rounding solves
    in solver_exact.json (``se``) measured on both thread counts by the same solver commit."""
    ones, twos = finished_exact_runs(se, 1), finished_exact_runs(se, 2)
    return {
        fn: (ones[fn], twos[fn])
        for fn in ones
        if fn in twos and ones[fn].get("solver_commit") == twos[fn].get("solver_commit")
    }


def thread_speedup(se: dict) -> tuple[str, float] | None:
    """(function, speedup) of the smallest measured 1 -> 2 thread wall speedup of an exact
    mean + LUT-rounding solve (:func:`thread_pairs`); None if none was measured."""
    both = [(fn, a["wall_seconds"] / b["wall_seconds"]) for fn, (a, b) in thread_pairs(se).items()]
    return min(both, key=lambda p: p[1]) if both else None


def exact_table_solves_md(summaries: dict, se: dict, target: int) -> str:
    """The exact solve behind each function's exact table: threads, wall and CPU seconds, and
    its 2-thread wall against ``target``: measured (the solve itself, or a finished 2-thread
    run in solver_exact.json, ``se``), else estimated from 1-thread CPU seconds at
    :func:`thread_speedup` (said so): a finished 1-thread run's in ``se`` where there is one
    (a newer solver than the table's own solve may have been), else the solve's."""
    speedup, twos, ones = thread_speedup(se), finished_exact_runs(se, 2), finished_exact_runs(se, 1)
    out = [
        "| function | threads | wall (s) | CPU (s) | 2 threads (s) | target (s) | from |",
        "|---|---|---|---|---|---|---|",
    ]
    for fn, s in summaries.items():
        v = s.get("solve")
        if not (v and "report" in s):
            continue
        src = v.get("from", "benchmarks/build_exact_tables.py")
        if v.get("threads") == 2 or fn in twos:
            wall = twos[fn]["wall_seconds"] if fn in twos else v["wall_seconds"]
            two, met = f"{wall:.0f} (measured)", wall <= target
        elif fn in ones and speedup:
            est = ones[fn]["cpu_seconds"] / speedup[1]
            two, met = f"~{est:.0f} (estimated)", est <= target
            src += f"; estimate: solver_exact.json, 1 thread, {ones[fn]['cpu_seconds']:.0f} CPU-s"
        elif v.get("threads") == 1 and speedup:
            est = v["cpu_seconds"] / speedup[1]
            two, met = f"~{est:.0f} (estimated)", est <= target
        else:
            two, met = "-", None
        verdict = "-" if met is None else f"{target}: {'met' if met else 'missed'}"
        out.append(
            f"| {exact_label(fn, s)} | {v.get('threads') or '-'} | {v['wall_seconds']:.0f} | "
            f"{v['cpu_seconds']:.0f} | {two} | {verdict} | {src} |"
        )
    return "\n".join(out)


def datapath_solves_md(d) -> str:
    """One row per run of benchmarks/datapath_solver.py (datapath_solver.json): objective,
    max-ulp cap, candidate stride, wall seconds (or the limit it stopped at), and the table
    through the fp32 datapath against the shipped one."""
    head = (
        "| function | objective | max ulp cap | stride | wall (s) | threads | % CR "
        "| max ulp | mean ulp | beats shipped |"
    )
    out = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in d.get("runs", []):
        cap = r.get("max_ulp_cap")
        if r.get("timed_out") or "report" not in r:
            lay = r.get("last_pass_layers_done")
            got = f", {lay['layer']} of {lay['of']} layers" if lay else ""
            wall = f"> {r['limit_s']:.0f} (stopped{got})"
            cr = mu = mean = beats = "-"
        else:
            rep = r["report"]
            wall = f"{r['wall_s']:.0f}"
            cr, mu = f"{rep['pct_correctly_rounded']:.2f}", str(rep["max_ulp"])
            mean, beats = f"{rep['mean_ulp']:.3f}", "yes" if r.get("beats_shipped") else "no"
        out.append(
            f"| {r['function']} | {r['objective']} | {cap if cap is not None else '-'} | "
            f"{r['stride']}{' (exact)' if r['stride'] == 1 else ''} | {wall} | "
            f"{r.get('threads') or r.get('numba_threads_env') or '-'} | {cr} | {mu} | "
            f"{mean} | {beats} |"
        )
    return "\n".join(out)
