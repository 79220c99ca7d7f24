"""Table JSON round trips (numerics §6), rejection of every numerics §2 rule
with the field named, atomic writes, published and baseline tables."""

import json
import os

import numpy as np
import pytest

from nli.baselines import BASELINES, baseline_table, density_placement
from nli.grid import fp16_grid
from nli.published import PUBLISHED_CUTPOINTS, published_table
from nli.solver import PAPER_BINS, solve, table_from_result
from nli.table import TableError, load_table, save_table, table_from_cutpoints


def _good():
    return table_from_result(solve("silu", "two-level:2:4", "paper", domain=(1.0, 3.0)))


def test_json_round_trip_keeps_every_field_and_meta(tmp_path):
    t = _good()
    p = tmp_path / "t.json"
    save_table(t, p)
    u = load_table(p)
    for f in ("cutpoints", "bins", "base", "lut"):
        assert np.array_equal(getattr(t, f), getattr(u, f))
    assert np.array_equal(t.mul.view(np.uint32), u.mul.view(np.uint32))
    assert (t.below, t.above, t.precision, t.function) == (
        u.below,
        u.above,
        u.precision,
        u.function,
    )
    assert u.meta == json.loads(json.dumps(t.meta))
    d = json.loads(p.read_text())
    for k in (
        "format",
        "version",
        "function",
        "precision",
        "cutpoints",
        "bins",
        "base",
        "mul",
        "lut",
        "below",
        "above",
        "objective",
        "cost",
        "domain",
        "solve_seconds",
        "layout",
        "grid_points",
    ):
        assert k in d, k
    assert all(isinstance(v, str) and len(v) == 4 for v in d["cutpoints"] + d["lut"] + d["domain"])
    assert all(isinstance(v, str) and len(v) == 8 for v in d["mul"])
    assert isinstance(d["cost"], float)


def _mutations():
    """(field named in the error, mutation of the JSON dict): one per numerics §2 / 6 rule."""
    return [
        ("cutpoints", lambda d: d.update(cutpoints=d["cutpoints"][:1], bins=[], base=[], mul=[])),
        ("cutpoints", lambda d: d["cutpoints"].__setitem__(1, d["cutpoints"][0])),  # not increasing
        ("cutpoints", lambda d: d["cutpoints"].__setitem__(-1, "7c00")),  # infinite
        ("cutpoints", lambda d: d["cutpoints"].__setitem__(0, "3c0")),  # not 4 hex digits
        ("bins", lambda d: d["bins"].__setitem__(0, 0)),  # bins >= 1
        (
            "bins",
            lambda d: (d["base"].append(d["base"][-1] + d["bins"][-1]), d["bins"].append(1)),
        ),  # one per interval
        ("bins", lambda d: d["bins"].__setitem__(0, 1.5)),  # integer
        ("base", lambda d: d["base"].__setitem__(1, d["base"][1] + 1)),  # running sum
        ("mul", lambda d: d["mul"].__setitem__(0, "3f800000")),  # RNE32(bins/width)
        ("mul", lambda d: d["mul"].__setitem__(0, "3f80")),  # 8 hex digits
        ("lut", lambda d: d["lut"].pop()),  # 1 + sum(bins)
        ("lut", lambda d: d["lut"].__setitem__(2, "7e00")),  # finite
        (
            "lut",
            lambda d: (d["lut"].__setitem__(0, "fbff"), d["lut"].__setitem__(1, "7bff")),
        ),  # diff overflows
        ("below", lambda d: d.update(below="7e01")),  # not NaN
        ("above", lambda d: d.pop("above")),  # missing
        ("precision", lambda d: d.update(precision="fp8")),
        ("format", lambda d: d.update(format="other")),
        ("version", lambda d: d.update(version=2)),
        ("function", lambda d: d.update(function=3)),
    ]


@pytest.mark.parametrize("field,mutate", _mutations())
def test_loader_rejects_each_broken_rule_naming_the_field(tmp_path, field, mutate):
    d = _good().to_json_dict()
    mutate(d)
    p = tmp_path / "bad.json"
    p.write_text(json.dumps(d))
    with pytest.raises(TableError, match=field):
        load_table(p)


def test_fp16_table_with_overflowing_mul_is_rejected():
    c = np.array([0.0, 2.0**-20], dtype=np.float16).view(np.uint16)  # 32 bins / 2^-20 > 65504
    with pytest.raises(TableError, match="mul"):
        table_from_cutpoints("tanh", c, [32], "fp16")
    assert table_from_cutpoints("tanh", c, [32], "fp32").precision == "fp32"


