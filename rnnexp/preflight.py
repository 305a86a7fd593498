"""Checks on the command line before Hydra runs, so bad input costs one line, not a traceback.

Each finding is a ConfigError (``key=value: what is allowed``); cli.main prints it as
``rnnexp: error: ...`` and exits 2. Overrides are parsed with Hydra's own grammar and their keys
checked against the schema. A single run is then composed and validated in full, so nothing
starts that could not run. A multirun checks only what all its jobs share (keys, syntax, presets,
launcher): a bad value inside a sweep fails that job alone, as an error row.
"""

from __future__ import annotations

import os
import traceback
from pathlib import Path

from hydra.core.override_parser.types import Override
from omegaconf import DictConfig, OmegaConf

from rnnexp.config import (
    ConfigError,
    TimingConfig,
    TrackingConfig,
    config_keys,
    suggest_key,
)
from rnnexp.override import (
    check_value,
    fields_of,
    hydra_errors,
    is_timing_setting,
    parse,
    raw_value,
)
from rnnexp.plan import RNNEXP_FLAGS, conf_dir, read_argv
from rnnexp.validation import validate

# Hydra flags that run no job (help, shell completion, config info): nothing for preflight to save.
_NO_JOB_FLAGS = ("help", "hydra_help", "shell_completion", "info", "experimental_rerun")


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


def config_groups(extra_dir: str | None = None) -> list[str]:
    """The config groups (``timing``, ``experiment``, ...): folders of the conf dir and of ``--config-dir``."""
    dirs = [conf_dir(), *([Path(extra_dir)] if extra_dir else [])]
    return sorted({p.name for d in dirs for p in d.iterdir() if p.is_dir() and not p.name.startswith(("_", "."))})


def _is_hydra(key: str) -> bool:
    return key == "hydra" or key.startswith(("hydra.", "hydra/"))


def _is_structure(o: Override, groups: list[str]) -> bool:
    """Overrides every job of a sweep shares the meaning of: group choices and Hydra's own settings."""
    return _is_hydra(o.key_or_group) or o.key_or_group in groups


def check_key(o: Override, groups: list[str]) -> None:
    """Raise ConfigError for a key the schema does not know, or a group or ``+`` used the wrong way."""
    key, value = o.key_or_group, raw_value(o)
    if _is_hydra(key):
        return
    if not key:
        raise ConfigError(key, value, "missing key before '=' (an override is key=value)")
    if o.is_add() and (key in config_keys() or is_timing_setting(key)):
        raise ConfigError(f"+{key}", value, f"{key} is in the config already; drop the + ({key}={value})")
    if key in groups:
        if key not in config_keys() and not (o.is_add() or o.is_force_add()):
            raise ConfigError(key, value, f"not in the defaults list; choose one with +{key}=NAME")
        return
    if "/" in key:
        known = ", ".join([*(g for g in groups if g != "hydra"), "hydra/..."])
        raise ConfigError(key, value, f"unknown config group (groups: {known})")
    if key.startswith("timing."):
        if not is_timing_setting(key):
            names = ", ".join(fields_of(TimingConfig))
            raise ConfigError(key, value, "unknown timing setting" + (suggest_key(key) or f" (allowed: {names})"))
        return
    if key.startswith("tracking."):  # the tracking group's settings (rnnexp.config.TrackingConfig)
        if key.split(".", 1)[1] not in fields_of(TrackingConfig):
            raise ConfigError(key, value, f"unknown tracking setting (allowed: {', '.join(fields_of(TrackingConfig))})")
        return
    if key not in config_keys():
        hint = suggest_key(key, tuple(groups)) or f" (keys: {', '.join(config_keys())})"
        raise ConfigError(key, value, "unknown key" + hint)


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
