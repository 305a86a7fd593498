"""tracking=mlflow: each job an MLflow run nested under its sweep's, read back with MLflow's own client."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from conftest import ROOT, run_cli
from rnnexp import schema, tracking


def test_tracking_none_never_imports_mlflow() -> None:
    code = """
import sys
from omegaconf import OmegaConf
from hydra_plugins.rnnexp_launcher.tracking import TrackingCallback
cfg = OmegaConf.create({"tracking": {"backend": "none", "uri": None, "experiment": "x"},
                        "hydra": {"sweep": {"dir": "/nowhere"}, "runtime": {"cwd": "/"}}})
cb = TrackingCallback()
cb.on_multirun_start(cfg)
cb.on_job_end(cfg, None)
cb.on_multirun_end(cfg)
print(cb.tracker, "mlflow" in sys.modules)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={"PYTHONPATH": str(ROOT)})
    assert done.stdout.split() == ["None", "False"], done.stderr


def test_a_rows_values_become_params_metrics_and_tags(tmp_path: Path) -> None:
    row = {"cell": "lstm", "hidden_size": 16, "timing_warmup": 2, "time_median_ms": 1.5, "n_blocks": 7,
           "parity_ok": True, "status": "ok", "job_num": 3, "h_std": float("nan")}  # fmt: skip
    pd.DataFrame([schema.conform(row)]).to_csv(tmp_path / "results.csv", index=False)
    params, metrics, tags = tracking.row_values(tmp_path)
    assert params == {"cell": "lstm", "hidden_size": "16", "timing_warmup": "2"}
    assert metrics == {"time_median_ms": 1.5, "n_blocks": 7.0}
    assert tags == {"status": "ok", "job_num": "3"}
    assert tracking.row_values(tmp_path / "nothing") is None


def test_the_default_store_and_its_artifacts_are_local_files(tmp_path: Path) -> None:
    uri = tracking.default_uri(tmp_path)
    assert uri == f"sqlite:///{tmp_path.resolve()}/outputs/mlflow.db"
    assert tracking.artifact_root(uri) == (tmp_path / "outputs" / "mlartifacts").resolve().as_uri()
    assert tracking.artifact_root("http://host:5000") is None


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy:DeprecationWarning")  # MLflow's, on SQLAlchemy 2.1
def test_a_sweep_and_a_run_read_back_with_mlflows_own_client(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    common = ["timing=quick", "backend=numpy", "store=null", "tracking=mlflow", f"tracking.uri={uri}",
              "tracking.experiment=bridge"]  # fmt: skip
    sweep = run_cli(["-m", "cell=rnn", "proj_size=0,4", "hidden_size=8", *common, "hydra.sweep.dir=sweep"], tmp_path)
    assert sweep.returncode == 1, sweep.stderr  # proj_size=4 applies to lstm only: that job's row is an error
    assert "warning" not in sweep.stderr and "INFO" not in sweep.stderr
    run = run_cli(["hidden_size=5", *common, "hydra.run.dir=run"], tmp_path)
    assert run.returncode == 0, run.stderr

    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name("bridge").experiment_id])
    parents = [r for r in runs if r.info.run_name == "sweep"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    parent = parents[0].info.run_id
    children = sorted((r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent),
                      key=lambda r: int(r.data.tags["job_num"]))  # fmt: skip
    table = schema.read_table(tmp_path / "sweep" / "results.csv")
    assert [c.data.tags["status"] for c in children] == table["status"].tolist() == ["ok", "error"]
    assert [c.info.status for c in children] == ["FINISHED", "FAILED"]
    ok, row = children[0], table.iloc[0]
    assert ok.data.params["hidden_size"] == "8" and ok.data.params["proj_size"] == "0"
    assert set(ok.data.params) == {c for c in schema.of_kind(schema.CONFIG) if pd.notna(row[c])}
    assert ok.data.metrics["time_median_ms"] == pytest.approx(row["time_median_ms"])
    assert ok.data.metrics["flops"] == row["flops"]
    artifacts = {a.path for a in client.list_artifacts(ok.info.run_id)}
    assert {"results.csv", "samples.csv", "steps.csv"} <= artifacts
    assert {p.name for p in (tmp_path / "sweep" / "0").glob("*.csv")} == artifacts
    single = [r for r in runs if r not in children and r.info.run_id != parent]
    assert len(single) == 1 and "mlflow.parentRunId" not in single[0].data.tags
    assert single[0].data.params["hidden_size"] == "5" and single[0].info.status == "FINISHED"


@pytest.mark.slow
def test_a_tracking_server_that_is_down_is_one_warning_and_the_table_is_written(tmp_path: Path) -> None:
    args = ["-m", "hidden_size=4,8", "timing=quick", "backend=numpy", "store=null", "tracking=mlflow",
            "tracking.uri=http://127.0.0.1:9", "hydra.sweep.dir=sweep"]  # fmt: skip
    done = run_cli(args, tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rnnexp: warning: tracking: cannot start the sweep's run in MLflow")
    assert len(schema.read_table(tmp_path / "sweep" / "results.csv")) == 2
