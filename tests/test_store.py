"""The history store: appends land whole or not at all, duplicates are refused, other files and versions refused."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import rnnexp
from rnnexp import manifest, schema, store, sweep_record

ROOT = Path(__file__).resolve().parent.parent


def make_sweep(
    folder: Path,
    times: dict[tuple[str, int], np.ndarray],
    created: str = "2026-01-01T00:00:00+00:00",
    cpu: str = "Test CPU",
    cores: int = 4,
    commit: str = "abc123",
    missing: int = 0,
) -> Path:
    """A sweep dir as rnnexp writes one: manifest, results.csv, samples.csv and env.json, without running jobs.

    ``times`` maps (cell, hidden_size) to the per-call seconds of its blocks; ``missing`` jobs have no row.
    """
    folder.mkdir(parents=True)
    rows, samples, jobs = [], [], []
    for num, ((cell, hidden), blocks) in enumerate(times.items()):
        config = {"cell": cell, "hidden_size": hidden, "backend": "numpy"}
        jobs.append(manifest.Job(num, [f"cell={cell}", f"hidden_size={hidden}"], config, str(num)))
        if num >= len(times) - missing:
            continue
        rows.append({**config, "status": "ok", "job_num": num, "time_median_ms": float(np.median(blocks)) * 1e3,
                     "n_blocks": len(blocks), "cpu_model": cpu, "git_commit": commit})  # fmt: skip
        samples += [{"job_num": num, "phase": "forward", "block": b, "block_size": 4, "block_time_s": 4 * t}
                    for b, t in enumerate(blocks)]  # fmt: skip
    record = manifest.Manifest("sweep", ["-m", f"hidden_size={','.join(str(h) for _, h in times)}"], jobs, created)
    record.write(folder)
    schema.conform_frame(pd.DataFrame(rows)).to_csv(folder / "results.csv", index=False)
    pd.DataFrame(samples).to_csv(folder / "samples.csv", index=False)
    env = {"cpu_model": cpu, "cores_usable": cores, "git_commit": commit, "git_dirty": False,
           "torch_version": "2.0", "numpy_version": "2.0", "start_time_utc": created, "hostname": "h"}  # fmt: skip
    (folder / "env.json").write_text(json.dumps(env))
    return folder


def quiet(n: int = 6, level: float = 1e-3, seed: int = 0) -> np.ndarray:
    return level * np.exp(np.random.default_rng(seed).normal(0, 0.01, n))


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    return make_sweep(tmp_path / "sweep", {("rnn", 8): quiet(), ("lstm", 16): quiet(seed=1)})


def test_append_keeps_rows_samples_and_metadata(tmp_path: Path, sweep: Path) -> None:
    db = tmp_path / "h.duckdb"
    added = store.append(db, sweep_record.read(sweep))
    assert (added.sweep_id, added.n_rows, added.replaced) == (1, 2, False)
    rows = rnnexp.history(db)
    assert list(rows.columns[:3]) == ["sweep_id", "machine", "started_utc"]
    assert rows["sweep_id"].tolist() == [1, 1] and rows["cell"].tolist() == ["rnn", "lstm"]
    assert str(rows["hidden_size"].dtype) == "Int64" and str(rows["time_median_ms"].dtype) == "float64"
    assert set(schema.names()) <= set(rows.columns)
    meta = store.sweeps(db).iloc[0]
    assert (meta["machine"], meta["git_commit"], meta["cores"]) == ("Test CPU, 4 cores", "abc123", 4)
    assert meta["command"].startswith("rnnexp -m hidden_size=") and meta["sweep_dir"] == str(sweep.resolve())
    _, samples = store.select(db, {"cell": "lstm"}, phases=("forward",))
    assert len(samples) == 6 and set(samples["job_num"]) == {1}


def test_a_second_sweep_gets_the_next_id_and_filters_compare_as_typed(tmp_path: Path, sweep: Path) -> None:
    db = tmp_path / "h.duckdb"
    store.append(db, sweep_record.read(sweep))
    other = make_sweep(tmp_path / "b", {("rnn", 8): quiet(seed=3)}, created="2026-01-02T00:00:00+00:00")
    assert store.append(db, sweep_record.read(other)).sweep_id == 2
    assert store.select(db, {"hidden_size": "8.0"})[0]["sweep_id"].tolist() == [1, 2]
    assert store.select(db, {"cell": "LSTM"})[0]["sweep_id"].tolist() == [1]
    like = pd.DataFrame({"cell": ["rnn"], "hidden_size": pd.array([8], dtype="Int64")})
    assert len(store.select(db, like=like)[0]) == 2


def test_the_same_sweep_is_refused_wherever_its_dir_was_copied(tmp_path: Path, sweep: Path) -> None:
    db = tmp_path / "h.duckdb"
    store.append(db, sweep_record.read(sweep))
    copy = tmp_path / "artifact" / "sweep"
    copy.parent.mkdir()
    sweep.rename(copy)
    with pytest.raises(store.Duplicate, match="already in the store as sweep 1"):
        store.append(db, sweep_record.read(copy))
    assert len(rnnexp.history(db)) == 2


def test_an_unfinished_sweep_is_replaced_by_its_finished_state(tmp_path: Path) -> None:
    times = {("rnn", 8): quiet(), ("rnn", 16): quiet(seed=1), ("rnn", 32): quiet(seed=2)}
    partial = make_sweep(tmp_path / "p", times, missing=2)
    db = tmp_path / "h.duckdb"
    store.append(db, sweep_record.read(partial))
    assert store.sweeps(db)["n_missing"].tolist() == [2]
    full = make_sweep(tmp_path / "f", times)
    (full / "manifest.json").write_text((partial / "manifest.json").read_text())  # the same sweep, finished
    added = store.append(db, sweep_record.read(full))
    assert (added.sweep_id, added.replaced) == (1, True)
    assert len(rnnexp.history(db)) == 3 and store.sweeps(db)["n_missing"].tolist() == [0]
    with pytest.raises(store.Duplicate):
        store.append(db, sweep_record.read(full))


def test_a_resume_that_turned_failed_rows_ok_replaces_them(tmp_path: Path, sweep: Path) -> None:
    text = (sweep / "results.csv").read_text()
    (sweep / "results.csv").write_text(text.replace(",ok,", ",error,", 1))
    db = tmp_path / "h.duckdb"
    store.append(db, sweep_record.read(sweep))
    (sweep / "results.csv").write_text(text)  # the resume re-ran the failed job
    assert store.append(db, sweep_record.read(sweep)).replaced
    assert rnnexp.history(db)["status"].tolist() == ["ok", "ok"]


def test_a_dir_made_before_manifests_is_keyed_by_its_table(tmp_path: Path, sweep: Path) -> None:
    (sweep / "manifest.json").unlink()
    db = tmp_path / "h.duckdb"
    store.append(db, sweep_record.read(sweep))
    with pytest.raises(store.Duplicate):
        store.append(db, sweep_record.read(sweep))


def test_undeclared_columns_are_kept_as_text(tmp_path: Path, sweep: Path) -> None:
    lines = (sweep / "results.csv").read_text().splitlines()
    extra = [",old_column", ",1.5", ",2.5"]
    (sweep / "results.csv").write_text("".join(line + cell + "\n" for line, cell in zip(lines, extra, strict=True)))
    db = tmp_path / "h.duckdb"
    store.append(db, sweep_record.read(sweep))
    assert rnnexp.history(db)["old_column"].tolist() == ["1.5", "2.5"]


@pytest.mark.parametrize(
    ("setup", "match"),
    [
        (lambda d: d / "missing" / "h.duckdb", "no such directory"),
        (lambda d: d, "is a directory"),
        (lambda d: (d / "notes.txt").write_text("hello") and d / "notes.txt", "not a DuckDB file"),
    ],
)
def test_bad_store_paths_are_refused_before_anything_is_written(tmp_path: Path, sweep: Path, setup, match) -> None:
    target = setup(tmp_path)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    with pytest.raises(store.StoreError, match=match) as caught:
        store.append(target, sweep_record.read(sweep))
    assert caught.value.code == 2
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_an_unwritable_dir_is_refused(tmp_path: Path, sweep: Path) -> None:
    locked = tmp_path / "ro"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(store.StoreError, match="not writable"):
            store.append(locked / "h.duckdb", sweep_record.read(sweep))
    finally:
        locked.chmod(0o700)
    assert not list(locked.iterdir())


def test_a_duckdb_file_that_is_not_a_store_is_refused(tmp_path: Path, sweep: Path) -> None:
    import duckdb

    other = tmp_path / "other.duckdb"
    with duckdb.connect(str(other)) as con:
        con.execute("CREATE TABLE t (x INT)")
    with pytest.raises(store.StoreError, match="not a rnnexp history store"):
        store.append(other, sweep_record.read(sweep))
    with pytest.raises(store.StoreError, match="not a rnnexp history store"):
        store.sweeps(other)


def _set_version(db: Path, version: int) -> None:
    import duckdb

    with duckdb.connect(str(db)) as con:
        con.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", [str(version)])


@pytest.mark.parametrize("version", [0, store.SCHEMA_VERSION + 1])
def test_a_store_of_another_schema_version_is_refused_in_one_line(tmp_path: Path, sweep: Path, version: int) -> None:
    db = tmp_path / "h.duckdb"
    store.append(db, sweep_record.read(sweep))
    _set_version(db, version)
    with pytest.raises(store.StoreError, match=f"schema version {version}; this rnnexp reads version") as caught:
        store.sweeps(db)
    assert "\n" not in str(caught.value)


def test_a_store_of_a_newer_version_is_refused_before_a_run_writes_anything(tmp_path: Path, sweep: Path) -> None:
    db = tmp_path / "h.duckdb"
    store.append(db, sweep_record.read(sweep))
    _set_version(db, store.SCHEMA_VERSION + 1)
    before = db.read_bytes()
    with pytest.raises(store.StoreError, match="a newer rnnexp wrote it") as caught:
        store.check_target(db)
    assert caught.value.code == 2 and db.read_bytes() == before


def test_an_older_store_is_migrated_when_a_step_exists(tmp_path: Path, sweep: Path, monkeypatch) -> None:
    db = tmp_path / "h.duckdb"
    store.append(db, sweep_record.read(sweep))
    _set_version(db, store.SCHEMA_VERSION - 1)
    step = lambda con: con.execute("UPDATE sweeps SET hostname = 'migrated'")  # noqa: E731
    monkeypatch.setitem(store.MIGRATIONS, store.SCHEMA_VERSION - 1, step)
    assert store.sweeps(db)["hostname"].tolist() == ["migrated"]
    monkeypatch.delitem(store.MIGRATIONS, store.SCHEMA_VERSION - 1)
    assert store.sweeps(db)["hostname"].tolist() == ["migrated"]  # migrated once, for good


def test_reading_a_missing_store_names_it(tmp_path: Path) -> None:
    with pytest.raises(store.StoreError, match="no such store"):
        rnnexp.history(tmp_path / "none.duckdb")
    assert not (tmp_path / "none.duckdb").exists()


APPEND = """
import sys
from rnnexp import store, sweep_record
store.append(sys.argv[1], sweep_record.read(sys.argv[2]))
"""


def _python(code: str, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip


@pytest.mark.slow
def test_concurrent_writers_both_land_whole(tmp_path: Path) -> None:
    db = tmp_path / "h.duckdb"
    dirs = [make_sweep(tmp_path / f"s{i}", {("rnn", h): quiet(seed=h + i) for h in range(1, 201)},
                       created=f"2026-01-0{i + 1}T00:00:00+00:00") for i in range(3)]  # fmt: skip
    procs = [_python(APPEND, str(db), str(d)) for d in dirs]
    for p in procs:
        assert p.wait(timeout=120) == 0, p.stderr.read()
    rows = rnnexp.history(db)
    assert sorted(rows.groupby("sweep_id").size().tolist()) == [200, 200, 200]
    assert sorted(store.sweeps(db)["sweep_id"]) == [1, 2, 3]


KILLED = """
import sys, time
from rnnexp import store, sweep_record
real = store._insert
def slow(con, table, frame, sweep_id):
    real(con, table, frame, sweep_id)
    if table == "rows":
        print("inserted", flush=True)
        time.sleep(60)
store._insert = slow
store.append(sys.argv[1], sweep_record.read(sys.argv[2]))
"""


@pytest.mark.slow
def test_a_writer_killed_mid_append_leaves_the_store_readable(tmp_path: Path) -> None:
    db = tmp_path / "h.duckdb"
    first = make_sweep(tmp_path / "a", {("rnn", 8): quiet()})
    store.append(db, sweep_record.read(first))
    big = make_sweep(tmp_path / "b", {("rnn", h): quiet(seed=h) for h in range(1, 501)}, created="2026-01-02T00:00:00Z")
    proc = _python(KILLED, str(db), str(big))
    assert proc.stdout.readline().strip() == "inserted", proc.stderr.read()
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert rnnexp.history(db)["sweep_id"].tolist() == [1]  # nothing of the killed append
    third = make_sweep(tmp_path / "c", {("rnn", 8): quiet(seed=9)}, created="2026-01-03T00:00:00Z")
    assert store.append(db, sweep_record.read(third)).sweep_id == 2
    assert store.append(db, sweep_record.read(big)).sweep_id == 3  # the killed sweep, again, lands whole
    assert rnnexp.history(db).groupby("sweep_id").size().tolist() == [1, 1, 500]
