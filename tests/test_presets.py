"""Every preset in conf/experiment/ composes, expands to its documented jobs, and each job composes."""

import subprocess
import sys
import time

import pytest

from conftest import ROOT, make_config, run_cli
from rnnexp.plan import conf_dir, make_plan, read_argv
from rnnexp.validation import validate


def planned_jobs(argv: list[str]) -> list[list[str]]:
    """The jobs' overrides ``rnnexp ARGV`` would run, as the CLI plans them."""
    return [job.overrides for job in make_plan(read_argv(argv)).jobs]


PRESETS = sorted(p.stem for p in (conf_dir() / "experiment").glob("*.yaml"))
EXPECTED_JOBS = {
    "backend_shootout": 42,
    "ci": 72,
    "deepbench": 104,
    "deepbench_small": 12,
    "depth_direction": 18,
    "edge_of_chaos": 144,
    "saturation": 45,
    "scan_crossover": 99,
    "training": 60,
    "tutorial": 8,
}


def test_every_preset_is_listed():
    assert sorted(EXPECTED_JOBS) == PRESETS


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_composes_and_expands(preset):
    jobs = planned_jobs(["-m", f"+experiment={preset}"])
    assert len(jobs) == EXPECTED_JOBS[preset]
    for job in (jobs[0], jobs[-1]):
        cfg = make_config(*job)
        validate(cfg)


def test_deepbench_kernels_follow_deepbench():
    cfg = make_config("+experiment=deepbench", "+deepbench=lstm_h4096_n128_t25")
    assert (cfg.cell.value, cfg.hidden_size, cfg.input_size, cfg.batch_size, cfg.timesteps) == (
        "lstm", 4096, 4096, 128, 25)  # fmt: skip
    assert (cfg.layers, cfg.bidirectional) == (1, False)
    rnn = make_config("+deepbench=rnn_h2560_n64_t50")
    assert (rnn.nonlinearity.value, rnn.hidden_size, rnn.batch_size, rnn.timesteps) == ("relu", 2560, 64, 50)


def test_command_line_wins_over_a_preset():
    jobs = planned_jobs(["-m", "+experiment=backend_shootout", "hidden_size=8"])
    assert len(jobs) == 21 and all("hidden_size=8" in job for job in jobs)


@pytest.mark.slow
def test_dry_run_prints_jobs_without_running(tmp_path):
    proc = run_cli(["-m", "+experiment=tutorial", "--dry-run"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "8 jobs into sweep dir " in proc.stdout and "(dry run: nothing was run)" in proc.stdout
    assert "#7: python -m rnnexp backend=torch layers=2 bidirectional=True +experiment=tutorial" in proc.stdout
    assert not (tmp_path / "outputs").exists()


@pytest.mark.slow
def test_runs_started_together_get_their_own_dirs(tmp_path):
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    cmd = [sys.executable, "-m", "rnnexp", "timing=quick", "backend=numpy"]
    procs = [subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL) for _ in range(2)]
    start = time.time()
    assert all(p.wait(timeout=300) == 0 for p in procs)
    dirs = list(tmp_path.glob("outputs/runs/*/*"))
    assert len(dirs) == 2, f"two runs started within {time.time() - start:.1f}s share a dir: {dirs}"
