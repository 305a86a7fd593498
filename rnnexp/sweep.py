"""A sweep's job list, expanded the way Hydra's basic sweeper expands it (for counts and dry runs)."""

from __future__ import annotations

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf


def _config_loader():
    """The running Hydra's config loader (glob() sweeps over config groups need it), if any."""
    from hydra.core.global_hydra import GlobalHydra

    hydra = GlobalHydra.instance().hydra if GlobalHydra.instance().is_initialized() else None
    return hydra.config_loader if hydra else None


def expand(arguments: list[str], params: dict[str, str] | None = None) -> list[list[str]]:
    """Every job's override list: the preset's ``hydra.sweeper.params`` first, the command line's after."""
    specs = [f"{k}={v}" for k, v in (params or {}).items()] + list(arguments)
    overrides = OverridesParser.create(config_loader=_config_loader()).parse_overrides(specs)
    return [job for batch in BasicSweeper.split_arguments(overrides, None) for job in batch]


def jobs_of(config: DictConfig) -> list[list[str]]:
    """The jobs of a composed multirun config (one that includes its ``hydra`` node)."""
    params = config.hydra.sweeper.get("params")
    params = OmegaConf.to_container(params, resolve=False) if params else {}
    arguments = OmegaConf.to_container(config.hydra.overrides.task, resolve=False)
    return expand(list(arguments), {str(k): str(v) for k, v in params.items()})


def count_jobs(config: DictConfig) -> int:
    return len(jobs_of(config))


def planned_jobs(argv: list[str], config_dir: str) -> list[list[str]]:
    """The jobs ``python -m rnnexp -m ARGV`` would run, without running them (for --dry-run)."""
    from hydra import compose, initialize_config_dir

    overrides = [a for a in argv if not a.startswith("-")]
    parsed = OverridesParser.create().parse_overrides(overrides)
    fixed = [o.input_line for o in parsed if not o.is_sweep_override()]
    with initialize_config_dir(config_dir=config_dir, version_base="1.3"):
        cfg = compose(config_name="config", overrides=fixed, return_hydra_config=True)
        params = cfg.hydra.sweeper.get("params")
        params = OmegaConf.to_container(params, resolve=False) if params else {}
        return expand(overrides, {str(k): str(v) for k, v in params.items()})
