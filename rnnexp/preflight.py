"""Checks on the command line before Hydra runs, so bad input costs one line, not a traceback.

Each finding is a ConfigError (``key=value: what is allowed``); cli.main prints it as
``rnnexp: error: ...`` and exits 2. Overrides are parsed with Hydra's own grammar and their keys
checked against the schema. A single run is then composed and validated in full, so nothing
starts that could not run. A multirun checks only what all its jobs share (keys, syntax, presets,
launcher): a bad value inside a sweep fails that job alone, as an error row.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import traceback
import typing
from enum import Enum
from pathlib import Path

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.errors import HydraException, MissingConfigException, OverrideParseException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from rnnexp.config import (
    POSITIVE_INTS,
    ConfigError,
    RunConfig,
    TimingConfig,
    TrackingConfig,
    config_keys,
    suggest_key,
    validate,
)
from rnnexp.plan import RNNEXP_FLAGS, conf_dir, read_argv

# Hydra flags that run no job (help, shell completion, config info): nothing for preflight to save.
_NO_JOB_FLAGS = ("help", "hydra_help", "shell_completion", "info", "experimental_rerun")
NON_NEGATIVE_INTS = ("proj_size", "seed", "warmup", "lyapunov_k", "lyapunov_warmup")
SWEEP_SYNTAX = "a sweep is a,b,c or range(start,stop[,step]) or choice(a,b)"
QUOTING = 'quote a value holding any of \'"=#$[](){},: as KEY="VALUE" (with \\" for a " inside)'
# Lines of Hydra's and OmegaConf's messages that explain nothing about the input itself.
_NOISE = ("Error parsing override", "See https://", "Config search path", "provider=", "Available options in")
_NOISE += ("Set the environment variable", "full_key:", "object_type=", "reference_type=")


def check_argv(argv: list[str]) -> None:
    """Raise ConfigError for the first thing in ``argv`` that cannot run; with HYDRA_FULL_ERROR=1, print its trace."""
    try:
        _check(argv)
    except ConfigError:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":  # Hydra's own switch for full stack traces
            traceback.print_exc()
        raise


def _check(argv: list[str]) -> None:
    args = _hydra_args([a for a in argv if a not in RNNEXP_FLAGS])
    if args is None:
        return
    check_flags(args)
    if any(getattr(args, flag) for flag in _NO_JOB_FLAGS):
        return
    if args.config_dir and not Path(args.config_dir).is_dir():
        raise ConfigError("--config-dir", args.config_dir, "no such directory")
    overrides = [parse(text) for text in args.overrides]
    groups = config_groups(args.config_dir)
    for o in overrides:
        check_key(o, groups)
    if args.config_path or args.config_name:
        return  # another primary config: Hydra reports its own composition errors
    multirun = args.multirun or any(o.key_or_group == "hydra.mode" and o.value() == "MULTIRUN" for o in overrides)
    if multirun:
        check_sweep(overrides, groups, args.config_dir)
    else:
        check_run(overrides, args.config_dir, validating=args.cfg is None)  # --cfg only prints the config


def check_sweep(overrides: list[Override], groups: list[str], extra_dir: str | None) -> None:
    """What every job of a sweep shares: its group choices and Hydra settings compose, its preset's sweep keys exist."""
    shared = [o for o in overrides if _is_structure(o, groups) and not o.is_sweep_override()]
    params = compose(shared, extra_dir, with_hydra=True).hydra.sweeper.get("params") or {}
    for key, value in params.items():
        check_key(parse(f"{key}={value}"), groups)


def check_run(overrides: list[Override], extra_dir: str | None, validating: bool = True) -> None:
    """A single run: every value's type, the composed config, then the range and cross-field rules."""
    for o in overrides:
        check_value(o)
    with hydra_errors(overrides):
        cfg = OmegaConf.to_object(compose(overrides, extra_dir))  # resolves and type-checks every value
    if not validating:
        return
    try:
        validate(cfg)
    except ConfigError as exc:  # name the value as typed (0, not the schema's 0.0) where it was typed
        typed = [o for o in overrides if o.key_or_group == exc.key and not o.is_delete()]
        if typed and raw_value(typed[-1]) != str(exc.value):
            raise ConfigError(exc.key, raw_value(typed[-1]), exc.allowed) from exc
        raise


def _hydra_args(argv: list[str]):
    """Hydra's own reading of the command line, or None where Hydra's argparse would refuse it or exit."""
    inv = read_argv(argv)
    return inv.args if inv is not None else None


