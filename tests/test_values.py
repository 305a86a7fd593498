"""Every value gets its row, once: non-finite floats and wide integers through the manifest and the row;
integer bounds; a lock release and a job log that survive an unwritable disk."""

from __future__ import annotations

import dataclasses
import errno
import io
import json
import logging
import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rnnexp import dirlock, logs, results
from rnnexp import manifest as mf
from rnnexp.config import (
    INT64_MAX,
    INT_RANGES,
    Cell,
    ConfigError,
    RunConfig,
    TimingConfig,
    as_flat_dict,
    check_values,
    from_flat_dict,
)
from rnnexp.validation import validate

FLOATS = [math.nan, math.inf, -math.inf, 1e-320, 1e308, -0.0, 0.1, 5e-324, 1 / 3]


def job_of(num: int, **config) -> mf.Job:
    return mf.Job(num, [f"{k}={v}" for k, v in config.items()], as_flat_dict(RunConfig(**config)), str(num))


def write_job_row(root: Path, job: mf.Job, status: str = "ok") -> None:
    row = {**job.config, "job_num": job.num, "status": status, "error": "" if status == "ok" else "ConfigError: x"}
    results.write_row(row, root / job.dir)


# --- the manifest and the row agree on every float ----------------------------------------------


@pytest.mark.parametrize("value", FLOATS, ids=repr)
def test_a_float_config_round_trips_through_manifest_and_row(tmp_path, value):
    job = job_of(0, init_gain=value, input_scale=value)
    mf.Manifest("sweep", ["-m", f"init_gain={value}"], [job]).write(tmp_path)
    text = (tmp_path / mf.MANIFEST).read_text()
    json.loads(text, parse_constant=lambda token: pytest.fail(f"non-standard JSON token {token}"))

    loaded = mf.load(tmp_path)
    got = loaded.jobs[0].config["init_gain"]
    same_sign = math.copysign(1, got) == math.copysign(1, value)  # -0.0 stays -0.0
    assert (math.isnan(got) and math.isnan(value)) or (got == value and same_sign)
    write_job_row(tmp_path, job)
    assert mf.job_row(loaded, tmp_path, loaded.jobs[0]) is not None  # the row is the job's own
    assert mf.pending(loaded, tmp_path) == []


def test_non_finite_floats_have_a_declared_json_form(tmp_path):
    mf.Manifest("sweep", [], [job_of(0, init_gain=math.nan, input_scale=math.inf)]).write(tmp_path)
    config = json.loads((tmp_path / mf.MANIFEST).read_text())["jobs"][0]["config"]
    assert config["init_gain"] == {"float": "nan"} and config["input_scale"] == {"float": "inf"}
    assert mf.encode([-math.inf, {"a": math.nan}]) == [{"float": "-inf"}, {"a": {"float": "nan"}}]


def test_a_manifest_with_bare_nan_tokens_still_loads(tmp_path):
    # written by rnnexp before the declared form: json.dumps's NaN and Infinity
    job = job_of(0, init_gain=math.nan)
    record = dataclasses.asdict(mf.Manifest("sweep", [], [job]))
    (tmp_path / mf.MANIFEST).write_text(json.dumps(record))
    assert "NaN" in (tmp_path / mf.MANIFEST).read_text()
    assert math.isnan(mf.load(tmp_path).jobs[0].config["init_gain"])


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_same_matches_a_float_to_its_own_cell_only(value):
    cell = "" if math.isnan(value) else str(value)  # how results.write_row writes it
    assert mf.same(value, cell)
    assert not mf.same(value, "abc")
    if math.isnan(value):
        assert mf.same(value, "nan") and not mf.same(value, "0")
    else:
        assert not mf.same(value, "nan") and not mf.same(value, "")
        other = 1.0 if value != 1.0 else 2.0
        assert not mf.same(value, str(other))


@given(st.integers(min_value=-(2**70), max_value=2**70))
def test_same_matches_an_int_exactly(value):
    assert mf.same(value, str(value))
    assert not mf.same(value, str(value + 1))  # 2**63 and 2**63 + 1 are one float, not one int
    assert not mf.same(value, "")


def test_a_nan_row_written_empty_belongs(tmp_path):
    job = job_of(0, init_gain=math.nan)
    write_job_row(tmp_path, job, status="error")
    row = mf.read_row(tmp_path / "0" / results.ROW_FILE)
    assert row["init_gain"] == ""  # a CSV's NaN, as pandas writes and reads it
    assert mf.belongs(row, job)
    assert not mf.belongs(row, job_of(0, init_gain=0.5))


