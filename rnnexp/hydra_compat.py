"""The one place rnnexp depends on how Hydra works inside, rather than on its public API.

Everything else in rnnexp and hydra_plugins uses Hydra's public surface (``hydra.main``, the
compose API, ``hydra.core.override_parser``, ``hydra.core.utils.run_job``, the plugin base
classes). What Hydra keeps private but rnnexp must match lives here, each piece small and pinned
by ``tests/test_hydra_compat.py`` against Hydra's own implementation:

- :func:`args_parser`: Hydra's command-line parser, so rnnexp reads a command line exactly as
  Hydra will (``hydra._internal.utils.get_args_parser``; the only private import).
- :func:`expand_sweep`: a sweep's job list, as Hydra's basic sweeper expands it (the product of
  every sweep override's values in command-line order, a later override of a key replacing an
  earlier one in its place).
- :func:`apply_value_overrides`: what Hydra's config loader does with a plain ``key=value``
  override once the defaults list is composed.
- :func:`override_dirname`: ``hydra.job.override_dirname`` as Hydra derives it.
"""

from __future__ import annotations

import argparse
import itertools
import re
from collections.abc import Sequence

from hydra.core.override_parser.types import Override
from hydra.errors import ConfigCompositionException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException


class SweepSyntaxError(ValueError):
    """A sweep override rnnexp cannot expand into a finite job list (interval sweeps, for one)."""

    def __init__(self, override: Override, allowed: str):
        self.override, self.allowed = override, allowed
        super().__init__(f"{override.input_line}: {allowed}")


def args_parser() -> argparse.ArgumentParser:
    """Hydra's own argument parser (flags --multirun, --config-dir, --cfg, ... and the overrides)."""
    from hydra._internal.utils import get_args_parser

    return get_args_parser()


def expand_sweep(overrides: Sequence[Override]) -> list[list[str]]:
    """Every job's override list, in the order Hydra's basic sweeper runs them.

    Raises SweepSyntaxError for a sweep that is not a finite list (``interval(...)``) and for one
    that has no values (``range(8,4)``) or cannot be expanded (``range(8,9,0)``).
    """
    final: dict[str, list[str]] = {}
    for o in overrides:
        key = o.get_key_element()
        if not o.is_sweep_override():
            final[key] = [f"{key}={o.get_value_element_as_str()}"]
            continue
        if not o.is_discrete_sweep():
            raise SweepSyntaxError(o, "only list, range and choice sweeps expand into jobs (not interval)")
        try:
            values = [f"{key}={v}" for v in o.sweep_string_iterator()]
        except ValueError as exc:  # range(a,b,0)
            raise SweepSyntaxError(o, f"{' '.join(str(exc).split())}; a range needs a non-zero step") from exc
        if not values:
            raise SweepSyntaxError(o, "this sweep has no values, so the sweep would have 0 jobs")
        final[key] = values
    return [list(job) for job in itertools.product(*final.values())]


def apply_value_overrides(cfg: DictConfig, overrides: Sequence[Override]) -> None:
    """Apply plain ``key=value`` overrides to a composed config, as Hydra's config loader does.

    Only plain changes are handled (no ``+``/``++``/``~``, no ``@package``): the caller composes
    any job with those through Hydra itself.
    """
    for o in overrides:
        if o.is_add() or o.is_force_add() or o.is_delete() or o.package is not None:
            raise ValueError(f"{o.input_line}: not a plain key=value override")
        try:
            try:
                OmegaConf.update(cfg, o.key_or_group, o.value(), merge=True)
            except (ConfigAttributeError, ConfigKeyError) as exc:
                raise ConfigCompositionException(
                    f"Could not override '{o.key_or_group}'.\nTo append to your config use +{o.input_line}"
                ) from exc
        except OmegaConfBaseException as exc:
            raise ConfigCompositionException(f"Error merging override {o.input_line}") from exc


def override_dirname(overrides: Sequence[Override], exclude_keys: Sequence[str], item_sep: str, kv_sep: str) -> str:
    """``hydra.job.override_dirname``: the overrides, sorted, joined by item_sep, '=' replaced by kv_sep."""
    lines = sorted(str(o.input_line) for o in overrides if o.key_or_group not in exclude_keys)
    return re.sub("[=]", kv_sep, item_sep.join(lines))
