"""The one place the SLURM launcher depends on how submitit and hydra-submitit-launcher work inside.

The launcher waits on the queue itself, so it reads what submitit's public ``Job`` API would hide
behind a blocking ``results()``; and it submits one array per launch, so it builds what
``BaseSubmititLauncher.launch`` builds before it blocks. Each piece is small and pinned by
``tests/test_submitit_compat.py`` against submitit and the plugin themselves:

- :func:`parse_states`: SLURM's ``JobID|State`` lines read as submitit reads them (its
  ``SlurmInfoWatcher.read_info`` expands an array's ``123_[4-7]`` range lines).
- :func:`read_result`: a job's result pickle, ``("success", value)`` or ``("error", traceback)``,
  loaded as submitit loads it (``submitit.core.utils.pickle_load``).
- :func:`make_executor`: the executor configured exactly as ``BaseSubmititLauncher.launch`` does.
- :func:`call_arguments`: one job's arguments to ``BaseSubmititLauncher.__call__``, which composes and
  runs the job on its node (the launcher itself is the submitted callable).

submitit is imported inside each function: Hydra's plugin scan imports this module, and without the
``launchers`` extra that import must still succeed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

SWEEP_DIR_KEY = "hydra.sweep.dir"  # the job_dir_key BaseSubmititLauncher.launch passes


def parse_states(text: str) -> dict[str, str]:
    """``JobID|State`` lines (an array's pending tasks may be one range line) to {"123_4": "CANCELLED"}."""
    from submitit.slurm.slurm import SlurmInfoWatcher

    info = SlurmInfoWatcher().read_info("JobID|State\n" + text)  # expands "123_[4-7]" ranges
    return {jid: stats["State"].split()[0] for jid, stats in info.items() if stats.get("State")}  # "CANCELLED by 0"


def read_result(path: Path) -> tuple[str, Any] | None:
    """A submitit job's (outcome, value) from its result pickle, or None while there is none."""
    from submitit.core.utils import pickle_load

    return pickle_load(path) if path.exists() else None


def make_executor(params: Mapping[str, Any], cluster: str = "slurm") -> Any:
    """The submitit executor for a launcher's ``params``, configured as ``BaseSubmititLauncher.launch`` does."""
    import submitit
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
    from omegaconf import OmegaConf

    init_keys = {"max_num_timeout"}
    init = {f"{cluster}_{k}": v for k, v in params.items() if k in init_keys}
    executor = submitit.AutoExecutor(cluster=cluster, folder=params["submitit_folder"], **init)
    base = set(OmegaConf.structured(BaseQueueConf).keys())
    skip = init_keys | {"submitit_folder"}
    executor.update_parameters(**{k if k in base else f"{cluster}_{k}": v for k, v in params.items() if k not in skip})
    return executor


def call_arguments(num: int, overrides: Sequence[str]) -> tuple[list[str], str, int, str, dict[str, Any]]:
    """Job ``num``'s arguments to ``BaseSubmititLauncher.__call__``: (overrides, job dir key, number, id, state)."""
    from hydra.core.singleton import Singleton

    return list(overrides), SWEEP_DIR_KEY, num, f"job_id_for_{num}", Singleton.get_state()
