"""A sweep dir you can trust: one sweep per dir, one writer, clean interruption, one line per failure.

Each case runs the real CLI in a subprocess, as a user would, and first reproduces what went wrong
before (issue "Sweeps you can trust").
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from conftest import ROOT, interruptible_cli

pytestmark = pytest.mark.slow
QUICK = ["timing=quick", "backend=numpy"]
SLOW = ["backend=numpy", "timing=quick", "timing.min_run_time_s=0.3", "timing.max_run_time_s=1"]  # ~0.4 s a job
# Columns that depend only on config and seed (not on timing, the machine or the run).
SAME = ["job_num", "overrides", "command", "status", "output_shape", "h_n_shape", "shape_ok", "h_mean", "h_std",
        "h_saturation_frac", "max_abs_err_vs_ref"]  # fmt: skip


def env_with(extra_path: Path | None = None) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(p) for p in (extra_path, ROOT) if p)}
    env.pop("HYDRA_FULL_ERROR", None)
    return env


def cli(args: list[str], cwd: Path, extra_path: Path | None = None, timeout: float = 600):
    return subprocess.run(
        [sys.executable, "-m", "rnnexp", *args], cwd=cwd, env=env_with(extra_path),
        capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def start(args: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        interruptible_cli(*args), cwd=cwd, env=env_with(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def one_error_line(proc) -> str:
    lines = proc.stderr.strip().splitlines()
    assert "Traceback" not in proc.stderr and len(lines) == 1, proc.stderr
    assert lines[0].startswith("rnnexp: error: ")
    return lines[0]


def table(folder: Path) -> pd.DataFrame:
    return pd.read_csv(folder / "results.csv")


def wait_for(path_glob: tuple[Path, str], count: int, timeout: float = 300) -> None:
    folder, pattern = path_glob
    deadline = time.time() + timeout
    while len(list(folder.glob(pattern))) < count:
        assert time.time() < deadline, f"{count} x {pattern} never appeared under {folder}"
        time.sleep(0.05)


def test_a_second_sweep_into_a_dir_is_refused(tmp_path):
    sweep = tmp_path / "X"
    assert cli(["-m", "hidden_size=8,16,24,32", *QUICK, f"hydra.sweep.dir={sweep}"], tmp_path).returncode == 0
    before = (sweep / "results.csv").read_bytes()
    proc = cli(["-m", "cell=lstm,gru", *QUICK, f"hydra.sweep.dir={sweep}"], tmp_path)
    assert proc.returncode == 2
    assert "holds a run or sweep already" in one_error_line(proc) and f"rnnexp resume {sweep}" in proc.stderr
    assert (sweep / "results.csv").read_bytes() == before  # nothing of the refused sweep was written
    assert len(table(sweep)) == 4 and set(table(sweep).cell) == {"rnn"}


def test_a_row_that_is_not_the_jobs_never_enters_the_table(tmp_path):
    sweep = tmp_path / "X"
    assert cli(["-m", "hidden_size=8,16", *QUICK, f"hydra.sweep.dir={sweep}"], tmp_path).returncode == 0
    other = tmp_path / "other"
    assert cli(["cell=gru", *QUICK, f"hydra.run.dir={other}"], tmp_path).returncode == 0
    shutil.copy(other / "results.csv", sweep / "1" / "results.csv")  # another config's row in job 1's dir
    (sweep / "7").mkdir()
    shutil.copy(other / "results.csv", sweep / "7" / "results.csv")  # a dir that is no job of this sweep
    proc = cli(["resume", str(sweep)], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Launching 1 jobs" in proc.stdout and "#1 : hidden_size=16" in proc.stdout  # job 1 ran again
    final = table(sweep)
    assert list(final.job_num) == [0, 1] and set(final.cell) == {"rnn"} and list(final.hidden_size) == [8, 16]


def test_resume_refuses_an_override_that_changes_what_a_job_computes(tmp_path):
    sweep = tmp_path / "X"
    assert cli(["-m", "+experiment=tutorial", "timing=quick", f"hydra.sweep.dir={sweep}"], tmp_path).returncode == 0
    multirun = (sweep / "multirun.yaml").read_bytes()
    for num in (5, 6, 7):
        (sweep / str(num) / "results.csv").unlink()
    for extra in (["hidden_size=12"], ["timing=default"], ["+init_gain=2"], ["hydra.sweep.subdir=x"]):
        proc = cli(["resume", str(sweep), *extra], tmp_path)
        assert proc.returncode == 2, extra
        assert "a resume runs the recorded jobs as they were" in one_error_line(proc)
    assert (sweep / "multirun.yaml").read_bytes() == multirun  # untouched by the refused resumes
    proc = cli(["resume", str(sweep), "hydra/launcher=basic"], tmp_path)  # how jobs run: allowed
    assert proc.returncode == 0, proc.stderr
    final = table(sweep)
    assert list(final.job_num) == list(range(8)) and set(final.hidden_size) == {8}


def test_a_nested_subdir_keeps_the_table(tmp_path):
    sweep = tmp_path / "X"
    subdir = "hydra.sweep.subdir=jobs/${hydra.job.num}"
    proc = cli(["-m", "hidden_size=8,16", *QUICK, f"hydra.sweep.dir={sweep}", subdir], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert list(table(sweep).hidden_size) == [8, 16] and (sweep / "jobs" / "1" / "results.csv").is_file()
    assert (sweep / "steps.csv").is_file() and "(no rows)" not in proc.stdout


@pytest.mark.parametrize("name", ["with space", "naïve é", "a,b"])
def test_resume_works_for_any_path(tmp_path, name):
    sweep = tmp_path / name / "sweep"
    proc = cli(["-m", "hidden_size=8,16", *QUICK, f"hydra.sweep.dir='{sweep}'"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    (sweep / "1" / "results.csv").unlink()
    proc = cli(["resume", str(sweep)], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert list(table(sweep).hidden_size) == [8, 16]


@pytest.mark.parametrize("sig, code, word", [(signal.SIGINT, 130, "interrupted (SIGINT)"),
                                             (signal.SIGTERM, 143, "terminated (SIGTERM)")])  # fmt: skip
def test_interruption_keeps_finished_rows_and_resume_completes(tmp_path, sig, code, word):
    args = ["-m", "seed=range(5)", *SLOW]
    sweep = tmp_path / "with space"
    proc = start([*args, f"hydra.sweep.dir='{sweep}'"], tmp_path)
    wait_for((sweep, "*/results.csv"), 2)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == code, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"rnnexp: error: {word}: ") and "of 5 jobs finished" in last
    assert last.endswith(f"to finish the rest: rnnexp resume '{sweep}'")
    partial = table(sweep)
    assert 2 <= len(partial) < 5 and (partial.status == "ok").all()
    assert not list(sweep.rglob("*.tmp")) and not list(sweep.rglob("*.lock"))

    resumed = cli(["resume", str(sweep)], tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    whole = tmp_path / "whole"
    assert cli([*args, f"hydra.sweep.dir={whole}"], tmp_path).returncode == 0
    pd.testing.assert_frame_equal(table(sweep)[SAME], table(whole)[SAME])


def test_a_closed_stdout_is_not_an_error(tmp_path):
    sweep = tmp_path / "X"
    proc = start(["-m", "seed=range(3)", *QUICK, f"hydra.sweep.dir={sweep}"], tmp_path)
    proc.stdout.readline()
    proc.stdout.close()  # like `| head -1`
    err = proc.stderr.read()
    assert proc.wait(timeout=300) == 0, err
    assert "Logging error" not in err and "BrokenPipe" not in err and "Traceback" not in err
    assert len(table(sweep)) == 3

    report = subprocess.Popen(
        [sys.executable, "-m", "rnnexp", "report", str(sweep)], cwd=tmp_path, env=env_with(),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    report.stdout.readline()
    report.stdout.close()
    err = report.stderr.read()
    assert report.wait(timeout=300) == 0, err
    assert "BrokenPipe" not in err and (sweep / "report.md").is_file()


@pytest.mark.parametrize(
    "args, says",
    [
        (["-m", "hidden_size=range(8,4)"], "hidden_size=range(8,4): this sweep has no values"),
        (["-m", "init_gain=interval(0.5,2.0)"], "init_gain=interval(0.5,2.0): only list, range and choice sweeps"),
        (["-m", "hidden_size=range(8,9,0)"], "hidden_size=range(8,9,0): range() arg 3 must not be zero"),
        (["hydra.run.dir=README.md/x"], "output dir"),
        (["hydra.run.dir=/proc/x"], "output dir /proc/x"),
        (["--dry-run", "--config-dir", "/nonexistent", "-m", "+experiment=mine"], "--config-dir=/nonexistent"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, says):
    shutil.copy(ROOT / "README.md", tmp_path / "README.md")
    proc = cli(args, tmp_path)
    assert proc.returncode == 2
    assert says in one_error_line(proc)
    assert not (tmp_path / "outputs").exists()


def test_dry_run_with_a_config_dir_preset(tmp_path):
    (tmp_path / "presets" / "experiment").mkdir(parents=True)
    (tmp_path / "presets" / "experiment" / "mine.yaml").write_text(
        "# @package _global_\nhidden_size: 5\nhydra:\n  sweeper:\n    params:\n      seed: 1,2,3\n"
    )
    proc = cli(["--dry-run", "--config-dir", "presets", "-m", "+experiment=mine"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "3 jobs into sweep dir" in proc.stdout and "#2: python -m rnnexp seed=3 +experiment=mine" in proc.stdout


@pytest.mark.parametrize("argv", [["hydra.mode=MULTIRUN", "hidden_size=8,16"], ["-m", "hidden_size=8,16"]])
def test_dry_run_counts_every_spelling_of_multirun(tmp_path, argv):
    proc = cli(["--dry-run", *argv], tmp_path)
    assert proc.returncode == 0 and "2 jobs into sweep dir" in proc.stdout


def _mount_tmpfs(where: Path, options: str) -> bool:
    where.mkdir()
    if shutil.which("mount") is None:
        return False
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True)
    return done.returncode == 0


@pytest.fixture
def tmpfs(tmp_path):
    mounted = []

    def make(name: str, options: str) -> Path:
        where = tmp_path / name
        if not _mount_tmpfs(where, options):
            if os.environ.get("CI") == "true":
                pytest.fail("CI runs as root and must be able to mount a tmpfs")
            pytest.skip("cannot mount a tmpfs here (needs root); the mocked ENOSPC case covers a full disk")
        mounted.append(where)
        return where

    yield make
    for where in mounted:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def test_a_read_only_file_system_is_one_line(tmp_path, tmpfs):
    ro = tmpfs("ro", "ro,size=1m")
    proc = cli(["backend=numpy", f"hydra.run.dir={ro}/run"], tmp_path)
    assert proc.returncode == 2 and "Read-only file system" in one_error_line(proc)


def test_a_full_disk_is_one_line_and_leaves_no_half_file(tmp_path, tmpfs):
    disk = tmpfs("full", "size=64k")
    proc = cli(["-m", "seed=range(40)", "hidden_size=64", *QUICK, f"hydra.sweep.dir={disk}/s"], tmp_path)
    assert proc.returncode == 1
    assert "No space left on device" in proc.stderr and "Traceback" not in proc.stderr
    assert not [p for p in disk.rglob("*") if p.is_file() and p.stat().st_size == 0 and p.suffix != ".log"]
    assert not list(disk.rglob("*.tmp"))


FULL_AT_JOB_2 = """
import errno
from pathlib import Path
import rnnexp.fileio as fileio
_write = fileio.write_atomic
def write_atomic(path, write, newline="", **kw):
    if Path(path).parent.name == "2":
        raise OSError(errno.ENOSPC, "No space left on device", str(path))
    return _write(path, write, newline, **kw)
