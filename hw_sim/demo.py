"""`nli demo` section of hw_sim: the bit-accurate error of the default tables
(direct and reduced modes, fp32 and fp16 unit precision), the reduced-mode
reciprocal/rsqrt check, and the cycle/area MODEL against the published figures."""

from __future__ import annotations

import json

from nli.formats import INVERSE_FUNCTIONS, PRECISIONS
from nli.table import TableError, atomic_write_text


def section(ctx) -> None:
    """Print the simulator's report; write hw_sim_report.json and a SiLU error plot under
    ctx.out."""
    import nli

    from .hw_model import LABEL, UnitConfig, fit_area_power, rmsnorm_cycles, softmax_cycles
    from .report import composite_inverse_report, error_arrays, error_report

    out = {"tables": {}, "composite": {}}
    print(f"{'table':<22} {'prec':<5} {'inputs':>7} {'max ulp':>8} {'% CR':>7} {'mean rel':>10}")
    for name, mode in nli.default_table_names():
        base = nli.default_table(name, mode)
        for prec in PRECISIONS:
            try:
                t = base.with_precision(prec)
            except TableError:
                print(
                    f"{name + ':' + mode:<22} {prec:<5} "
                    "(not a valid fp16 table: scale overflows FP16)"
                )
                continue
            r = error_report(t)
            out["tables"][f"{name}:{mode}:{prec}"] = r
            print(
                f"{name + ':' + mode:<22} {prec:<5} {r['inputs']:>7} {r['max_ulp']:>8} "
                f"{r['pct_correctly_rounded']:>6.2f}% {r['mean_rel_error']:>10.3g}"
            )
        if name in INVERSE_FUNCTIONS:
            c = composite_inverse_report(base, name, mode, stride=64 if ctx.quick else 1)
            out["composite"][f"{name}:{mode}"] = c
            print(
                f"{'':<22} composite {name}({mode}) of FP32 inputs: max ulp {c['max_ulp']}, "
                f"{c['pct_correctly_rounded']:.2f}% CR -> at most 1 ulp: {c['at_most_1_ulp']}"
            )
        if name == "silu" and mode == "direct":
            from .plots import plot_errors

            plot_errors(
                error_arrays(base),
                ctx.out / "hw_sim_silu_error.png",
                "default SiLU table (fp32 unit; grey lines: cutpoints)",
                base.cutpoint_values(),
            )
    fit = fit_area_power().fit
    out["area_power_fit"] = fit
    print(f"\n{LABEL}")
    for d in fit["designs"]:
        print(
            f"  {d['design']:8s} area {d['model']['area_um2']:8.0f} um^2 "
            f"(published {d['published']['area_um2']:.0f}), "
            f"power {d['model']['power_mw']:5.1f} mW ({d['published']['power_mw']:.0f}), "
            f"efficiency {d['model']['efficiency']:.2f} ({d['published']['efficiency']})"
        )
    cfg = UnitConfig(lanes=16)
    cyc = {
        "softmax_1024": softmax_cycles(1024, 1, "direct", cfg),
        "rmsnorm_576": rmsnorm_cycles(576, 1, "direct", cfg),
    }
    out["cycles_16_lanes"] = cyc
    print(
        f"  16 lanes @ 1 GHz: softmax row of 1024 {cyc['softmax_1024']['cycles']} cycles, "
        f"RMSNorm row of 576 {cyc['rmsnorm_576']['cycles']} cycles "
        "(sequential FP32 sums bound both)"
    )
    atomic_write_text(
        ctx.out / "hw_sim_report.json", json.dumps(out, indent=1, default=float) + "\n"
    )
