"""Composing a sweep's jobs fast, with the same result as Hydra's ``load_sweep_config``.

Hydra composes every job from scratch (read the config files, build the defaults list, merge, then
apply the plain ``key=value`` overrides). Jobs of a sweep mostly differ in plain overrides only, and
everything before those depends only on the config-group choices (a group chosen, ``timing=quick``,
or added, ``+deepbench=NAME``). So the config before the plain overrides is composed once per
distinct set of group choices, by Hydra (``load_sweep_config``), and each job is a copy with its
plain overrides applied (``rnnexp.hydra_compat.apply_value_overrides``) and Hydra's bookkeeping
redone (``hydra.overrides.task``, ``override_dirname``, runtime fields). A job with any other kind
of override (``+key`` of a plain key, ``~key``, ``key@pkg``, ``hydra.*``, a dict value), or any job
when the config sets ``hydra.searchpath``, is composed by Hydra from scratch.
tests/test_launcher.py checks both paths give Hydra's own result.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from rnnexp import hydra_compat
from rnnexp.confcopy import copy_config

MAX_TEMPLATES = 32  # distinct sets of group choices kept; a sweep over more composes the rest from scratch


class JobComposer:
    """``compose(overrides, num)`` == ``config_loader.load_sweep_config(master, overrides)`` with job num/id set."""

    def __init__(self, config_loader: Any, master: DictConfig) -> None:
        self.loader, self.master = config_loader, master
        self.parser = OverridesParser.create(config_loader=config_loader)
        self.templates: dict[tuple[str, ...], DictConfig] = {}
        self.tasks: dict[tuple[str, ...], DictConfig] = {}  # each template's task part
        self.groups: dict[str, set[str]] = {}
        # hydra.searchpath in the config changes the config groups per compose: leave those to Hydra.
        self.fast = not OmegaConf.select(master, "hydra.searchpath")

    def compose(self, overrides: Sequence[str], num: int) -> DictConfig:
        return self.compose_job(overrides, num)[0]

    def compose_job(self, overrides: Sequence[str], num: int) -> tuple[DictConfig, DictConfig]:
        """(the job's config, its task config: the same less ``hydra``), each a copy of its own."""
        parsed = self.parser.parse_overrides(list(overrides))
        split = self._split(parsed) if self.fast else None
        if split is None:
            cfg = self.loader.load_sweep_config(self.master, list(overrides))
            task = _task_part(cfg)
        else:
            groups, values = split
            cfg = copy_config(self._template(groups))
            hydra_compat.apply_value_overrides(cfg, values)
            self._bookkeep(cfg, parsed)
            OmegaConf.copy_cache(from_config=self.master, to_config=cfg)
            task = copy_config(self.tasks[groups])
            hydra_compat.apply_value_overrides(task, values)
            OmegaConf.copy_cache(from_config=self.master, to_config=task)
        with open_dict(cfg):
            cfg.hydra.job.id = num
            cfg.hydra.job.num = num
        return cfg, task

    def _is_group(self, key: str) -> bool:
        parent, _, name = key.rpartition("/")
        if parent not in self.groups:
            self.groups[parent] = set(self.loader.list_groups(parent))
        return name in self.groups[parent]

    def _split(self, parsed: list[Override]) -> tuple[tuple[str, ...], list[Override]] | None:
        """(group-choice overrides, plain value overrides), or None if an override is of another kind."""
        groups: list[str] = []
        values: list[Override] = []
        for o in parsed:
            if o.is_hydra_override() or o.is_force_add() or o.is_delete() or o.package is not None:
                return None
            if isinstance(o.value(), dict):
                return None
            if self._is_group(o.key_or_group):  # a group choice, or a group added (+deepbench=NAME): the template's
                groups.append(str(o.input_line))
            elif o.is_add():  # +key=value of a plain key: Hydra's own compose
                return None
            else:
                values.append(o)
        return tuple(groups), values

    def _template(self, groups: tuple[str, ...]) -> DictConfig:
        """The config of a job with these group choices and no value overrides, composed by Hydra."""
        if groups not in self.templates:
            if len(self.templates) >= MAX_TEMPLATES:
                self.templates.clear()
                self.tasks.clear()
            self.templates[groups] = self.loader.load_sweep_config(self.master, list(groups))
            self.tasks[groups] = _task_part(self.templates[groups])
        return self.templates[groups]

    @staticmethod
    def _bookkeep(cfg: DictConfig, parsed: list[Override]) -> None:
        """What Hydra's config loader does after applying overrides, redone for this job's full override list."""
        names = cfg.hydra.job.config.override_dirname
        cfg.hydra.overrides.task = [str(o.input_line) for o in parsed]  # _split let no hydra override through
        with open_dict(cfg.hydra):
            for key in cfg.hydra.job.env_copy:
                cfg.hydra.job.env_set[key] = os.environ[key]
        cfg.hydra.runtime.cwd = os.getcwd()
        cfg.hydra.job.override_dirname = hydra_compat.override_dirname(
            parsed, list(names.exclude_keys), names.item_sep, names.kv_sep
        )


def _task_part(cfg: DictConfig) -> DictConfig:
    """A copy of ``cfg`` less its ``hydra`` node, as Hydra's ``run_job`` makes the task's config."""
    task = copy_config(cfg)
    with read_write(task), open_dict(task):
        del task["hydra"]
    return task
