"""A sweep's job list, expanded the way Hydra's basic sweeper expands it (for counts and dry runs)."""

from __future__ import annotations

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf


def expand(arguments: list[str], params: dict[str, str] | None = None) -> list[list[str]]:
    """Every job's override list: the preset's ``hydra.sweeper.params`` first, the command line's after."""
    specs = [f"{k}={v}" for k, v in (params or {}).items()] + list(arguments)
    overrides = OverridesParser.create().parse_overrides(specs)
    return [job for batch in BasicSweeper.split_arguments(overrides, None) for job in batch]


def jobs_of(config: DictConfig) -> list[list[str]]:
    """The jobs of a composed multirun config (one that includes its ``hydra`` node)."""
    params = config.hydra.sweeper.get("params")
    params = OmegaConf.to_container(params, resolve=False) if params else {}
    arguments = OmegaConf.to_container(config.hydra.overrides.task, resolve=False)
    return expand(list(arguments), {str(k): str(v) for k, v in params.items()})


def count_jobs(config: DictConfig) -> int:
    return len(jobs_of(config))
