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
- :func:`hydra_config_set_to`: ``HydraConfig`` set for a while, then put back as it was (Hydra has
  no public way to restore it, nor to unset it: this writes its ``cfg`` attribute); with
  ``copy=False``, set to the config itself rather than to a copy of its ``hydra`` node.
- :data:`BASIC_PLUGINS`: the ``_target_`` of Hydra's basic launcher and sweeper (private modules).
"""

from __future__ import annotations

import argparse
import contextlib
import decimal
import itertools
import math
import re
from collections.abc import Callable, Iterator, Sequence

from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.types import Override, RangeSweep
from hydra.errors import ConfigCompositionException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

BASIC_PLUGINS = (
    "hydra._internal.core_plugins.basic_launcher.BasicLauncher",
    "hydra._internal.core_plugins.basic_sweeper.BasicSweeper",
)


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
    return list(SweepSpace(overrides))


class _Axis:
    """One key's values as Hydra spells them (``key=value``), by index; ``count`` may exceed what len() allows."""

    def __init__(self, count: int, value: Callable[[int], str]) -> None:
        self.count, self.value = count, value


def _listed(values: list[str]) -> _Axis:
    return _Axis(len(values), values.__getitem__)


class SweepSpace(Sequence[list[str]]):
    """A sweep's job list as Hydra's basic sweeper orders it, by index, with its size known up front.

    ``size`` is the product of each key's number of values, computed from the parsed overrides
    without expanding them, so a plan can refuse a sweep too large to run before it allocates
    anything; ``space[i]`` is job ``i``'s overrides (the last key varies fastest, as in
    ``itertools.product``). Only an integer range stays lazy; a list or a glob is small already,
    and a float range is materialised only once its size (estimated from start, stop and step) is
    at most ``limit``, so an absurd one fails the bound instead of filling memory.
    """

    def __init__(self, overrides: Sequence[Override], limit: int | None = None) -> None:
        final: dict[str, _Axis] = {}
        for o in overrides:  # a later override of a key replaces the earlier one in its place (dict order)
            key = o.get_key_element()
            final[key] = _axis(o, key, limit)
        self.axes = list(final.values())
        self.size = math.prod(axis.count for axis in self.axes)

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index):  # an int index only
        if not -self.size <= index < self.size:
            raise IndexError(index)
        index %= self.size
        job: list[str] = []
        for axis in reversed(self.axes):
            index, i = divmod(index, axis.count)
            job.append(axis.value(i))
        return job[::-1]

    def __iter__(self) -> Iterator[list[str]]:
        return (list(job) for job in itertools.product(*(map(a.value, range(a.count)) for a in self.axes)))


def _axis(o: Override, key: str, limit: int | None) -> _Axis:
    """``o``'s values; SweepSyntaxError for a sweep without a finite, non-empty list of them."""
    if not o.is_sweep_override():
        return _listed([f"{key}={o.get_value_element_as_str()}"])
    if not o.is_discrete_sweep():
        raise SweepSyntaxError(o, "only list, range and choice sweeps expand into jobs (not interval)")
    sweep = o.value()
    try:
        if isinstance(sweep, RangeSweep) and not sweep.shuffle and isinstance(sweep.range(), range):
            ints = sweep.range()
            count = max(0, -(-(ints.stop - ints.start) // ints.step))  # len() overflows past sys.maxsize
            axis = _Axis(count, lambda i: f"{key}={Override._get_value_element_as_str(ints.start + i * ints.step)}")
        elif isinstance(sweep, RangeSweep) and limit is not None and _float_range_size(sweep) > limit:
            axis = _Axis(_float_range_size(sweep), _never)
        else:
            axis = _listed([f"{key}={v}" for v in o.sweep_string_iterator()])
    except (ValueError, decimal.InvalidOperation) as exc:  # range(a,b,0)
        raise SweepSyntaxError(o, f"{' '.join(str(exc).split())}; a range needs a non-zero step") from exc
    if not axis.count:
        raise SweepSyntaxError(o, "this sweep has no values, so the sweep would have 0 jobs")
    return axis


def _never(i: int) -> str:
    raise IndexError("a float range larger than the bound is never expanded")


def _float_range_size(sweep: RangeSweep) -> int:
    """How many values Hydra's FloatRange yields (within one: it adds the step in Decimal, rounding as it goes)."""
    start, stop, step = (decimal.Decimal(v) for v in (sweep.start, sweep.stop, sweep.step))
    if step == 0:
        raise ValueError("range step cannot be zero")
    return max(0, math.ceil((stop - start) / step))


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


@contextlib.contextmanager
def hydra_config_set_to(cfg: DictConfig, copy: bool = True) -> Iterator[None]:
    """``HydraConfig.get()`` answers from ``cfg`` (its ``hydra`` node) inside; outside, what it answered before,
    including "not set" (so a later ``${hydra:...}`` outside a Hydra run still fails as it should).

    ``copy=False``: from ``cfg``'s own ``hydra`` node, made read-only as ``set_config`` makes it, not
    from the masked copy ``set_config`` makes (~5 ms: ~120 nodes). Only for a config made for this one
    use (a launcher's config for one job): a change to its ``hydra`` node is what HydraConfig answers.
    """
    previous = HydraConfig.instance().cfg
    if copy:
        HydraConfig.instance().set_config(cfg)
    else:
        OmegaConf.set_readonly(cfg.hydra, True)
        HydraConfig.instance().cfg = cfg
    try:
        yield
    finally:
        HydraConfig.instance().cfg = previous
