"""Running a batch: compose each job once, run it through Hydra's run_job, or record why it did not compose."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, configure_log, filter_overrides, setup_globals

from hydra_plugins.rnnexp_launcher import _errors
from hydra_plugins.rnnexp_launcher._compose import JobComposer
from hydra_plugins.rnnexp_launcher._errors import COMPOSE_ERRORS
from hydra_plugins.rnnexp_launcher._job import run_job

log = logging.getLogger(__name__)


def launch(launcher: Any, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> list[JobReturn]:
    """BasicLauncher.launch, composing each job once (and fast), a composition error recorded as the job's row."""
    setup_globals()
    master, context = launcher.config, launcher.hydra_context
    if launcher.composer is None:
        launcher.composer = JobComposer(context.config_loader, master)
    configure_log(master.hydra.hydra_logging, master.hydra.verbose)
    Path(str(master.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
    log.info(f"Launching {len(job_overrides)} jobs locally")
    runs: list[JobReturn] = []
    for idx, overrides in enumerate(job_overrides, start=initial_job_idx):
        log.info(f"\t#{idx} : {' '.join(filter_overrides(overrides))}")
        try:
            cfg = launcher.composer.compose(overrides, idx)
        except COMPOSE_ERRORS as exc:
            runs.append(_errors.record(context, master, overrides, idx, exc))
            continue
        runs.append(
            run_job(
                hydra_context=context,
                task_function=launcher.task_function,
                config=cfg,
                job_dir_key="hydra.sweep.dir",
                job_subdir_key="hydra.sweep.subdir",
            )
        )
        configure_log(master.hydra.hydra_logging, master.hydra.verbose)  # run_job switched to the job's logging
    return runs


def launch_composable(
    sweeper: Any, composer: JobComposer, batch: Sequence[Sequence[str]], initial_job_idx: int
) -> list[JobReturn]:
    """For another launcher: check each job composes (as BasicSweeper does), record those that do not,
    and hand the others over in runs of consecutive jobs, so every job keeps its number and dir."""
    context, master = sweeper.hydra_context, sweeper.config
    returns: list[JobReturn] = []
    run: list[Sequence[str]] = []  # consecutive jobs that compose, starting at job run_start
    run_start = initial_job_idx

    def flush() -> None:
        if run:
            returns.extend(sweeper.launcher.launch(list(run), initial_job_idx=run_start))
            run.clear()

    for idx, overrides in enumerate(batch, start=initial_job_idx):
        try:
            composer.compose(overrides, idx)
        except COMPOSE_ERRORS as exc:
            flush()
            returns.append(_errors.record(context, master, overrides, idx, exc))
            continue
        if not run:
            run_start = idx
        run.append(overrides)
    flush()
    return returns
