"""``rnnexp history``: listing, imports, steps per configuration and machine, and its bad input."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_store import make_sweep, quiet

import rnnexp
from conftest import run_cli
from rnnexp import schema, store
from rnnexp.review import changes, history

# --------------------------------------------------------------------------- the step finder


def noisy(rng: np.random.Generator, level: float, n: int = 8, sweep_sd: float = 0.03, block_sd: float = 0.02):
    """Per-call times of one sweep: a sweep-wide offset, block noise, and now and then a slow outlier block."""
    blocks = level * np.exp(rng.normal(0, sweep_sd) + rng.normal(0, block_sd, n))
    blocks[rng.random(n) < 0.05] *= 1.3
    return blocks


@pytest.mark.parametrize("seed", range(5))
def test_quiet_series_have_no_steps(seed: int) -> None:
    rng = np.random.default_rng(seed)
    assert changes.find_steps([noisy(rng, 1e-3) for _ in range(40)], ratio=1.2) == []


@pytest.mark.parametrize(("at", "factor", "verdict"), [(5, 2.0, "regression"), (12, 1.5, "regression"),
                                                       (3, 0.5, "faster"), (19, 1.6, "regression")])  # fmt: skip
def test_a_step_is_found_where_it_happened(at: int, factor: float, verdict: str) -> None:
    rng = np.random.default_rng(at)
    series = [noisy(rng, 1e-3 * (factor if i >= at else 1.0)) for i in range(20)]
    steps = changes.find_steps(series, ratio=1.2)
    assert [(s.index, s.verdict) for s in steps] == [(at, verdict)]
    assert steps[0].low <= factor * 1.08 and steps[0].high >= factor / 1.08  # the interval holds the true ratio
    assert steps[0].low < steps[0].ratio < steps[0].high


def test_up_and_back_down_are_two_steps_and_empty_sweeps_are_skipped() -> None:
    rng = np.random.default_rng(7)
    series = [noisy(rng, 1e-3 * (2.0 if 6 <= i < 10 else 1.0)) for i in range(15)]
    series[3] = np.empty(0)
    assert [(s.index, s.verdict) for s in changes.find_steps(series, ratio=1.2)] == [(6, "regression"), (10, "faster")]


def test_a_step_smaller_than_the_minimum_effect_is_not_one() -> None:
    rng = np.random.default_rng(3)
    series = [noisy(rng, 1e-3 * (1.1 if i >= 8 else 1.0), sweep_sd=0.005) for i in range(16)]
    assert changes.find_steps(series, ratio=1.2) == []
    assert [s.index for s in changes.find_steps(series, ratio=1.05)] == [8]


# --------------------------------------------------------------------------- the command


def day(i: int) -> str:
    return f"2026-01-{i + 1:02d}T00:00:00+00:00"


@pytest.fixture(scope="module")
def series_store(tmp_path_factory) -> Path:
    """Six sweeps on one machine (rnn 8 steps up 1.5x at sweep 4; lstm 16 2x slower in the newest, sweep 6)
    and two sweeps on a 3x slower machine, imported with ``rnnexp history add``."""
    tmp = tmp_path_factory.mktemp("history")
    dirs = []
    for i in range(6):
        rnn = quiet(8, 1e-3 * (1.5 if i >= 3 else 1.0), seed=i)
        lstm = quiet(8, 2e-3 * (2.0 if i == 5 else 1.0), seed=10 + i)
        dirs.append(make_sweep(tmp / f"s{i}", {("rnn", 8): rnn, ("lstm", 16): lstm}, created=day(i), commit=f"c{i}"))
    for i in range(2):
        slow = {("rnn", 8): quiet(8, 3e-3, seed=20 + i), ("lstm", 16): quiet(8, 6e-3, seed=30 + i)}
        dirs.append(make_sweep(tmp / f"o{i}", slow, created=day(i) + "1", cpu="Other CPU", cores=8))
    db = tmp / "h.duckdb"
    assert history.main(["add", *map(str, dirs), "--store", str(db)]) == 0
    return db


def test_history_lists_each_sweep_on_one_line(series_store: Path, capsys) -> None:
    assert history.main(["--store", str(series_store)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 + 8 and lines[0].split()[:5] == ["sweep_id", "started_utc", "commit", "machine", "rows"]
    assert "Test CPU, 4 cores" in lines[1] and "Other CPU, 8 cores" in "".join(lines)
    assert all("rnnexp -m hidden_size=8,16" in line for line in lines[1:])


def test_changes_finds_each_step_per_configuration_and_machine(series_store: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "changes.csv"
    assert history.main(["--changes", "--store", str(series_store), "--csv", str(out)]) == 1
    found = pd.read_csv(out)
    assert found[["cell", "hidden_size", "machine", "change"]].values.tolist() == [
        ["rnn", 8, "Test CPU, 4 cores", "slower"],
        ["lstm", 16, "Test CPU, 4 cores", "slower"],
    ]
    ids = dict(store.sweeps(series_store)[["started_utc", "sweep_id"]].values)
    assert found["sweep_id"].tolist() == [ids[day(3)], ids[day(5)]]
    assert found["ratio"].round(1).tolist() == [1.5, 2.0] and (found["ci_low"] < found["ratio"]).all()
    assert {"ci_high", "n_blocks_before", "n_blocks_after", "git_commit", "started_utc"} <= set(found.columns)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "newest sweep" in err[0] and "slower in 1 configuration" in err[0]


def test_changes_restricted_by_config_gates_only_on_what_it_shows(series_store: Path, capsys) -> None:
    assert history.main(["--changes", "--store", str(series_store), "--config", "cell=rnn", "hidden_size=8"]) == 0
    out = capsys.readouterr().out
    assert "slower" in out and "lstm" not in out


def test_a_faster_newest_sweep_does_not_fail(tmp_path: Path) -> None:
    dirs = [make_sweep(tmp_path / f"s{i}", {("gru", 4): quiet(8, 1e-3 / (3 if i == 4 else 1), seed=i)}, created=day(i))
            for i in range(5)]  # fmt: skip
    db = tmp_path / "h.duckdb"
    assert history.main(["add", *map(str, dirs), "--store", str(db)]) == 0
    out = tmp_path / "c.csv"
    assert history.main(["--changes", "--store", str(db), "--csv", str(out)]) == 0
    assert pd.read_csv(out)["change"].tolist() == ["faster"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--changes", "--config", "hiden_size=8"], "--config hiden_size=8: unknown key (did you mean hidden_size?)"),
        (["--changes", "--config", "cell"], "--config cell: expected KEY=VALUE"),
        (["--changes", "--metric", "h_std"], "--metric h_std: not a timing judged from samples"),
        (["--changes", "--ratio", "0.5"], "--ratio 0.5: must be a factor >= 1"),
        (["--changes", "--csv", "/no/such/dir/c.csv"], "--csv /no/such/dir/c.csv: not a writable file path"),
        (["--csv", "x.csv"], "go with --changes"),
    ],
)
def test_bad_options_are_one_line_and_exit_2(series_store: Path, tmp_path: Path, capsys, args, message) -> None:
    assert history.main([*args, "--store", str(series_store)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("rnnexp: error: ") and message in err[0]
    assert not list(tmp_path.iterdir())


def test_bad_stores_are_one_line_and_nothing_is_written(tmp_path: Path, capsys) -> None:
    (tmp_path / "notes.txt").write_text("not a store")
    for args in (["--store", str(tmp_path / "missing" / "h.duckdb")], ["--store", str(tmp_path / "notes.txt")],
                 ["--changes", "--store", str(tmp_path / "none.duckdb")]):  # fmt: skip
        assert history.main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    whys = ["no such directory", "not a rnnexp history store", "no such store"]
    assert len(err) == 3 and all(e.startswith("rnnexp: error: store ") for e in err)
    assert all(why in e for e, why in zip(err, whys, strict=True))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_add_refuses_a_dir_without_results_and_adds_nothing(tmp_path: Path, capsys) -> None:
    good = make_sweep(tmp_path / "good", {("rnn", 8): quiet()})
    empty = tmp_path / "empty"
    empty.mkdir()
    db = tmp_path / "h.duckdb"
    assert history.main(["add", str(good), str(empty), "--store", str(db)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "empty: no results" in err[0] and "nothing was added" in err[0]
    assert not db.exists()


def test_add_refuses_each_duplicate_in_one_line_and_adds_the_rest(tmp_path: Path, capsys) -> None:
    a, b = (make_sweep(tmp_path / n, {("rnn", 8): quiet(seed=i)}, created=day(i)) for i, n in enumerate("ab"))
    db = tmp_path / "h.duckdb"
    assert history.main(["add", str(a), "--store", str(db)]) == 0
    assert history.main(["add", str(a), str(b), "--store", str(db)]) == 1
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and "already in the store as sweep 1" in captured.err
    assert "added sweep 2" in captured.out
    assert rnnexp.history(db)["sweep_id"].tolist() == [1, 2]


def test_review_imports_neither_torch_nor_hydra() -> None:
    import subprocess

    code = "import sys, rnnexp.review.history, rnnexp.store\n"
    code += "print({m.split('.')[0] for m in sys.modules} & {'torch', 'hydra'})"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env={"PYTHONPATH": str(Path(__file__).resolve().parent.parent)})  # fmt: skip
    assert done.stdout.strip() == "set()"


def test_series_for_marks_each_step_on_its_sweep(series_store: Path) -> None:
    rows, samples = store.select(series_store, {"cell": "rnn"}, phases=("forward",))
    points = history.series_for(rows, samples)
    mine = points[points["machine"] == "Test CPU, 4 cores"]
    assert mine["change"].tolist() == ["", "", "", "slower", "", ""]
    assert (mine["q1_ms"] <= mine["median_ms"]).all() and (mine["median_ms"] <= mine["q3_ms"]).all()
    assert mine["median_ms"].iloc[-1] == pytest.approx(1.5, rel=0.05)


def test_the_report_hook_draws_the_series_of_the_reported_configurations(series_store: Path, tmp_path: Path) -> None:
    table = schema.read_table(series_store.parent / "s5" / "results.csv")
    assert [p.name for p in history.report_pngs(table, tmp_path, series_store)] == ["history.png"]
    assert (tmp_path / "history.png").stat().st_size > 0
    assert history.report_pngs(table, tmp_path / "none", tmp_path / "missing.duckdb") == []
    other = table.assign(hidden_size=pd.array([99, 98], dtype="Int64"))  # configurations the store never saw
    assert history.report_pngs(other, tmp_path / "none", series_store) == []


# --------------------------------------------------------------------------- the real CLI


@pytest.mark.slow
def test_finished_sweeps_go_to_the_default_store_and_store_null_to_none(tmp_path: Path) -> None:
    sweep = ["-m", "hidden_size=4,8", "timing=quick", "backend=numpy"]
    first = run_cli(sweep, tmp_path)
    assert first.returncode == 0, first.stderr
    assert "history: sweep 1 in " in first.stdout
    off = run_cli([*sweep, "store=null", "hydra.sweep.dir=off"], tmp_path)
    assert off.returncode == 0 and "history:" not in off.stdout
    assert rnnexp.history(tmp_path / "outputs" / "history.duckdb")["sweep_id"].tolist() == [1, 1]
    added = run_cli(["history", "add", "off"], tmp_path)  # a dir made with store=null, imported
    assert added.returncode == 0 and "added sweep 2" in added.stdout, added.stderr
    listed = run_cli(["history"], tmp_path)
    assert listed.returncode == 0 and len(listed.stdout.strip().splitlines()) == 3


@pytest.mark.slow
@pytest.mark.parametrize(
    ("store_arg", "why"),
    [("missing/h.duckdb", "no such directory"), ("other.duckdb", "not a rnnexp history store (no meta table)")],
)
def test_a_bad_store_stops_the_run_before_it_starts(tmp_path: Path, store_arg: str, why: str) -> None:
    import duckdb

    with duckdb.connect(str(tmp_path / "other.duckdb")) as con:  # a DuckDB file, but not a store
        con.execute("CREATE TABLE t (x INT)")
    bad = run_cli(["hidden_size=4", f"store={store_arg}"], tmp_path)
    err = bad.stderr.strip().splitlines()
    assert bad.returncode == 2 and len(err) == 1 and err[0].startswith("rnnexp: error: store ") and why in err[0]
    assert not (tmp_path / "outputs").exists()


def test_a_store_failing_at_the_end_is_one_warning(tmp_path: Path, capsys) -> None:
    from rnnexp import cli

    sweep = make_sweep(tmp_path / "s", {("rnn", 8): quiet()})
    (tmp_path / "h.duckdb").write_text("replaced by something else while the sweep ran")
    cli.add_to_history(tmp_path / "h.duckdb", sweep)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("rnnexp: warning: not added to the history store")
    assert "Traceback" in (sweep / "rnnexp.log").read_text()


@pytest.mark.slow
def test_the_benchmark_runs(tmp_path: Path) -> None:
    import json
    import subprocess

    script = Path(__file__).resolve().parent.parent / "benchmarks" / "history.py"
    done = subprocess.run([sys.executable, str(script), "--quick", "--json", str(tmp_path / "b.json")], cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads((tmp_path / "b.json").read_text())
    assert figures["append"]["rows"] == 200 and figures["query"]["rows_found"] == 20  # one configuration per sweep
    assert figures["query"]["samples_found"] == 200 and set(figures["alarms"]["false_alarms"]) == {
        "sweep_sd=0.01", "sweep_sd=0.03", "sweep_sd=0.06"}  # fmt: skip