fileio.write_atomic = write_atomic
"""


def test_a_full_disk_mid_sweep_keeps_earlier_rows(tmp_path):
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(FULL_AT_JOB_2)
    sweep = tmp_path / "X"
    proc = cli(["-m", "seed=range(4)", *QUICK, f"hydra.sweep.dir={sweep}"], tmp_path, extra_path=hook)
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert "No space left on device" in last and "2 of 4 jobs finished" in last and "rnnexp resume" in last
    assert "Traceback" not in proc.stderr
    assert list(table(sweep).job_num) == [0, 1]
    assert not (sweep / "2" / "results.csv").exists() and not list(sweep.rglob("*.tmp"))


def test_hydra_job_chdir_keeps_sweep_files_at_the_root(tmp_path):
    proc = cli(
        ["-m", "hidden_size=8,16", "timing=quick", "hydra.job.chdir=true", "hydra.sweep.dir=rel/sweep"], tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    sweep = tmp_path / "rel" / "sweep"
    assert len(list(sweep.glob("gemm_peak_*float32_1t.json"))) == 1  # measured once, at the sweep's root
    assert not list(sweep.glob("*/gemm_peak_*")) and not list(sweep.glob("*/rel"))
    import json

    assert len(json.loads((sweep / "env.json").read_text())["gemm_peaks"]) == 1
    assert table(sweep).peak_gflops.nunique() == 1


def test_one_writer_per_dir(tmp_path):
    sweep = tmp_path / "X"
    slow = ["-m", "seed=range(4)", *SLOW]
    first = start([*slow, f"hydra.sweep.dir={sweep}"], tmp_path)
    wait_for((sweep, "manifest.json"), 1)
    again = cli([*slow, f"hydra.sweep.dir={sweep}"], tmp_path)  # a second sweep into the same dir, meanwhile
    resume = cli(["resume", str(sweep)], tmp_path)  # and a resume of it
    out, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    for proc in (again, resume):
        assert proc.returncode == 1
        line = one_error_line(proc)
        assert f"is in use by pid {first.pid}" in line
    assert list(table(sweep).job_num) == [0, 1, 2, 3]
    assert not list(sweep.glob(".rnnexp.lock*"))


def test_a_stale_lock_and_temp_files_of_a_killed_run_are_taken_over(tmp_path):
    sweep = tmp_path / "X"
    proc = start(["-m", "seed=range(6)", *SLOW, f"hydra.sweep.dir={sweep}"], tmp_path)
    wait_for((sweep, "*/results.csv"), 1)
    proc.kill()
    proc.wait()
    (sweep / "0" / ".steps.csv.12345.rnnexp.tmp").write_text("half a tab")  # what a kill mid-write leaves
    theirs = [sweep / ".notes.tmp", sweep / "mine" / ".draft.99.tmp"]  # not rnnexp's names or dirs: kept
    theirs += [sweep / "0" / ".notes.123.tmp", sweep / ".steps.csv.1.tmp"]  # a temp's shape, not rnnexp's mark
    theirs[1].parent.mkdir()
    for path in theirs:
        path.write_text("a user's file")
    assert (sweep / ".rnnexp.lock").exists()
    resumed = cli(["resume", str(sweep)], tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert sorted(sweep.rglob("*.tmp")) == sorted(theirs) and not list(sweep.glob(".rnnexp.lock*"))
    assert list(table(sweep).job_num) == list(range(6))


def test_files_follow_the_umask_and_nothing_is_left_behind(tmp_path):
    sweep = tmp_path / "X"
    done = subprocess.run(
        f"umask 022 && {sys.executable} -m rnnexp -m hidden_size=8,16 timing=quick hydra.sweep.dir={sweep}",
        shell=True, cwd=tmp_path, env=env_with(), capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    files = [p for p in sweep.rglob("*") if p.is_file()]
    assert {oct(p.stat().st_mode & 0o777) for p in files} == {"0o644"}
    assert not [p for p in files if p.suffix in (".lock", ".tmp") or p.name.startswith(".rnnexp")]


BOOM = """
import rnnexp.backends.numpy_ref as ref
def run(*args, **kwargs):
    raise RuntimeError("boom inside the forward")