def test_loader_rejects_non_json_and_missing_files(tmp_path):
    p = tmp_path / "x.json"
    p.write_text("{not json")
    with pytest.raises(TableError, match="not valid JSON"):
        load_table(p)
    with pytest.raises(TableError, match="no such table file"):
        load_table(tmp_path / "missing.json")


def test_save_is_atomic_on_failure(tmp_path, monkeypatch):
    p = tmp_path / "t.json"
    save_table(_good(), p)
    before = p.read_text()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        save_table(_good().with_lut(_good().lut, meta_note="changed"), p)
    assert p.read_text() == before
    assert [q.name for q in tmp_path.iterdir()] == ["t.json"]  # no temp file left


@pytest.mark.parametrize("name", sorted(PUBLISHED_CUTPOINTS))
def test_published_tables_use_the_paper_layout(name):
    t = published_table(name)
    assert t.entries == 259 and list(t.bins) == list(PAPER_BINS)
    assert np.array_equal(t.cutpoint_values(), np.array(PUBLISHED_CUTPOINTS[name][1]))
    assert "neulxf/NN-LUT" in t.meta["provenance"]["source"]


@pytest.mark.parametrize("kind", BASELINES)
@pytest.mark.parametrize(
    "name,domain", [("silu", None), ("exp", None), ("reciprocal", None), ("rsqrt", (1.0, 4.0))]
)
def test_baselines_have_259_entries_and_finite_luts(kind, name, domain):
    t = baseline_table(kind, name, domain)
    assert t.entries == 259
    if kind == "nnlut":
        lo, hi = t.cutpoint_values()[[0, -1]]
        assert -5.0 <= lo and hi <= 5.0  # fitted on the calibration range only


def test_density_placement_is_distinct_and_follows_density():
    x, _ = fp16_grid(0.0, 1.0)
    dens = np.where(x < 0.5, 3.0, 1.0)
    idx = density_placement(x, dens, 101)
    assert idx.size == 101 and np.all(np.diff(idx) > 0) and idx[0] == 0 and idx[-1] == x.size - 1
    assert np.count_nonzero(x[idx] < 0.5) == pytest.approx(75, abs=2)  # 3/4 of the mass below 0.5


@pytest.mark.parametrize("name", sorted(PUBLISHED_CUTPOINTS))
def test_shipped_tables_beat_nli_published_cutpoints_through_the_datapath(name):
    """Accuracy target: mean relative error and % correctly rounded, numerics §3 datapath (fp32),
    every finite FP16 input of the default domain."""
    from hw_sim.report import error_report
    from nli.defaults import default_table

    ours, theirs = error_report(default_table(name)), error_report(published_table(name))
    assert ours["mean_rel_error"] < theirs["mean_rel_error"]
    assert ours["pct_correctly_rounded"] > theirs["pct_correctly_rounded"]


@pytest.mark.parametrize("name,mode", [("reciprocal", "reduced"), ("rsqrt", "reduced")])
def test_shipped_reduced_tables_are_a_different_class(name, mode):
    from hw_sim.report import error_report
    from nli.defaults import default_table

    rep = error_report(default_table(name, mode))
    assert rep["max_ulp"] <= 1 and rep["mean_rel_error"] < 3e-4
    assert default_table(name, mode).meta["thinning"] is None  # solved exactly


def test_table_rows_report_what_each_file_records():
    from nli.report import ROW_KEYS, table_rows

    t = _good()
    rows = table_rows({"ours": t, "theirs": published_table("silu")})
    assert [r["name"] for r in rows] == ["ours", "theirs"] and all(
        set(r) == set(ROW_KEYS) for r in rows
    )
    assert (
        rows[0]["objective"] == "paper"
        and rows[0]["cost"] == t.meta["cost"]
        and rows[0]["entries"] == 11
    )
    assert rows[1]["method"] == "NLI published macro cutpoints" and rows[1]["cost"] is None


def test_numerics_version_is_written_and_optional_on_load(tmp_path):
    """Section 6: files carry the numerics version; files written before it (no key) load the
    same."""
    from nli.formats import NUMERICS_VERSION

    t = _good()
    d = t.to_json_dict()
    assert d["numerics"] == NUMERICS_VERSION == "1.1"
    old = {k: v for k, v in d.items() if k != "numerics"}
    p = tmp_path / "old.json"
    p.write_text(json.dumps(old))
    u = load_table(p)
    assert "numerics" not in u.meta and u.to_json_dict() == d
    d["numerics"] = "2.0"
    p.write_text(json.dumps(d))
    with pytest.raises(TableError, match="numerics"):
        load_table(p)