def test_a_lost_jobs_row_spells_its_values_as_a_jobs_own_row(tmp_path):
    # a NaN cell is empty in both, so the gathered table has one spelling that its readers parse
    job = job_of(0, init_gain=math.nan, input_scale=math.inf)
    write_job_row(tmp_path, job, status="error")
    own = mf.read_row(tmp_path / "0" / results.ROW_FILE)
    lost = results.lost_row(job, {"state": "CANCELLED"})
    assert {k: lost[k] for k in job.config} == {k: own[k] for k in job.config}
    assert mf.belongs(lost, job)


def test_a_refused_config_is_not_pending_but_a_failed_run_is(tmp_path):
    refused, failed, missing = job_of(0, init_gain=math.nan), job_of(1, hidden_size=4), job_of(2, hidden_size=5)
    record = mf.Manifest("sweep", [], [refused, failed, missing])
    record.write(tmp_path)
    write_job_row(tmp_path, refused, status="error")
    write_job_row(tmp_path, failed, status="error")  # a job that could succeed when run again
    assert [j.num for j in mf.pending(mf.load(tmp_path), tmp_path)] == [1, 2]
    assert mf.refused(refused) and not mf.refused(failed)
    garbled = mf.Job(3, [], {**failed.config, "init_gain": "abc"}, "3")
    assert not mf.refused(garbled)  # run, so that its plan names the bad value


def test_from_flat_dict_inverts_as_flat_dict():
    cfg = RunConfig(cell=Cell.lstm, proj_size=3, init_gain=2.5, seed=7, timing=TimingConfig(warmup=4))
    assert from_flat_dict(as_flat_dict(cfg)) == cfg
    assert from_flat_dict({**as_flat_dict(cfg), "unknown": 1}) is None
    assert from_flat_dict({**as_flat_dict(cfg), "cell": "transformer"}) is None


# --- integers bounded where the config is validated --------------------------------------------


@pytest.mark.parametrize(
    ("key", "value", "says"),
    [
        ("seed", 99999999999999999999999, "must be an integer >= 0 and <= 9223372036854775807"),
        ("seed", 2**63, "<= 9223372036854775807"),
        ("seed", -1, "must be an integer >= 0"),
        ("hidden_size", -5, "must be a positive integer (>= 1)"),
        ("layers", 0, "must be a positive integer (>= 1)"),
        ("layers", 2**64, "must be a positive integer (>= 1) and <= 9223372036854775807"),
        ("timesteps", -(2**70), "must be a positive integer (>= 1)"),
        ("lyapunov_warmup", -1, "must be an integer >= 0"),
        ("timing.warmup", 10**6, "must be an integer >= 0 and <= 1000"),
        ("timing.min_blocks", 0, "must be a positive integer (>= 1) and <= 1000"),
        ("timing.max_run_time_s", math.inf, "positive finite"),
        ("timing.noisy_frac", math.nan, ">= 0 and finite"),
        ("input_scale", -math.inf, "positive finite"),
    ],
)
def test_out_of_range_values_are_refused_in_one_line(key, value, says):
    owner, _, name = key.rpartition(".")
    cfg = RunConfig(timing=TimingConfig(**{name: value})) if owner else RunConfig(**{key: value})
    with pytest.raises(ConfigError) as caught:
        check_values(cfg)
    assert caught.value.key == key and says in str(caught.value)
    assert str(caught.value).startswith(f"{key}={value}: ") and "\n" not in str(caught.value)


@pytest.mark.parametrize("key", sorted(INT_RANGES))
def test_every_int_key_accepts_its_bounds(key):
    lo, hi = INT_RANGES[key]
    owner, _, name = key.rpartition(".")
    for value in (lo, min(hi, 64)):
        cfg = RunConfig(timing=TimingConfig(**{name: value})) if owner else RunConfig(**{key: value})
        if key == "proj_size" and value:
            cfg = dataclasses.replace(cfg, cell=Cell.lstm, hidden_size=value + 1)
        if key == "lyapunov_warmup":
            cfg = dataclasses.replace(cfg, timesteps=value + 1)
        check_values(cfg)


def test_the_largest_seed_runs_through_validate():
    validate(RunConfig(seed=INT64_MAX, backend="numpy"))


def test_an_int_no_table_can_hold_is_refused_when_flattened():
    # a sweep's plan flattens every job before any runs: such a value never reaches a row
    with pytest.raises(ConfigError, match=r"^seed=99999999999999999999999: must be an integer >= 0 and <="):
        as_flat_dict(RunConfig(seed=99999999999999999999999))
    assert as_flat_dict(RunConfig(seed=-1))["seed"] == -1  # in int64: an error row holds it


# --- the lock's release on a root gone read-only or away ----------------------------------------


