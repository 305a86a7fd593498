"""The sweeper: the basic sweeper's job list, each job composed once, a job that fails to compose kept as a row."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf


class RnnexpSweeper(BasicSweeper):
    """BasicSweeper's jobs, in its order and batches, without aborting the sweep on a job that fails to compose.

    With ``hydra/launcher=rnnexp``, which composes each job once and records composition errors
    itself, jobs go straight to the launcher: BasicSweeper's up-front compose of every job is skipped.
    Any other launcher (joblib, submitit) gets BasicSweeper's up-front check (a fast compose here),
    a job that fails it recorded as an error row, and the other jobs in runs that keep their numbers.
    """

    def sweep(self, arguments: list[str]) -> Any:
        from hydra_plugins.rnnexp_launcher import _core  # not at import: Hydra imports every plugin module it finds

        assert self.config is not None and self.launcher is not None and self.hydra_context is not None
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        overrides = parser.parse_overrides([*self._parse_config(), *arguments])
        self.overrides = self.split_arguments(overrides, self.max_batch_size)
        total = sum(len(batch) for batch in self.overrides)
        os.environ["RNNEXP_SWEEP_TOTAL"] = str(total)  # the progress line's N, as rnnexp.cli reads it

        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")

        returns = []
        initial_job_idx = 0
        own = getattr(self.launcher, "records_composition_errors", False)
        composer = None if own else _core.JobComposer(self.hydra_context.config_loader, self.config)
        while not self.is_done():
            batch = self.get_job_batch()
            if composer is None:
                results = self.launcher.launch(batch, initial_job_idx=initial_job_idx)
            else:
                results = _core.launch_composable(self, composer, batch, initial_job_idx)
            for r in results:
                _ = r.return_value  # as BasicSweeper: re-raises a job's exception, if its task raised
            initial_job_idx += len(batch)
            returns.append(results)
        return returns
