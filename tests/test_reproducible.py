"""Same config and seed, same deterministic columns: across runs, launchers, interruptions and re-runs."""

import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from conftest import ROOT, run_cli, sweep_table
from rnnexp.results import collect

pytestmark = pytest.mark.slow

SWEEP = ["-m", "cell=rnn,lstm", "bidirectional=false,true", "hidden_size=5", "timing=quick"]
# Shapes, statistics and parity figures: what must not change between runs of one config.
DETERMINISTIC = ["output_shape", "h_n_shape", "shape_ok", "h_mean", "h_std", "h_min", "h_max",
                 "h_saturation_frac", "max_abs_err_vs_ref", "parity_ok", "status"]  # fmt: skip
KEY = ["cell", "bidirectional", "hidden_size", "backend", "layers"]


def deterministic(table: pd.DataFrame) -> pd.DataFrame:
    cols = [c for c in DETERMINISTIC if c in table]
    return table.sort_values(KEY)[KEY + cols].reset_index(drop=True)


@pytest.fixture(scope="module")
def basic_table(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("basic")
    proc = run_cli(SWEEP, cwd)
    assert proc.returncode == 0, proc.stderr
    return sweep_table(cwd)


@pytest.mark.parametrize(
    "launcher",
    [
        ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"],
        # submitit's local launcher runs every job at once: two jobs fit two cores.
        ["hydra/launcher=submitit_local", "bidirectional=true"],
    ],
    ids=["joblib", "submitit_local"],
)
def test_launchers_give_the_same_table(tmp_path, basic_table, launcher):
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher" if "joblib" in launcher[0] else "submitit")
    proc = run_cli([*SWEEP, *launcher], tmp_path)
    assert proc.returncode == 0, proc.stderr
    table = sweep_table(tmp_path)
    assert (table.concurrent_jobs == 2).all()
    want = deterministic(basic_table)
    want = want[want.bidirectional] if "bidirectional=true" in launcher else want
    pd.testing.assert_frame_equal(deterministic(table), want.reset_index(drop=True))


def test_rows_reproduce_from_their_command(tmp_path, basic_table):
    row = basic_table.iloc[3]
    args = row.command.split()[3:]  # after "python -m rnnexp"
    proc = run_cli(args, tmp_path)
    assert proc.returncode == 0, proc.stderr
    again = pd.read_csv(next(tmp_path.glob("outputs/runs/*/*/results.csv")))
    pd.testing.assert_frame_equal(deterministic(again), deterministic(basic_table.iloc[[3]]))


def _start_sweep(cwd, args):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "rnnexp", *args], cwd=cwd, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip


def test_killed_sweep_keeps_rows_and_resumes(tmp_path, basic_table):
    # Slow jobs (0.5 s of timing each), so the kill lands mid-sweep.
    args = [*SWEEP[:-1], "timing.min_run_time_s=0.5", "timing.max_run_time_s=1"]
    proc = _start_sweep(tmp_path, args)
    deadline = time.time() + 120
    while time.time() < deadline and len(list(tmp_path.glob("outputs/multirun/*/*/*/results.csv"))) < 2:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    sweep_dir = next(tmp_path.glob("outputs/multirun/*/*"))
    partial = collect(sweep_dir)
    assert 2 <= len(partial) < 4, "the kill should land after some jobs and before the last"
    assert (partial.status == "ok").all() and not (sweep_dir / "results.csv").exists()
    assert not list(sweep_dir.rglob("*.tmp")), "an atomic write never leaves a temp file behind"

    resumed = run_cli(["resume", str(sweep_dir)], tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert f"Launching {4 - len(partial)} jobs" in resumed.stdout  # only the jobs without a row run again
    final = pd.read_csv(sweep_dir / "results.csv")
    assert list(final.job_num) == [0, 1, 2, 3]
    pd.testing.assert_frame_equal(deterministic(final), deterministic(basic_table))


def test_resume_needs_a_sweep_dir(tmp_path):
    proc = run_cli(["resume", str(tmp_path)], tmp_path)
    assert proc.returncode == 2
    assert "not a rnnexp run or sweep dir" in proc.stderr and "Traceback" not in proc.stderr
