"""env.json: what it records, that writing it is atomic, and the fields repeated in rows."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime

import pytest

from rnnexp import envinfo


def test_collect_has_the_issue_fields():
    env = envinfo.collect()
    for key in (
        "python_version",
        "torch_version",
        "numpy_version",
        "hydra_version",
        "blas",
        "cpu_model",
        "cores_physical",
        "cores_logical",
        "hostname",
        "git_commit",
        "git_dirty",
        "start_time_utc",
        "load_avg_1m",
        "slurm_job_id",
        "rnnexp_version",
    ):
        assert key in env, key
    assert env["numpy_version"] and env["hydra_version"] and env["cpu_model"] and env["hostname"]
    assert env["cores_logical"] >= 1 and env["cores_usable"] >= 1
    assert datetime.fromisoformat(env["start_time_utc"]).utcoffset().total_seconds() == 0
    assert any(lib.get("user_api") == "blas" for lib in env["blas"])  # NumPy's BLAS, via threadpoolctl


def test_collect_is_json_serialisable():
    json.dumps(envinfo.collect())


def test_torch_details_only_when_torch_is_imported():
    import torch  # noqa: F401  (imported here, so the details must appear)

    info = envinfo.torch_info()
    assert info["torch_num_threads"] >= 1
    assert isinstance(info["torch_mkldnn"], bool)
    assert "MKL" in info["torch_config"] or "BLAS" in info["torch_config"]


def test_git_state_of_a_repo(tmp_path):
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    run = dict(cwd=tmp_path, check=True, capture_output=True)
    (tmp_path / "f.txt").write_text("a")
    subprocess.run(["git", "add", "f.txt"], **run)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x"], **run)
    clean = envinfo.git_state(tmp_path)
    assert len(clean["git_commit"]) == 40 and clean["git_dirty"] is False
    (tmp_path / "f.txt").write_text("b")
    assert envinfo.git_state(tmp_path)["git_dirty"] is True


def test_git_state_without_a_repo(tmp_path):
    assert envinfo.git_state(tmp_path / "nowhere") == {"git_commit": "", "git_dirty": None}


def test_write_env_adds_extra_and_leaves_no_temp_file(tmp_path):
    path = tmp_path / "sweep" / "env.json"
    written = envinfo.write_env(path, {"threads": 1, "gemm_peak": [{"gflops": 1.5}]})
    on_disk = json.loads(path.read_text())
    assert on_disk == json.loads(json.dumps(written))
    assert on_disk["threads"] == 1 and on_disk["gemm_peak"][0]["gflops"] == 1.5
    assert [p.name for p in path.parent.iterdir()] == ["env.json"]


def test_row_fields():
    env = envinfo.collect()
    fields = envinfo.row_fields(env)
    assert list(fields) == ["hostname", "cpu_model", "git_commit", "git_dirty", "rnnexp_version"]
    assert fields["hostname"] == env["hostname"] and fields["rnnexp_version"]


@pytest.mark.parametrize(
    "environ, want",
    [
        ({}, ""),
        ({"SLURM_JOB_ID": "4242"}, "4242"),
        ({"SLURM_JOB_ID": "4250", "SLURM_ARRAY_JOB_ID": "4242", "SLURM_ARRAY_TASK_ID": "7"}, "4242_7"),
        ({"SLURM_JOB_ID": "4250", "SLURM_ARRAY_JOB_ID": "4242"}, "4250"),  # no task id: not an array task
    ],
)
def test_slurm_job_id(environ, want):
    assert envinfo.slurm_job_id(environ) == want


def test_load_average_is_recorded():
    load = envinfo.load_avg()
    assert set(load) == {"load_avg_1m", "load_avg_5m", "load_avg_15m"}
    assert load["load_avg_1m"] is None or load["load_avg_1m"] >= 0


def test_cpu_meter_counts_another_process():
    """A child spinning for 0.6 s of CPU is other processes' time (the child is not this process)."""
    meter = envinfo.CpuMeter()
    code = "import time\nend = time.process_time() + 0.6\nwhile time.process_time() < end: pass"
    subprocess.run([sys.executable, "-c", code], check=True)
    assert meter.other_cpu_s() >= 0.5  # /proc/stat counts in 10 ms ticks


def test_cpu_meter_subtracts_this_process(monkeypatch):
    busy, own = [100.0], [10.0]
    monkeypatch.setattr(envinfo, "_busy_cpu_s", lambda: busy[0])
    monkeypatch.setattr(envinfo, "_own_cpu_s", lambda: own[0])
    meter = envinfo.CpuMeter()
    busy[0], own[0] = 103.0, 12.0  # the machine was busy 3 s, 2 of them this process's
    assert meter.other_cpu_s() == 1.0
    own[0] = 13.02  # tick rounding: own time read a little above the machine's
    assert meter.other_cpu_s() == 0.0
