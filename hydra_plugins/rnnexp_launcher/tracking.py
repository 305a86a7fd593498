"""The Hydra face of ``rnnexp.tracking``: a callback, registered by conf/config.yaml, that reads the ``tracking`` key.

Under ``tracking=none`` (the default) every hook returns at once and MLflow is never imported. Under
``tracking=mlflow`` a sweep's start opens its parent run, each job's end logs the job from its dir
(its row is written by then), and the sweep's end closes the parent run. A single run is one run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig


class TrackingCallback(Callback):
    def __init__(self) -> None:
        self.tracker: Any = None  # an rnnexp.tracking.MlflowTracker once tracking is asked for
        self.failed_jobs = 0

    def _open(self, config: DictConfig) -> None:
        settings = config.get("tracking")
        backend = settings.get("backend") if settings is not None else None
        if getattr(backend, "value", backend) != "mlflow" or self.tracker is not None:  # an Enum node, or text
            return
        from rnnexp.tracking import MlflowTracker, default_uri

        uri = settings.get("uri") or default_uri(config.hydra.runtime.cwd)
        self.tracker = MlflowTracker(str(uri), str(settings.get("experiment") or "rnnexp"))

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._open(config)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._open(config)
        if self.tracker is not None:
            sweep_dir = str(Path(config.hydra.sweep.dir).resolve())
            self.tracker.start_sweep(Path(sweep_dir).name, sweep_dir)

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        if self.tracker is None:
            return
        from hydra.core.utils import JobStatus

        job = config.hydra.job
        name = f"job {job.get('num', 0)}: {' '.join(config.hydra.overrides.task) or '(defaults)'}"
        ran = job_return.status == JobStatus.COMPLETED
        failed = self.tracker.log_job(Path(config.hydra.runtime.output_dir), name, ran)
        self.failed_jobs += bool(failed)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if self.tracker is not None:
            self.tracker.end_sweep(self.failed_jobs)
