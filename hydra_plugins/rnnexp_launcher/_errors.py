"""A job whose config fails to compose, kept as data: an error row in its own job dir, like a failed run's.

The row has the layout of the task's own error rows (rnnexp.cli._task): the config values that did
compose (the failing override left out, its columns left empty), ``concurrent_jobs``,
``status="error"``, a one-line ``error`` naming the key and the value, the versions, ``job_num``,
``overrides`` and the ``command`` that re-creates the job.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from hydra._internal.config_loader_impl import get_overrides_dirname
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from hydra.errors import HydraException, MissingConfigException
from omegaconf import DictConfig, OmegaConf, open_dict, read_write
from omegaconf.errors import OmegaConfBaseException

# What Hydra raises when a job's overrides cannot be composed into a config (bad value, missing option, ...).
COMPOSE_ERRORS = (HydraException, OmegaConfBaseException)


def record(context: Any, master: DictConfig, overrides: Sequence[str], idx: int, exc: BaseException) -> JobReturn:
    """Write job ``idx``'s error row, print its progress line, and return it as the job's result."""
    from rnnexp import results, summary
    from rnnexp.cli import _progress, concurrent_jobs, rerun_command
    from rnnexp.runner import provenance

    parsed = OverridesParser.create().parse_overrides(list(overrides))
    culprits, messages, partial = isolate(context, master, parsed, exc)
    task_overrides = list(filter_overrides(overrides))
    row: dict[str, Any] = {
        **config_columns(partial, culprits),
        "concurrent_jobs": concurrent_jobs(master.hydra.launcher),
        "status": "error",
        "error": "; ".join(messages),
        **provenance(),
        "job_num": idx,
        "overrides": " ".join(task_overrides),
        "command": rerun_command(task_overrides),
    }
    results.write_row(row, job_dir(partial if partial is not None else master, master, parsed, idx))
    print(_progress(row, idx) + summary.one_line(row), flush=True)
    ret = JobReturn(overrides=task_overrides, working_dir=os.getcwd(), task_name=str(master.hydra.job.name))
    ret.status, ret.return_value = JobStatus.COMPLETED, row  # a recorded failure, as the task records its own
    return ret


def isolate(
    context: Any, master: DictConfig, overrides: list[Override], exc: BaseException
) -> tuple[list[Override], list[str], DictConfig | None]:
    """The overrides that fail, a message for each, and the config composed without them (None if none does)."""
    from rnnexp.runner import one_line

    remaining, culprits, messages = list(overrides), [], []
    while True:
        culprit = find_culprit(exc, remaining)
        if culprit is None:
            messages.append(one_line(exc))
            return culprits, messages, None
        culprits.append(culprit)
        messages.append(message(exc, culprit))
        remaining.remove(culprit)
        try:
            partial = context.config_loader.load_sweep_config(master, [str(o.input_line) for o in remaining])
            return culprits, messages, partial
        except COMPOSE_ERRORS as next_exc:
            exc = next_exc


def _chain(exc: BaseException | None) -> Iterator[BaseException]:
    """The error and its explicit causes (``raise ... from``); not ``__context__``, which would reach back to
    the job's first error while a later compose of the same job fails."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__


def find_culprit(exc: BaseException, overrides: list[Override]) -> Override | None:
    """The override an error is about: named in its message, or the key OmegaConf reports, or a missing option."""
    text = "\n".join(str(e) for e in _chain(exc))
    full_keys = {getattr(e, "full_key", None) for e in _chain(exc)}
    for o in overrides:
        if re.search(rf"(?<![\w.]){re.escape(str(o.input_line))}(?![\w.])", text):
            return o
    for o in overrides:
        if o.key_or_group in full_keys or f"'{o.key_or_group}/{o.get_value_element_as_str()}'" in text:
            return o
    return None


def message(exc: BaseException, culprit: Override) -> str:
    """``Type: key=value: reason``, the reason from the innermost Hydra/OmegaConf error's first line (plus options)."""
    inner = [e for e in _chain(exc) if isinstance(e, COMPOSE_ERRORS) and str(e).strip()]
    reason = str(inner[-1]).strip().splitlines()[0] if inner else ""
    missing = next((e for e in _chain(exc) if isinstance(e, MissingConfigException) and e.options), None)
    if missing is not None:
        reason += f" (available: {', '.join(missing.options)})"
    return f"{type(exc).__name__}: {culprit.input_line}: {reason}"


def config_columns(cfg: DictConfig | None, culprits: list[Override]) -> dict[str, Any]:
    """The row's config columns from the partly composed config; the failing keys' columns left empty."""
    if cfg is None:
        return {}
    from hydra_plugins.rnnexp_launcher._job import task_config
    from rnnexp.config import as_flat_dict

    task = task_config(cfg)
    try:
        flat = as_flat_dict(OmegaConf.to_object(task))
    except (OmegaConfBaseException, TypeError, ValueError):
        return {}
    blank = set()
    for o in culprits:
        column = o.key_or_group.replace(".", "_").replace("/", "_")
        nested = isinstance(OmegaConf.select(task, o.key_or_group, default=None), DictConfig)
        blank.update(k for k in flat if k == column or (nested and k.startswith(column + "_")))
    return {k: (None if k in blank else v) for k, v in flat.items()}


def job_dir(cfg: DictConfig, master: DictConfig, overrides: list[Override], idx: int) -> Path:
    """Job ``idx``'s output dir, resolved as Hydra's run_job resolves it (sweep dir / subdir)."""
    cfg = copy.deepcopy(cfg)
    OmegaConf.copy_cache(from_config=master, to_config=cfg)  # the same ${now:...} as every other job
    app = [o for o in overrides if not o.is_hydra_override()]
    names = cfg.hydra.job.config.override_dirname
    with read_write(cfg.hydra), open_dict(cfg.hydra):
        cfg.hydra.job.num = cfg.hydra.job.id = idx
        cfg.hydra.job.override_dirname = get_overrides_dirname(
            overrides=app, exclude_keys=list(names.exclude_keys), item_sep=names.item_sep, kv_sep=names.kv_sep
        )
        cfg.hydra.overrides.task = [str(o.input_line) for o in app]
    previous = HydraConfig.instance().cfg
    HydraConfig.instance().set_config(cfg)
    try:
        return Path(os.path.abspath(os.path.join(str(cfg.hydra.sweep.dir), str(cfg.hydra.sweep.subdir))))
    finally:
        HydraConfig.instance().cfg = previous
