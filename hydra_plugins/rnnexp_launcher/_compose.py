"""Composing a sweep's jobs fast, with the same result as Hydra's ``load_sweep_config``.

Hydra composes a job from scratch: read every config file, build the defaults list, merge, then
apply the plain ``key=value`` overrides. Jobs of a sweep mostly differ only in those plain
overrides, and everything before them depends only on the other overrides (config-group choices
such as ``timing=quick``). So the config before the plain overrides is composed once per distinct
set of group choices, by Hydra, and each job is a copy of it with its plain overrides applied by
Hydra's own code, then the bookkeeping Hydra does last (``hydra.overrides``, ``override_dirname``,
runtime fields). A job with any other kind of override (``+key``, ``~key``, ``key@pkg``, a
``hydra.*`` key, a dict value), or any job when the config sets ``hydra.searchpath``, is composed
by Hydra from scratch.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from typing import Any

from hydra._internal.config_loader_impl import ConfigLoaderImpl, get_overrides_dirname
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, OverrideType
from omegaconf import DictConfig, OmegaConf, open_dict

MAX_TEMPLATES = 32  # distinct sets of group choices kept; a sweep over more composes the rest from scratch


class JobComposer:
    """``compose(overrides, idx)`` == ``config_loader.load_sweep_config(master, overrides)`` with job num/id set."""

    def __init__(self, config_loader: Any, master: DictConfig) -> None:
        self.loader = config_loader
        self.master = master
        self.parser = OverridesParser.create()
        self.templates: dict[tuple[str, ...], DictConfig] = {}
        # hydra.searchpath in the config changes the config groups per compose: leave those to Hydra.
        self.fast = not OmegaConf.select(master, "hydra.searchpath")

    def compose(self, overrides: Sequence[str], idx: int) -> DictConfig:
        parsed = self.parser.parse_overrides(list(overrides))
        split = self._split(parsed) if self.fast else None
        if split is None:
            cfg = self.loader.load_sweep_config(self.master, list(overrides))
        else:
            group_choices, values = split
            cfg = copy.deepcopy(self._template(group_choices))
            ConfigLoaderImpl._apply_overrides_to_config(values, cfg)
            self._bookkeep(cfg, parsed)
            OmegaConf.copy_cache(from_config=self.master, to_config=cfg)
        with open_dict(cfg):
            cfg.hydra.job.id = idx
            cfg.hydra.job.num = idx
        return cfg

    def _split(self, parsed: list[Override]) -> tuple[tuple[str, ...], list[Override]] | None:
        """(group-choice overrides, plain value overrides), or None if an override is of another kind."""
        groups: list[str] = []
        values: list[Override] = []
        for o in parsed:
            if o.is_hydra_override() or o.package is not None or o.type != OverrideType.CHANGE:
                return None
            if isinstance(o.value(), dict):
                return None
            if self.loader.repository.group_exists(o.key_or_group):
                groups.append(str(o.input_line))
            else:
                values.append(o)
        return tuple(groups), values

    def _template(self, group_choices: tuple[str, ...]) -> DictConfig:
        """The config of a job with these group choices and no value overrides, composed by Hydra."""
        if group_choices not in self.templates:
            if len(self.templates) >= MAX_TEMPLATES:
                self.templates.clear()
            self.templates[group_choices] = self.loader.load_sweep_config(self.master, list(group_choices))
        return self.templates[group_choices]

    @staticmethod
    def _bookkeep(cfg: DictConfig, parsed: list[Override]) -> None:
        """What ConfigLoaderImpl does after applying overrides, redone for this job's full override list."""
        app = [o for o in parsed if not o.is_hydra_override()]  # all of them: _split let no hydra override through
        names = cfg.hydra.job.config.override_dirname
        cfg.hydra.overrides.task = [str(o.input_line) for o in app]
        with open_dict(cfg.hydra):
            for key in cfg.hydra.job.env_copy:
                cfg.hydra.job.env_set[key] = os.environ[key]
        cfg.hydra.runtime.cwd = os.getcwd()
        cfg.hydra.job.override_dirname = get_overrides_dirname(
            overrides=app, kv_sep=names.kv_sep, item_sep=names.item_sep, exclude_keys=names.exclude_keys
        )
