"""Reading one override as Hydra will, and saying in one line what is wrong with it.

Shared by the checks before a run (``rnnexp.preflight``), the plan (``rnnexp.plan``) and the trust
checks on a recorded sweep (``rnnexp.trust``); it sits below all three so none imports another's
module for these words. Each finding is a ConfigError (``key=value: what is allowed``).
"""

from __future__ import annotations

import contextlib
import functools
import re
import typing
from enum import Enum

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.errors import HydraException, MissingConfigException, OverrideParseException
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from rnnexp.config import POSITIVE_INTS, ConfigError, RunConfig, TimingConfig, config_keys, suggest_key

NON_NEGATIVE_INTS = ("proj_size", "seed", "warmup", "lyapunov_k", "lyapunov_warmup")
SWEEP_SYNTAX = "a sweep is a,b,c or range(start,stop[,step]) or choice(a,b)"
QUOTING = 'quote a value holding any of \'"=#$[](){},: as KEY="VALUE" (with \\" for a " inside)'
# Lines of Hydra's and OmegaConf's messages that explain nothing about the input itself.
_NOISE = ("Error parsing override", "See https://", "Config search path", "provider=", "Available options in")
_NOISE += ("Set the environment variable", "full_key:", "object_type=", "reference_type=")


@functools.cache
def _parser() -> OverridesParser:
    return OverridesParser.create()


def parse(text: str) -> Override:
    """One override, parsed as Hydra will parse it; a ConfigError naming its key if it is malformed."""
    try:
        return _parser().parse_overrides([text])[0]
    except ValueError as exc:  # Hydra's parser raises it for range(a,b,0)
        key, _, value = text.partition("=")
        raise ConfigError(key.lstrip("~+"), value, f"{' '.join(str(exc).split())}; {SWEEP_SYNTAX}") from exc
    except OverrideParseException as exc:
        key, eq, value = text.partition("=")
        if not eq:
            raise ConfigError(text.lstrip("~+"), "", "missing '=' and a value (an override is key=value)") from exc
        reason = re.sub(r" expecting \{.*?\}", "", _one_line(exc.message))
        hint = QUOTING if re.search(r"['\"#$=\\\s]", value) else SWEEP_SYNTAX
        raise ConfigError(key.lstrip("~+"), value, f"malformed override ({reason}); {hint}") from exc


def raw_value(o: Override) -> str:
    """The value as typed on the command line."""
    return o.input_line.partition("=")[2]


def fields_of(cls: type) -> dict[str, type]:
    return typing.get_type_hints(cls)


def is_timing_setting(key: str) -> bool:
    return key.startswith("timing.") and key.split(".", 1)[1] in fields_of(TimingConfig)


def allowed(key: str) -> str:
    """What the schema accepts for ``key`` (``timing.X`` for a timing setting), in words."""
    owner, name = (TimingConfig, key.split(".", 1)[1]) if key.startswith("timing.") else (RunConfig, key)
    kind = fields_of(owner)[name]
    if isinstance(kind, type) and issubclass(kind, Enum):
        return "allowed: " + ", ".join(member.value for member in kind)
    if kind is bool:
        return "must be true or false"
    if kind is int and name in POSITIVE_INTS:
        return "must be a positive integer (>= 1)"
    if kind is int:
        return "must be an integer >= 0" if name in NON_NEGATIVE_INTS else "must be an integer"
    return "must be a number" if kind is float else f"must be a {getattr(kind, '__name__', kind)}"


def check_value(o: Override) -> None:
    """Raise ConfigError for a sweep in a single run, or a value of the wrong type for its key."""
    key, value = o.key_or_group, raw_value(o)
    if o.is_sweep_override():
        raise ConfigError(key, value, "a sweep needs -m/--multirun (for a list write [a,b], for a string quote it)")
    if o.is_delete() or not (key in config_keys() or is_timing_setting(key)) or key in ("timing", "tracking"):
        return
    typed = o.value()
    if isinstance(typed, str) and "${" in typed:
        return  # an interpolation: checked once the config is composed
    try:
        OmegaConf.update(OmegaConf.structured(RunConfig), key, typed, merge=False)
    except OmegaConfBaseException as exc:
        raise ConfigError(key, value, allowed(key)) from exc


@contextlib.contextmanager
def hydra_errors(overrides: list[Override]):
    """Turn Hydra's and OmegaConf's exceptions raised inside into one-line ConfigErrors (chained)."""
    try:
        yield
    except (HydraException, OmegaConfBaseException) as exc:
        raise from_hydra(exc, overrides) from exc


def from_hydra(exc: Exception, overrides: list[Override]) -> ConfigError:
    """Hydra's or OmegaConf's multi-line complaint as ``key=value: reason``, naming the override to blame."""
    if isinstance(exc, MissingConfigException) and "/" in (exc.missing_cfg_file or ""):
        group, _, name = exc.missing_cfg_file.rpartition("/")
        what = "preset" if group == "experiment" else "option"
        options = f" (available: {', '.join(exc.options)})" if exc.options else ""
        return ConfigError(group, name, f"no such {what} in {group}/{options}")
    cause = exc.__cause__ if isinstance(exc.__cause__, OmegaConfBaseException) else exc
    text = str(cause)
    preset = re.match(r"In '([^']+)/([^']+)': \w+ raised while composing config:", text)
    unknown = re.search(r"Key '([^']+)' not in 'RunConfig'", text)
    reason = _one_line(text[preset.end() :] if preset else text) + (suggest_key(unknown.group(1)) if unknown else "")
    if preset:  # a broken preset file: blame the preset, then say what is wrong inside it
        return ConfigError(preset.group(1), preset.group(2), reason)
    key = getattr(cause, "full_key", None) or ""
    blamed = [o for o in overrides if o.key_or_group == key] or [o for o in overrides if o.input_line in str(exc)]
    if blamed:
        key, value = blamed[-1].key_or_group, raw_value(blamed[-1])
    else:
        value = ""
    return ConfigError(key or "config", value, reason)


def _one_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines()]
    return "; ".join(line for line in lines if line and not line.startswith(_NOISE)) or "invalid"