def check_flags(args) -> None:
    """The flag combinations Hydra refuses with a traceback (a ValueError outside its error reporting)."""
    commands = {"--run": args.run, "--multirun": args.multirun, "--cfg": args.cfg, "--info": args.info}
    commands["--shell-completion"] = args.shell_completion
    given = [flag for flag, value in commands.items() if value]
    if len(given) > 1:
        value = commands[given[1]] if isinstance(commands[given[1]], str) else ""
        raise ConfigError(given[1], value, f"cannot be combined with {given[0]} (one of {', '.join(commands)})")
    if args.resolve and args.cfg is None and not args.help:
        raise ConfigError("--resolve", "", "works only with --cfg or --help")


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


def config_groups(extra_dir: str | None = None) -> list[str]:
    """The config groups (``timing``, ``experiment``, ...): folders of the conf dir and of ``--config-dir``."""
    dirs = [conf_dir(), *([Path(extra_dir)] if extra_dir else [])]
    return sorted({p.name for d in dirs for p in d.iterdir() if p.is_dir() and not p.name.startswith(("_", "."))})


def _is_hydra(key: str) -> bool:
    return key == "hydra" or key.startswith(("hydra.", "hydra/"))


def _is_structure(o: Override, groups: list[str]) -> bool:
    """Overrides every job of a sweep shares the meaning of: group choices and Hydra's own settings."""
    return _is_hydra(o.key_or_group) or o.key_or_group in groups


def raw_value(o: Override) -> str:
    """The value as typed on the command line."""
    return o.input_line.partition("=")[2]


def check_key(o: Override, groups: list[str]) -> None:
    """Raise ConfigError for a key the schema does not know, or a group or ``+`` used the wrong way."""
    key, value = o.key_or_group, raw_value(o)
    if _is_hydra(key):
        return
    if not key:
        raise ConfigError(key, value, "missing key before '=' (an override is key=value)")
    if o.is_add() and (key in config_keys() or _is_timing_setting(key)):
        raise ConfigError(f"+{key}", value, f"{key} is in the config already; drop the + ({key}={value})")
    if key in groups:
        if key not in config_keys() and not (o.is_add() or o.is_force_add()):
            raise ConfigError(key, value, f"not in the defaults list; choose one with +{key}=NAME")
        return
    if "/" in key:
        known = ", ".join([*(g for g in groups if g != "hydra"), "hydra/..."])
        raise ConfigError(key, value, f"unknown config group (groups: {known})")
    if key.startswith("timing."):
        if not _is_timing_setting(key):
            names = ", ".join(_fields(TimingConfig))
            raise ConfigError(key, value, "unknown timing setting" + (suggest_key(key) or f" (allowed: {names})"))
        return
    if key.startswith("tracking."):  # the tracking group's settings (rnnexp.config.TrackingConfig)
        if key.split(".", 1)[1] not in _fields(TrackingConfig):
            raise ConfigError(key, value, f"unknown tracking setting (allowed: {', '.join(_fields(TrackingConfig))})")
        return
    if key not in config_keys():
        hint = suggest_key(key, tuple(groups)) or f" (keys: {', '.join(config_keys())})"
        raise ConfigError(key, value, "unknown key" + hint)


def _fields(cls: type) -> dict[str, type]:
    return typing.get_type_hints(cls)


def _is_timing_setting(key: str) -> bool:
    return key.startswith("timing.") and key.split(".", 1)[1] in _fields(TimingConfig)


def allowed(key: str) -> str:
    """What the schema accepts for ``key`` (``timing.X`` for a timing setting), in words."""
    owner, name = (TimingConfig, key.split(".", 1)[1]) if key.startswith("timing.") else (RunConfig, key)
    kind = _fields(owner)[name]
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
    if o.is_delete() or not (key in config_keys() or _is_timing_setting(key)) or key in ("timing", "tracking"):
        return
    typed = o.value()
    if isinstance(typed, str) and "${" in typed:
        return  # an interpolation: checked once the config is composed
    try:
        OmegaConf.update(OmegaConf.structured(RunConfig), key, typed, merge=False)
    except OmegaConfBaseException as exc:
        raise ConfigError(key, value, allowed(key)) from exc


def compose(overrides: list[Override], extra_dir: str | None = None, with_hydra: bool = False) -> DictConfig:
    """The config Hydra would compose from ``overrides``; its errors as one-line ConfigErrors.

    Hydra's global state is set only inside ``initialize_config_dir``, which clears it on exit.
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    lines = [o.input_line for o in overrides]
    if extra_dir and not any(o.key_or_group == "hydra.searchpath" for o in overrides):
        lines.append(f"hydra.searchpath=['file://{Path(extra_dir).resolve()}']")  # what --config-dir does
    with hydra_errors(overrides), initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        return hydra_compose(config_name="config", overrides=lines, return_hydra_config=with_hydra)


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
