"""MLflow as a bridge (``tracking=mlflow``): each job an MLflow run, nested under its sweep's run.

A job's run holds its configuration keys as params, its row's numeric values as metrics (the CSV
column names), its job dir's tables as artifacts, and its ``status`` (ok, error) as a tag; a
finished run is FINISHED, a failed job's FAILED. The Hydra callback
(``hydra_plugins/rnnexp_launcher/tracking.py``) calls :class:`MlflowTracker` at a sweep's start and
end and at each job's end; MLflow is imported only then. Tracking never fails a sweep: the first
failure (MLflow missing, the server down) is one warning line, and tracking stops in that process;
the jobs' rows and the table are written as always.
"""

from __future__ import annotations

import logging
import math
import os
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from rnnexp import schema
from rnnexp.config import DEFAULT_STORE

LOCAL_DB = "mlflow.db"  # the default tracking store: sqlite beside the history store's default
PARENT_TAG = "mlflow.parentRunId"
NAME_TAG = "mlflow.runName"
TAGS = ("status", "error", "job_num", "overrides", "command", "git_commit", "hostname")  # the row's words, as tags
# A server that is down must cost seconds, not MLflow's default minutes of retries (the user's settings win).
HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}


def default_uri(cwd: Path | str) -> str:
    """``sqlite:///CWD/outputs/mlflow.db``: a local store, as rnnexp's other outputs go to outputs/."""
    return "sqlite:///" + str((Path(cwd) / DEFAULT_STORE).parent.resolve() / LOCAL_DB)


def artifact_root(uri: str) -> str | None:
    """Artifacts of a local sqlite store go beside it (MLflow's default, ./mlruns, is wherever it runs)."""
    if uri.startswith("sqlite:///"):
        return (Path(uri[len("sqlite:///") :]).parent / "mlartifacts").resolve().as_uri()
    return None


def _warn(text: str) -> None:
    print(f"rnnexp: warning: tracking: {' '.join(text.split())}", file=sys.stderr, flush=True)


def row_values(job_dir: Path) -> tuple[dict[str, str], dict[str, float], dict[str, str]] | None:
    """(params, metrics, tags) from a job dir's row; None when it has none."""
    path = Path(job_dir) / schema.RESULTS
    if not path.is_file():
        return None
    row = schema.read_table(path).iloc[0]
    config = set(schema.of_kind(schema.CONFIG))
    params, metrics, tags = {}, {}, {}
    for name, value in row.items():
        if pd.isna(value):
            continue
        col = schema.column(name)
        if name in config:
            params[name] = str(value)
        elif name in TAGS:
            tags[name] = str(value)[:5000]  # MLflow's limit for a tag's value
        elif col is not None and col.dtype in (schema.INT, schema.FLOAT64) and math.isfinite(float(value)):
            metrics[name] = float(value)
    return params, metrics, tags


class MlflowTracker:
    """One process's link to an MLflow tracking store; every call is a no-op after the first failure."""

    def __init__(self, uri: str, experiment: str) -> None:
        self.uri, self.experiment = uri, experiment
        self.client: Any = None
        self.experiment_id: str | None = None
        self.parent: str | None = None  # the sweep's run id (None for a single run)
        self.failed = False

    def __getstate__(self) -> dict[str, Any]:  # a joblib or SLURM worker opens its own client
        return {**self.__dict__, "client": None}

    def _guarded(self, what: str, fn) -> Any:
        if self.failed:
            return None
        try:
            if self.client is None:
                self._open()
            return fn()
        except Exception as exc:  # noqa: BLE001 - tracking is a bridge: it must not fail the sweep
            self.failed = True
            reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]
            hint = " (pip install 'rnnexp[mlflow]')" if isinstance(exc, ImportError) else ""
            _warn(f"cannot {what} in MLflow at {self.uri}: {reason}{hint}; jobs go on untracked, their rows as always")
            return None

    def _open(self) -> None:
        for key, value in HTTP_DEFAULTS.items():
            os.environ.setdefault(key, value)
        from mlflow.tracking import MlflowClient

        logging.getLogger("mlflow").setLevel(logging.WARNING)  # its INFO lines (a new store's tables) are noise here
        client = MlflowClient(tracking_uri=self.uri)
        found = client.get_experiment_by_name(self.experiment)
        if found is None:
            self.experiment_id = client.create_experiment(self.experiment, artifact_location=artifact_root(self.uri))
        else:
            self.experiment_id = found.experiment_id
        self.client = client

    def start_sweep(self, name: str, sweep_dir: str) -> None:
        def start() -> None:
            tags = {NAME_TAG: name, "sweep_dir": sweep_dir}
            self.parent = self.client.create_run(self.experiment_id, tags=tags).info.run_id

        self._guarded("start the sweep's run", start)

    def end_sweep(self, failed_jobs: int) -> None:
        if self.parent is None:
            return

        def end() -> None:
            self.client.set_tag(self.parent, "failed_jobs", str(failed_jobs))
            self.client.set_terminated(self.parent, "FINISHED")

        self._guarded("end the sweep's run", end)

    def log_job(self, job_dir: Path, name: str, ran: bool) -> bool | None:
        """Log the job in ``job_dir`` as a run; returns whether it failed (None when not tracked)."""

        def log() -> bool:
            from mlflow.entities import Metric, Param

            values = row_values(job_dir)
            params, metrics, tags = values if values is not None else ({}, {}, {"status": "error"})
            failed = not ran or tags.get("status") != "ok"
            run_tags = {NAME_TAG: name, **({PARENT_TAG: self.parent} if self.parent else {}), **tags}
            run_id = self.client.create_run(self.experiment_id, tags=run_tags).info.run_id
            self.client.log_batch(
                run_id,
                metrics=[Metric(k, v, 0, 0) for k, v in metrics.items()],
                params=[Param(k, v) for k, v in params.items()],
            )
            for table in (schema.RESULTS, *schema.SIDE_TABLES):
                if (Path(job_dir) / table).is_file():
                    self.client.log_artifact(run_id, str(Path(job_dir) / table))
            self.client.set_terminated(run_id, "FAILED" if failed else "FINISHED")
            return failed

        return self._guarded(f"log the job in {job_dir}", log)
