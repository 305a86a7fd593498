"""Running one job: Hydra's ``run_job`` step for step, with fewer copies of the config.

Hydra's ``run_job`` (hydra/core/utils.py, 1.3) copies the job's ``hydra`` node four times: two
masked copies for ``HydraConfig`` (before and after setting ``runtime.output_dir``), a deep copy of
the whole config to make the task's config, and a deep copy of the ``HydraConfig`` copy for the
job's return. Here ``HydraConfig`` is set once and given the output dir in place, the task's config
is copied without the ``hydra`` node, and the return shares ``HydraConfig``'s read-only copy. The
rest is the same: output dir, chdir per ``hydra.job.chdir``, job logging, ``.hydra/`` files,
``env_set``, callbacks, a raising task recorded as a failed job.
"""

from __future__ import annotations

import copy
import logging
import os
from pathlib import Path
from textwrap import dedent
from typing import Any

from hydra import version
from hydra._internal.deprecation_warning import deprecation_warning
from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, JobRuntime, JobStatus, _flush_loggers, _save_config, configure_log, env_override
from hydra.types import TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

log = logging.getLogger(__name__)


def task_config(config: DictConfig) -> DictConfig:
    """A deep copy of ``config`` without its ``hydra`` node, which is not copied at all (the costly part)."""
    placeholder = DictConfig({})
    task_cfg = copy.deepcopy(config, memo={id(config._get_node("hydra")): placeholder})
    with read_write(task_cfg), open_dict(task_cfg):
        del task_cfg["hydra"]
    return task_cfg


def run_job(
    hydra_context: Any,
    task_function: TaskFunction,
    config: DictConfig,
    job_dir_key: str = "hydra.sweep.dir",
    job_subdir_key: str | None = "hydra.sweep.subdir",
) -> JobReturn:
    """``hydra.core.utils.run_job`` with the same effects and one copy of the ``hydra`` node instead of four."""
    callbacks = hydra_context.callbacks
    old_cwd = os.getcwd()
    orig_hydra_cfg = HydraConfig.instance().cfg
    HydraConfig.instance().set_config(config)  # for ${hydra:...} in the dir keys
    output_dir = str(OmegaConf.select(config, job_dir_key))
    if job_subdir_key is not None:
        output_dir = os.path.join(output_dir, str(OmegaConf.select(config, job_subdir_key)))
    hydra_cfg = HydraConfig.instance().cfg
    assert hydra_cfg is not None
    for node in (config.hydra.runtime, hydra_cfg.hydra.runtime):  # Hydra re-copies instead; same result
        with read_write(node), open_dict(node):
            node.output_dir = os.path.abspath(output_dir)

    _chdir = None
    try:
        ret = JobReturn()
        task_cfg = task_config(config)
        ret.cfg = task_cfg
        ret.hydra_cfg = hydra_cfg  # read-only, and replaced (never changed) when the next job starts
        overrides = OmegaConf.to_container(config.hydra.overrides.task)
        assert isinstance(overrides, list)
        ret.overrides = overrides
        Path(output_dir).mkdir(parents=True, exist_ok=True)

        _chdir = hydra_cfg.hydra.job.chdir
        if _chdir is None and version.base_at_least("1.2"):
            _chdir = False
        if _chdir is None:
            url = "https://hydra.cc/docs/1.2/upgrades/1.1_to_1.2/changes_to_job_working_dir/"
            deprecation_warning(
                message=dedent(
                    f"""\
                    Future Hydra versions will no longer change working directory at job runtime by default.
                    See {url} for more information."""
                ),
                stacklevel=2,
            )
            _chdir = True
        if _chdir:
            os.chdir(output_dir)
            ret.working_dir = output_dir
        else:
            ret.working_dir = os.getcwd()

        configure_log(config.hydra.job_logging, config.hydra.verbose)

        if config.hydra.output_subdir is not None:
            hydra_output = Path(config.hydra.runtime.output_dir) / Path(config.hydra.output_subdir)
            _save_config(task_cfg, "config.yaml", hydra_output)
            _save_config(hydra_cfg, "hydra.yaml", hydra_output)
            _save_config(config.hydra.overrides.task, "overrides.yaml", hydra_output)

        with env_override(hydra_cfg.hydra.job.env_set):
            callbacks.on_job_start(config=config, task_function=task_function)
            try:
                ret.return_value = task_function(task_cfg)
                ret.status = JobStatus.COMPLETED
            except Exception as e:
                ret.return_value = e
                ret.status = JobStatus.FAILED

        ret.task_name = JobRuntime.instance().get("name")
        _flush_loggers()
        callbacks.on_job_end(config=config, job_return=ret)
        return ret
    finally:
        HydraConfig.instance().cfg = orig_hydra_cfg
        if _chdir:
            os.chdir(old_cwd)
