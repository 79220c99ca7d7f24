"""An exact solve interrupted and resumed from its checkpoint gives the uninterrupted solve's
cutpoints and objective to the bit; a checkpoint of another problem, or not a checkpoint at
all, is a one-line error (exit 2 from the CLI) that leaves the file alone."""

import numpy as np
import pytest

from nli.cli import main
from nli.solve_checkpoint import CheckpointError, SolveCheckpoint
from nli.solver import solve
from nli.table import load_table

# silu, quantized (so the DP runs from both ends), 4,097 grid points, 4 layers: about 2 s
PROBLEM = dict(
    function="silu",
    layout="two-level:2:8",
    objective="mean",
    domain=(-4.0, -0.25),
    quantized=True,
)


class Interrupted(Exception):
    pass


class KilledAfter(SolveCheckpoint):
    """A checkpoint written on every chance (every_s=0) whose solve dies after ``n`` writes
    (``layer_ends``: after the n-th write at the end of a layer)."""

    def __init__(self, path, n, layer_ends=False):
        super().__init__(path, every_s=0.0)
        self.n, self.writes, self.layer_ends = n, 0, layer_ends

    def save(self, state, force=False):
        super().save(state, force)
        self.writes += force or not self.layer_ends
        if self.writes >= self.n:
            raise Interrupted


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The solve with a checkpoint (chunked layers, as every checkpointed solve) never cut."""
    ck = SolveCheckpoint(tmp_path_factory.mktemp("ck") / "s.npz", every_s=0.0)
    r = solve(**PROBLEM, checkpoint=ck)
    return r, ck


def _same(a, b):
    return np.array_equal(a.cut_idx, b.cut_idx) and (
        np.float64(a.objective_value).view(np.int64) == np.float64(b.objective_value).view(np.int64)
    )


def test_plain_and_checkpointed_solves_agree(uninterrupted):
    r, _ = uninterrupted
    assert np.float64(solve(**PROBLEM).objective_value) == np.float64(r.objective_value)


@pytest.mark.parametrize(
    "n, layer_ends", [(1, False), (2, False), (17, False), (70, False), (1, True), (2, True)]
)
def test_killed_then_resumed_is_the_uninterrupted_solve(tmp_path, uninterrupted, n, layer_ends):
    ref, _ = uninterrupted
    path = tmp_path / "s.npz"
    with pytest.raises(Interrupted):
        solve(**PROBLEM, checkpoint=KilledAfter(path, n, layer_ends))
    saved = np.load(path)
    assert (int(saved["chunk"]) == 0) == layer_ends and int(saved["done"]) == (
        n if layer_ends else n // 32
    )
    again = SolveCheckpoint(path)
    r = solve(**PROBLEM, checkpoint=again)
    assert again.resumed and _same(r, ref)


def test_resumed_twice_and_the_elapsed_seconds_add_up(tmp_path, uninterrupted):
    ref, _ = uninterrupted
    path = tmp_path / "s.npz"
    for n in (5, 9):
        with pytest.raises(Interrupted):
            solve(**PROBLEM, checkpoint=KilledAfter(path, n))
    before = float(np.load(path)["elapsed_s"])
    ck = SolveCheckpoint(path)
    r = solve(**PROBLEM, checkpoint=ck)
    assert _same(r, ref) and ck.elapsed() > before > 0


def test_a_checkpoint_of_another_problem_is_refused_and_kept(tmp_path):
    path = tmp_path / "s.npz"
    with pytest.raises(Interrupted):
        solve(**PROBLEM, checkpoint=KilledAfter(path, 3))
    data = path.read_bytes()
    other = {**PROBLEM, "domain": (-4.0, -0.5)}
    with pytest.raises(CheckpointError, match="saved by a different solve") as e:
        solve(**other, checkpoint=SolveCheckpoint(path))
    assert str(path) in str(e.value) and "\n" not in str(e.value)
    assert path.read_bytes() == data


@pytest.mark.parametrize(
    "content", [b"", b"not a zip", None], ids=["empty", "garbage", "npz-of-something-else"]
)
def test_not_a_checkpoint_is_refused(tmp_path, content):
    path = tmp_path / "s.npz"
    if content is None:
        np.savez(path, a=np.arange(3))
    else:
        path.write_bytes(content)
    with pytest.raises(CheckpointError, match="not a solve checkpoint"):
        solve(**PROBLEM, checkpoint=SolveCheckpoint(path))


def _build(capsys, out, ck, *extra):
    code = main(
        ["table", "build", "silu", "-o", str(out), "--domain", "-4", "-0.25"]
        + ["--layout", "two-level:2:8", "--objective", "mean", "--lut-rounding", "-q"]
        + ["--checkpoint", str(ck), *extra]
    )
    o, err = capsys.readouterr()
    return code, o, err


def test_cli_resumes_from_the_checkpoint_and_removes_it(tmp_path, capsys, uninterrupted):
    ref, _ = uninterrupted
    ck = tmp_path / "s.npz"
    with pytest.raises(Interrupted):
        solve(**PROBLEM, checkpoint=KilledAfter(ck, 20))
    code, _, _ = _build(capsys, tmp_path / "t.json", ck)
    assert code == 0 and not ck.exists()
    t = load_table(tmp_path / "t.json")
    assert np.array_equal(t.cutpoints, ref.cutpoints)


@pytest.mark.parametrize(
    "setup, extra, msg",
    [
        ("garbage", (), "not a solve checkpoint"),
        ("other", (), "saved by a different solve"),
        ("none", ("--objective", "cr"), "--checkpoint: not with --objective cr"),
    ],
)
def test_cli_checkpoint_errors_are_one_line_exit_2(tmp_path, capsys, setup, extra, msg):
    ck, out = tmp_path / "s.npz", tmp_path / "t.json"
    if setup == "garbage":
        ck.write_bytes(b"not a zip")
    elif setup == "other":
        with pytest.raises(Interrupted):
            solve(**{**PROBLEM, "domain": (-4.0, -0.5)}, checkpoint=KilledAfter(ck, 2))
    before = ck.read_bytes() if ck.exists() else None
    code, _, err = _build(capsys, out, ck, *extra)
    assert code == 2 and msg in err and err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists()
    assert (ck.read_bytes() if ck.exists() else None) == before


@pytest.mark.parametrize(
    "field, value",
    [
        ("Dfh", np.zeros(5)),
        ("fargs", None),  # replaced below by an out-of-range index
        ("chunk", np.asarray(99)),
        ("done", np.asarray(7)),
        ("out", np.zeros(3)),
    ],
)
def test_a_damaged_state_with_the_right_key_is_refused(tmp_path, field, value):
    """The key is a hash anyone can compute: the arrays the kernels index are checked too."""
    path = tmp_path / "s.npz"
    with pytest.raises(Interrupted):
        solve(**PROBLEM, checkpoint=KilledAfter(path, 40))
    state = dict(np.load(path))
    if value is None:
        value = state[field].copy()
        value[0, 0] = 1 << 40
    state[field] = value
    with open(path, "wb") as fh:
        np.savez(fh, **state)
    with pytest.raises(CheckpointError, match="damaged"):
        solve(**PROBLEM, checkpoint=SolveCheckpoint(path))


def test_cli_progress_bar_of_a_resumed_solve_starts_where_it_stopped(tmp_path, capsys):
    """Its first line already shows the layers done before (the rate then counts this run)."""
    ck = tmp_path / "s.npz"
    with pytest.raises(Interrupted):
        solve(**PROBLEM, checkpoint=KilledAfter(ck, 2, layer_ends=True))
    code = main(
        ["table", "build", "silu", "-o", str(tmp_path / "t.json"), "--domain", "-4", "-0.25"]
        + ["--layout", "two-level:2:8", "--objective", "mean", "--lut-rounding"]
        + ["--checkpoint", str(ck)]
    )
    err = capsys.readouterr().err
    assert code == 0 and "2/4 layers" in err and "0/4 layers" not in err


def test_a_solve_without_coarse_passes_resumes_too(tmp_path):
    """On a domain too small for a thinned pass the exact pass runs alone: the checkpoint then
    records no coarse result (an empty integer array), and resuming still works."""
    small = {**PROBLEM, "domain": (-1.0, -0.75), "layout": "two-level:2:4"}  # 513 points
    ref = solve(**small, checkpoint=SolveCheckpoint(tmp_path / "ref.npz", every_s=0.0))
    path = tmp_path / "s.npz"
    with pytest.raises(Interrupted):
        solve(**small, checkpoint=KilledAfter(path, 5))
    assert np.load(path)["coarse_idx"].size == 0
    again = SolveCheckpoint(path)
    r = solve(**small, checkpoint=again)
    assert again.resumed and _same(r, ref)
