"""The launcher: jobs one after another in this process, like Hydra's basic launcher, each composed once.

Each job's config comes from ``_compose.JobComposer`` (Hydra's result, composed once and fast) and
runs through ``_run.run_composed``: Hydra's own ``hydra.core.utils.run_job`` steps (output dir,
``hydra.job.chdir``, job logging, callbacks) without its copies of a config made for this job
alone. ``launch_jobs`` takes jobs by number, so a resume runs jobs 3 and 7 as jobs 3 and 7. The
returns keep no config: a sweep's memory stays flat in its number of jobs.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from hydra.core.utils import JobReturn, configure_log, filter_overrides, setup_globals
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

log = logging.getLogger(__name__)


class RnnexpLauncher(Launcher):
    def __init__(self) -> None:
        self.config: DictConfig | None = None
        self.task_function: TaskFunction | None = None
        self.hydra_context: HydraContext | None = None
        self.composer: Any = None  # a _compose.JobComposer, made at the first launch

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config, self.hydra_context, self.task_function = config, hydra_context, task_function

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        return self.launch_jobs(list(enumerate(job_overrides, start=initial_job_idx)))

    def launch_jobs(self, jobs: Sequence[tuple[int, Sequence[str]]]) -> list[JobReturn]:
        """Run ``(number, overrides)`` jobs in turn, each under its own number and dir."""
        from hydra_plugins.rnnexp_launcher._compose import JobComposer
        from hydra_plugins.rnnexp_launcher._run import run_composed

        assert self.config is not None and self.hydra_context is not None and self.task_function is not None
        setup_globals()
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        if self.composer is None:
            self.composer = JobComposer(self.hydra_context.config_loader, self.config)
        log.info(f"Launching {len(jobs)} jobs locally")
        returns = []
        for num, overrides in jobs:
            log.info(f"\t#{num} : {' '.join(filter_overrides(overrides))}")
            cfg, task_cfg = self.composer.compose_job(overrides, num)
            # The return holds no config (run_composed keeps none): a sweep's memory stays flat in its jobs.
            returns.append(run_composed(self.hydra_context, self.task_function, cfg, task_cfg))
            configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)  # run_job switched to the job's
        return returns
