"""env.json: what it records, that writing it is atomic, and the fields repeated in rows."""

from __future__ import annotations

import json
import subprocess
from datetime import datetime

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
    assert list(fields) == ["hostname", "cpu_model", "git_commit", "git_dirty"]
    assert fields["hostname"] == env["hostname"]
