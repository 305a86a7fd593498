"""The sweeper: launches a sweep's planned jobs, or, on resume, only those that have no ok row.

When rnnexp's CLI starts a sweep it records the planned job list in the sweep dir's manifest
(``rnnexp.manifest``); this sweeper launches exactly those jobs, skipping any whose ok row is
already there. Without a manifest (Hydra driven directly) it expands the command line as Hydra's
basic sweeper does (``rnnexp.hydra_compat.expand_sweep``). Jobs keep their numbers: a launcher
that takes numbered jobs (``launch_jobs``) gets them as they are; any other launcher gets runs of
consecutive numbers, since it numbers jobs from ``initial_job_idx``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

from rnnexp import hydra_compat, manifest
from rnnexp.fileio import write_text_atomic

Numbered = list[tuple[int, list[str]]]


class RnnexpSweeper(Sweeper):
    def __init__(self, max_batch_size: int | None = None, params: dict[str, str] | None = None) -> None:
        self.max_batch_size, self.params = max_batch_size, params or {}
        self.config: DictConfig | None = None
        self.launcher: Any = None
        self.hydra_context: HydraContext | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config, self.hydra_context = config, hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def sweep(self, arguments: list[str]) -> list[Sequence[JobReturn]]:
        assert self.config is not None and self.hydra_context is not None
        root = Path(str(self.config.hydra.sweep.dir))
        root.mkdir(parents=True, exist_ok=True)
        write_text_atomic(root / "multirun.yaml", OmegaConf.to_yaml(self.config))
        jobs = self.jobs(root, arguments)
        size = self.max_batch_size or max(len(jobs), 1)
        return [launch(self.launcher, jobs[i : i + size]) for i in range(0, len(jobs), size)]

    def jobs(self, root: Path, arguments: list[str]) -> Numbered:
        """The planned jobs still to run (manifest), else the command line's expansion."""
        if manifest.exists(root):
            recorded = manifest.load(root)
            return [(j.num, list(j.overrides)) for j in manifest.pending(recorded, root)]
        assert self.hydra_context is not None
        specs = [f"{k}={v}" for k, v in self.params.items()] + list(arguments)
        parsed = OverridesParser.create(config_loader=self.hydra_context.config_loader).parse_overrides(specs)
        return list(enumerate(hydra_compat.expand_sweep(parsed)))


def launch(launcher: Any, jobs: Numbered) -> list[JobReturn]:
    """Run numbered jobs on any launcher, each keeping its number."""
    if hasattr(launcher, "launch_jobs"):
        return list(launcher.launch_jobs(jobs))
    returns: list[JobReturn] = []
    run: Numbered = []
    for num, overrides in jobs:
        if run and num != run[-1][0] + 1:
            returns.extend(launcher.launch([o for _, o in run], initial_job_idx=run[0][0]))
            run = []
        run.append((num, overrides))
    if run:
        returns.extend(launcher.launch([o for _, o in run], initial_job_idx=run[0][0]))
    return returns
