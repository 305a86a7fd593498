"""Config schemas of the sweeper and launcher, registered as ``hydra/sweeper=rnnexp`` and ``hydra/launcher=rnnexp``."""

from dataclasses import dataclass
from typing import Dict, Optional  # noqa: UP035 - spelled as Hydra's own plugin schemas are

from hydra.core.config_store import ConfigStore


@dataclass
class RnnexpSweeperConf:
    """The planned jobs (the sweep dir's manifest), or the basic sweeper's expansion without one."""

    _target_: str = "hydra_plugins.rnnexp_launcher.sweeper.RnnexpSweeper"
    # jobs handed to the launcher at a time; None = all jobs in one batch
    max_batch_size: Optional[int] = None  # noqa: UP045
    # sweep parameters (presets set these); the command line's overrides come after them
    params: Optional[Dict[str, str]] = None  # noqa: UP006, UP045


@dataclass
class RnnexpLauncherConf:
    """Runs jobs one after another in this process, like the basic launcher; no options."""

    _target_: str = "hydra_plugins.rnnexp_launcher.launcher.RnnexpLauncher"


ConfigStore.instance().store(group="hydra/sweeper", name="rnnexp", node=RnnexpSweeperConf, provider="rnnexp_launcher")
ConfigStore.instance().store(group="hydra/launcher", name="rnnexp", node=RnnexpLauncherConf, provider="rnnexp_launcher")
