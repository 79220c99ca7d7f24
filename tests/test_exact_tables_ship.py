"""benchmarks/build_exact_tables.py's last step: the report against the shipped table, the
ship rule, ``--ship`` (install the refined exact table) and the record it leaves, on the
cached exp steps in benchmarks/results/exact_tables/ and a copy of nli/tables/."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
import shutil
import sys

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
CACHE = ROOT / "benchmarks" / "results" / "exact_tables"
STEPS = ("raw", "mean_rel", "thinned", "summary")


@pytest.fixture
def shop(tmp_path, monkeypatch):
    """(tables dir, cache dir): copies of the shipped tables and of exp's cached steps, the
    summary cut back to before its report (so that main computes the last step afresh). The
    exact exp table ships today, so the copy's exp.json is exp's stride-32 step (unrefined), a
    table the refined exact one beats, as the thinned table it replaced did."""
    import nli.defaults

    if not (CACHE / "exp.json").exists():
        pytest.skip("no cached exact exp steps")
    tables = tmp_path / "tables"
    shutil.copytree(nli.defaults.TABLE_DIR, tables)
    monkeypatch.setattr(nli.defaults, "TABLE_DIR", tables)
    shutil.copy(CACHE / "exp.thinned.json", tables / "exp.json")
    cache = tmp_path / "cache"
    cache.mkdir()
    shutil.copy(CACHE / "exp.json", cache / "exp.json")
    for step in STEPS:
        shutil.copy(CACHE / f"exp.{step}.json", cache / f"exp.{step}.json")
    s = json.loads((cache / "exp.summary.json").read_text())
    for k in ("report", "ships", "installed", "shipped_objective", "shipped_tables"):
        s.pop(k, None)
    (cache / "exp.summary.json").write_text(json.dumps(s))
    return tables, cache


def _summary(cache):
    return json.loads((cache / "exp.summary.json").read_text())


def test_ship_installs_the_exact_table_once_and_records_what_it_replaced(shop):
    import build_exact_tables

    from nli.defaults import default_table
    from nli.fingerprint import table_fingerprint
    from nli.table import load_table

    tables, cache = shop
    before = (tables / "exp.json").read_bytes()
    old_fp = table_fingerprint(default_table("exp"))
    assert build_exact_tables.main(["exp", "--out", str(cache)]) == 0
    s = _summary(cache)
    assert s["ships"] is True and s["installed"] is False
    assert (tables / "exp.json").read_bytes() == before  # without --ship: only read
    assert s["shipped_tables"]["exp"] == old_fp

    assert build_exact_tables.main(["exp", "--out", str(cache), "--ship"]) == 0
    new = default_table("exp")
    final = load_table(cache / "exp.json")
    assert table_fingerprint(new) == table_fingerprint(final) != old_fp
    comp = new.meta["comparison"]
    assert comp["replaced"]["fingerprint"] == old_fp
    assert comp["replaced"]["report"] == s["report"]["shipped"]
    assert comp["ours"] == s["report"]["exact_refined"] and comp["beats_published"] is True
    assert new.meta["thinning"] is None and new.meta["solver_version"].startswith("nli-engine")
    after = _summary(cache)
    assert after["installed"] is True and after["replaced_fingerprint"] == old_fp
    assert after["shipped_tables"]["exp"] == table_fingerprint(final)  # goes with today's

    rerun = build_exact_tables.main(["exp", "--out", str(cache), "--ship"])
    assert rerun == 0 and _summary(cache)["report"] == s["report"]  # the deciding comparison
    assert table_fingerprint(default_table("exp")) == table_fingerprint(final)


def test_ship_leaves_a_table_that_does_not_beat_the_shipped_one(shop):
    import build_exact_tables

    from nli.table import load_table, save_table

    tables, cache = shop
    before = (tables / "exp.json").read_bytes()
    # the candidate: the shipped (stride-32) table with a third of its LUT one FP16 step off
    t = load_table(cache / "exp.thinned.json")
    lut = t.lut.copy()
    lut[1:-1:3] += 1
    save_table(dataclasses.replace(t, lut=lut), cache / "exp.json")
    assert build_exact_tables.main(["exp", "--out", str(cache), "--ship"]) == 0
    s = _summary(cache)
    assert s["ships"] is False and s["installed"] is False
    cr = "pct_correctly_rounded"
    assert s["report"]["exact_refined"][cr] < s["report"]["shipped"][cr]
    assert (tables / "exp.json").read_bytes() == before


def test_ship_leaves_a_table_that_would_break_the_fp16_unit(shop, monkeypatch):
    """A candidate that beats the shipped table on the fp32 unit but has no valid fp16-precision
    variant, where the shipped table has one, does not ship."""
    import build_exact_tables

    from nli.fingerprint import table_fingerprint
    from nli.table import load_table

    tables, cache = shop
    before = (tables / "exp.json").read_bytes()
    cand = table_fingerprint(load_table(cache / "exp.json"))
    monkeypatch.setattr(build_exact_tables, "_fp16_ok", lambda t: table_fingerprint(t) != cand)
    assert build_exact_tables.main(["exp", "--out", str(cache), "--ship"]) == 0
    s = _summary(cache)
    assert s["fp16_variant_valid"] == {"exact_refined": False, "shipped": True}
    assert s["ships"] is False and s["installed"] is False
    assert (tables / "exp.json").read_bytes() == before


def test_fp16_variant_check_on_real_tables():
    """The exact tanh table has a 32-bin macro interval narrower than 32 / 65504 (its RNE16(mul)
    overflows); the shipped tanh table does not."""
    import build_exact_tables

    from nli.defaults import default_table
    from nli.table import load_table

    if not (CACHE / "tanh.json").exists():
        pytest.skip("no cached exact tanh table")
    assert build_exact_tables._fp16_ok(load_table(CACHE / "tanh.json")) is False
    assert build_exact_tables._fp16_ok(default_table("tanh")) is True


def test_no_record_of_the_shipped_stride_is_a_one_line_error(shop, monkeypatch, capsys):
    import build_exact_tables

    _, cache = shop
    (cache / "exp.thinned.json").unlink()  # the thinned step must run, and needs the stride
    monkeypatch.setattr(build_exact_tables, "read_json", lambda name: None)
    with pytest.raises(SystemExit) as e:
        build_exact_tables.main(["exp", "--out", str(cache)])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.endswith("build_tables.json records no solve of the shipped exp table")
    assert not (cache / "exp.thinned.json").exists()


def test_a_checkpoint_it_cannot_use_is_a_one_line_error_and_is_kept(tmp_path, capsys):
    """The exact solve resumes from --checkpoint-dir; a file there that is not a checkpoint (or
    one saved by other solver code) stops the script with exit 2 and a line naming it."""
    import build_exact_tables

    ck = tmp_path / "ck"
    ck.mkdir()
    (ck / "sigmoid.solve.npz").write_bytes(b"not a zip")
    out = tmp_path / "out"
    argv = ["sigmoid", "--out", str(out), "--checkpoint-dir", str(ck)]
    with pytest.raises(SystemExit) as e:
        build_exact_tables.main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "sigmoid.solve.npz: not a solve checkpoint" in err
    assert (ck / "sigmoid.solve.npz").read_bytes() == b"not a zip"
    assert not (out / "sigmoid.raw.json").exists()


def test_fp16_widths_solves_keep_the_fp16_variant_valid_in_their_own_files(tmp_path, monkeypatch):
    """--fp16-widths: both solves get precision "fp16" (macro intervals of B bins at least
    B / 65504 wide); every step goes to NAME.fp16_widths.*, the summary says so, and the
    tables are fp32-precision ones whose fp16-precision variant is valid. The solves run on a
    small part of tanh's domain here and refinement is left out, to keep the test short."""
    import build_exact_tables

    import hw_sim.refine
    import nli.solver
    from nli.table import load_table

    real, seen = nli.solver.solve, []

    def small_solve(name, *a, **kw):
        seen.append(kw.get("precision", "fp32"))
        return real(name, *a, **{**kw, "domain": (1.0, 2.0), "progress": None})

    monkeypatch.setattr(nli.solver, "solve", small_solve)
    monkeypatch.setattr(hw_sim.refine, "refine_table", lambda t, *a, **kw: (t, {}))
    out = tmp_path / "out"
    argv = ["tanh", "--out", str(out), "--fp16-widths", "--checkpoint-dir", str(tmp_path / "ck")]
    assert build_exact_tables.main(argv) == 0
    assert seen[1:] == ["fp16", "fp16"]  # seen[0]: the compile warm-up
    assert not list(out.glob("tanh.json")) and not list(out.glob("tanh.raw.json"))
    s = json.loads((out / "tanh.fp16_widths.summary.json").read_text())
    assert s["function"] == "tanh" and s["min_widths"] == "fp16"
    for step in ("raw", "thinned"):
        t = load_table(out / f"tanh.fp16_widths.{step}.json")
        assert t.precision == "fp32" and build_exact_tables._fp16_ok(t)
        assert np.all(np.diff(t.cutpoint_values()) / np.array(t.bins) >= 1 / 65504)
    assert s["fp16_variant_valid"]["exact_refined"] is True


def test_no_feasible_cutpoints_is_a_one_line_error_and_writes_nothing(
    tmp_path, monkeypatch, capsys
):
    """A solve that finds no feasible cutpoints (possible under --fp16-widths) stops the script
    with exit 2 and the solver's one line; no step file is written."""
    import build_exact_tables

    from nli.functions import get_function
    import nli.solver

    real = nli.solver.solve

    def infeasible(name, *a, **kw):  # the compile warm-up runs; the full-domain solve fails
        if kw.get("domain") == get_function(name).domains["direct"]:
            raise ValueError("no feasible cutpoints for layout 'paper' on this domain")
        return real(name, *a, **kw)

    monkeypatch.setattr(nli.solver, "solve", infeasible)
    out = tmp_path / "out"
    argv = ["tanh", "--out", str(out), "--fp16-widths", "--checkpoint-dir", str(tmp_path / "ck")]
    with pytest.raises(SystemExit) as e:
        build_exact_tables.main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.endswith("no feasible cutpoints for layout 'paper' on this domain")
    assert list(out.iterdir()) == []
