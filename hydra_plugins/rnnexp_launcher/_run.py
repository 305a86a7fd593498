"""One composed job run as Hydra's ``hydra.core.utils.run_job`` runs it, without its four config copies.

``run_job`` copies the config four times a job: ``HydraConfig.set_config`` twice (a masked copy of
the ``hydra`` node each time), the whole config for the task, and the ``hydra`` node again for its
return. With rnnexp's config (~170 nodes, most of them ``hydra``'s) that is ~20-30 ms a job on the
benchmark machine, more than the rest of the harness's work per job. This launcher composes each
job's config and task config afresh (``_compose.JobComposer.compose_job``: copies of their own), so
``run_composed`` takes them as they are: HydraConfig answers from the job's config itself
(``hydra_compat.hydra_config_set_to(copy=False)``), and nothing is copied. The steps and their
order are ``run_job``'s (Hydra 1.3): HydraConfig, the output dir, the dir made, ``hydra.job.chdir``,
job logging, ``env_set``, ``on_job_start``, the task (an exception is the return's value, status
FAILED), the loggers flushed, ``on_job_end``, then HydraConfig and the working dir put back. Where
``run_job`` would do more (``.hydra/`` files under ``hydra.output_subdir``, the pre-1.2 chdir
default), Hydra's ``run_job`` runs the job instead.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

from hydra import version
from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, JobRuntime, JobStatus, configure_log, env_override, run_job
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from rnnexp import hydra_compat

JOB_DIR_KEY, JOB_SUBDIR_KEY = "hydra.sweep.dir", "hydra.sweep.subdir"


def run_composed(
    hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig, task_cfg: DictConfig
) -> JobReturn:
    """``run_job(hydra_context, task_function, config, "hydra.sweep.dir", "hydra.sweep.subdir")`` for a job
    whose ``config`` and ``task_cfg`` (``config`` less ``hydra``) are its own copies; the return holds no config."""
    if config.hydra.output_subdir is not None or (config.hydra.job.chdir is None and not version.base_at_least("1.2")):
        ret = run_job(hydra_context=hydra_context, task_function=task_function, config=config,
                      job_dir_key=JOB_DIR_KEY, job_subdir_key=JOB_SUBDIR_KEY)  # fmt: skip
        ret.cfg = ret.hydra_cfg = None
        return ret
    old_cwd = os.getcwd()
    chdir = bool(config.hydra.job.chdir)
    try:
        # The job's own config, not a copy: the dirs may read ${hydra:...}, and must read this job's.
        with hydra_compat.hydra_config_set_to(config, copy=False):
            output_dir = os.path.abspath(os.path.join(str(OmegaConf.select(config, JOB_DIR_KEY)),
                                                      str(OmegaConf.select(config, JOB_SUBDIR_KEY))))  # fmt: skip
            with read_write(config.hydra.runtime), open_dict(config.hydra.runtime):
                config.hydra.runtime.output_dir = output_dir
            ret = JobReturn()
            ret.overrides = OmegaConf.to_container(config.hydra.overrides.task)
            Path(output_dir).mkdir(parents=True, exist_ok=True)
            if chdir:
                os.chdir(output_dir)
            ret.working_dir = output_dir if chdir else os.getcwd()
            configure_log(config.hydra.job_logging, config.hydra.verbose)
            with env_override(HydraConfig.get().job.env_set):
                hydra_context.callbacks.on_job_start(config=config, task_function=task_function)
                try:
                    ret.return_value = task_function(task_cfg)
                    ret.status = JobStatus.COMPLETED
                except Exception as e:  # as run_job: the job failed, the sweep goes on
                    ret.return_value = e
                    ret.status = JobStatus.FAILED
            ret.task_name = JobRuntime.instance().get("name")
            _flush_loggers()
            hydra_context.callbacks.on_job_end(config=config, job_return=ret)
            return ret
    finally:
        if chdir:
            os.chdir(old_cwd)


def _flush_loggers() -> None:
    """Every logger's handlers flushed, as ``run_job`` does after the task (its own helper is private)."""
    for logger in [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]:
        for handler in getattr(logger, "handlers", []):
            with contextlib.suppress(Exception):  # as run_job's: a handler that cannot flush is no failure
                handler.flush()