ref.run = run
"""


def test_a_jobs_unexpected_exception_keeps_its_traceback_in_its_log(tmp_path):
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(BOOM)
    proc = cli(["backend=numpy", "timing=quick", f"hydra.run.dir={tmp_path / 'run'}"], tmp_path, extra_path=hook)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr + proc.stdout
    row = table(tmp_path / "run").iloc[0]
    assert row.status == "error" and row.error == "RuntimeError: boom inside the forward"
    log = (tmp_path / "run" / "rnnexp.log").read_text()
    assert "Traceback (most recent call last)" in log and "RuntimeError: boom inside the forward" in log


OUTSIDE = """
import rnnexp.schema as schema
conform = schema.conform
def failing(row):
    if row.get("job_num") == 1:
        raise RuntimeError("a bug around the run")
    return conform(row)
schema.conform = failing
"""


def test_a_job_failing_outside_its_run_is_one_line_and_no_row(tmp_path):
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(OUTSIDE)
    sweep = tmp_path / "X"
    proc = cli(["-m", "seed=range(3)", *QUICK, f"hydra.sweep.dir={sweep}"], tmp_path, extra_path=hook)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr + proc.stdout
    said = [line for line in proc.stdout.splitlines() if "failed outside its own run" in line]
    assert len(said) == 1 and "seed=1" in said[0] and "RuntimeError: a bug around the run" in said[0]
    assert str(sweep / "1" / "rnnexp.log") in said[0]
    assert "1 of 3 jobs have no row" in proc.stderr and "rnnexp resume" in proc.stderr
    assert list(table(sweep).job_num) == [0, 2]
    log = (sweep / "1" / "rnnexp.log").read_text()
    assert "Traceback (most recent call last)" in log and "RuntimeError: a bug around the run" in log


def test_warnings_go_to_the_jobs_log_not_the_terminal(tmp_path):
    run = tmp_path / "run"
    proc = cli(["backend=numpy", "nonlinearity=relu", "init=uniform01", "init_gain=50", "timesteps=300",
                "timing=quick", f"hydra.run.dir={run}"], tmp_path)  # fmt: skip
    assert "RuntimeWarning" not in proc.stderr + proc.stdout
    log = (run / "rnnexp.log").read_text()
    assert "RuntimeWarning: overflow encountered" in log and "rnn/numpy" in log  # its warnings and its summary


def test_help_version_and_subcommand_help(tmp_path):
    helped = cli(["--help"], tmp_path)
    assert helped.returncode == 0
    head = helped.stdout.split("== Configuration groups ==")[0]
    for word in ("rnnexp -m", "rnnexp resume [DIR]", "rnnexp report", "rnnexp compare", "--dry-run", "+experiment",
                 "outputs/multirun"):  # fmt: skip
        assert word in head
    assert "Hydra's flags" in helped.stdout
    version = cli(["--version"], tmp_path)
    assert version.returncode == 0 and version.stdout.startswith("rnnexp 0.") and "hydra-core 1.3" in version.stdout
    for sub in ("resume", "report", "compare"):
        proc = cli([sub, "--help"], tmp_path)
        assert proc.returncode == 0 and f"usage: rnnexp {sub}" in proc.stdout, proc.stderr
    missing = cli(["resume", str(tmp_path / "nope")], tmp_path)
    assert missing.returncode == 2 and "no such directory" in one_error_line(missing)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_before_any_job_runs_is_one_line(tmp_path, capsys, monkeypatch, sig):
    from rnnexp import cli, plan

    def planning(*args, **kwargs):  # the signal arrives while the sweep is being planned
        os.kill(os.getpid(), sig)
        time.sleep(5)  # the handler raises here

    monkeypatch.setattr(plan, "make_plan", planning)
    term = signal.getsignal(signal.SIGTERM)
    # a test runner started in the background inherits SIGINT ignored: give it Python's default, as a shell does
    old_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        assert cli.run(["-m", "hidden_size=8,16", f"hydra.sweep.dir={tmp_path / 'sweep'}"]) == 128 + sig
    finally:
        signal.signal(signal.SIGINT, old_int)
    how = "interrupted (SIGINT)" if sig == signal.SIGINT else "terminated (SIGTERM)"
    assert capsys.readouterr().err.strip().splitlines() == [f"rnnexp: error: {how} before any job ran"]
    assert not (tmp_path / "sweep").exists()
    assert signal.getsignal(signal.SIGTERM) == term  # rnnexp's handler is gone again
