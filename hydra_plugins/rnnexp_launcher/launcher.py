"""The launcher: Hydra's basic launcher (jobs in turn, in this process), each job's config composed once."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hydra.core.utils import JobReturn
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


class RnnexpLauncher(Launcher):
    """Like BasicLauncher: each job composed (once, see ``_compose``) and run by ``run_job`` (see ``_job``)
    with its output dir, .hydra/ files, log file and callbacks. A job whose config fails to compose
    becomes an error row in its job dir; the sweep goes on.
    """

    records_composition_errors = True  # RnnexpSweeper hands jobs over without composing them first

    def __init__(self) -> None:
        self.config: DictConfig | None = None
        self.task_function: TaskFunction | None = None
        self.hydra_context: HydraContext | None = None
        self.composer: Any = None  # a _compose.JobComposer, made at the first launch

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.task_function = task_function

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from hydra_plugins.rnnexp_launcher import _core

        return _core.launch(self, job_overrides, initial_job_idx)