@pytest.mark.parametrize("error", [PermissionError(errno.EACCES, "Permission denied"), OSError(errno.EROFS, "ro")])
def test_lock_release_survives_an_unwritable_root(tmp_path, monkeypatch, caplog, error):
    lock = dirlock.DirLock(tmp_path, "rnnexp test")
    with caplog.at_level(logging.WARNING, logger="rnnexp.dirlock"):
        with lock:
            monkeypatch.setattr(Path, "unlink", lambda self, missing_ok=False: (_ for _ in ()).throw(error))
        assert not lock.lock.is_locked
    monkeypatch.undo()
    assert (tmp_path / dirlock.HOLDER).exists()  # left for the next run to clear
    assert [r.getMessage().count("\n") for r in caplog.records] == [0]
    assert "could not remove the lock files" in caplog.records[0].getMessage()
    with dirlock.DirLock(tmp_path, "next run") as again:  # the next run takes the stale lock over
        assert "next run" in dirlock.holder(tmp_path)
    assert again.release() is True
    assert not (tmp_path / dirlock.HOLDER).exists() and not (tmp_path / dirlock.LOCK).exists()


def test_lock_release_survives_a_vanished_root(tmp_path):
    import shutil

    root = tmp_path / "sweep"
    root.mkdir()
    lock = dirlock.DirLock(root, "rnnexp test")
    with lock:
        shutil.rmtree(root)
    assert not lock.lock.is_locked


def test_a_clean_release_removes_both_files(tmp_path):
    with dirlock.DirLock(tmp_path, "rnnexp test") as lock:
        assert (tmp_path / dirlock.HOLDER).exists()
    assert not (tmp_path / dirlock.HOLDER).exists() and not (tmp_path / dirlock.LOCK).exists()
    assert not lock.lock.is_locked


# --- a job log on a full disk ------------------------------------------------------------------


class FullDisk(io.StringIO):
    def write(self, text: str) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_costs_the_log_one_line(tmp_path, capsys):
    handler = logs.QuietFileHandler(tmp_path / "job.log", delay=True)
    handler.stream = FullDisk()
    logger = logging.getLogger("rnnexp.test_values.full")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        for n in range(5):
            logger.warning("record %d", n)
        handler.flush()
    finally:
        logger.removeHandler(handler)
        handler.stream = None
        handler.close()
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Logging error" not in err and "Traceback" not in err
    assert err.startswith("rnnexp: warning: cannot write the log ") and "No space left on device" in err


def test_a_log_that_cannot_be_opened_costs_one_line(tmp_path, capsys):
    handler = logs.QuietFileHandler(tmp_path / "gone" / "job.log", delay=True)  # no such dir: open fails
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello", None, None)
    handler.handle(record)
    handler.handle(record)
    handler.close()
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "No such file or directory" in err


def test_a_writable_log_gets_every_record(tmp_path, capsys):
    handler = logs.QuietFileHandler(tmp_path / "job.log", delay=True)
    for n in range(3):
        handler.handle(logging.LogRecord("x", logging.INFO, __file__, 1, "line %d", (n,), None))
    handler.close()
    assert (tmp_path / "job.log").read_text().splitlines() == ["line 0", "line 1", "line 2"]
    assert capsys.readouterr().err == ""


def test_a_bad_format_argument_is_still_reported(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(logging, "raiseExceptions", True)
    handler = logs.QuietFileHandler(tmp_path / "job.log", delay=True)
    handler.handle(logging.LogRecord("x", logging.INFO, __file__, 1, "%d", ("not a number",), None))
    handler.close()
    assert "Logging error" in capsys.readouterr().err  # a bug, not a disk: logging's own report


def test_the_job_logging_config_uses_the_quiet_handler():
    import yaml

    conf = Path(__file__).resolve().parents[1] / "conf" / "hydra" / "job_logging" / "rnnexp.yaml"
    handlers = yaml.safe_load(conf.read_text())["handlers"]
    assert handlers["file"]["class"] == "rnnexp.logs.QuietFileHandler"


# --- the real CLI: a NaN job is an error row, and a resume has nothing left to do ----------------


@pytest.mark.slow
def test_a_nan_sweep_ends_with_every_row_and_resume_runs_nothing(tmp_path):
    from conftest import run_cli

    root = tmp_path / "sweep"
    args = ["-m", "init_gain=nan,0.5", "input_scale=1,inf", "timesteps=3", "hidden_size=3", "timing=quick"]
    first = run_cli([*args, f"hydra.sweep.dir={root}"], tmp_path)
    assert first.returncode == 1, first.stderr
    assert "have no row" not in first.stderr and "Traceback" not in first.stderr + first.stdout
    table = (root / "results.csv").read_text().splitlines()
    assert len(table) == 5  # a header and one row per job
    again = run_cli(["resume", str(root)], tmp_path)
    assert again.returncode == 1, again.stderr  # the failed job is reported again, not run again
    assert "Launching" not in again.stdout + again.stderr and "have no row" not in again.stderr
    assert (root / "results.csv").read_text().splitlines() == table
