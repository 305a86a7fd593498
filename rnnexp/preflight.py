"""Checks on the command line before Hydra runs, so a typo costs one line, not a traceback."""

from __future__ import annotations

from rnnexp.config import ConfigError, config_keys, suggest_key


def check_argv(argv: list[str]) -> None:
    """Raise ConfigError for an override whose key the schema does not know."""
    for arg in argv:
        if arg.startswith("-") or "=" not in arg:
            continue
        key = arg.split("=", 1)[0].lstrip("+~")
        if "/" in key or key.startswith("hydra.") or key in ("experiment", "timing") or key.startswith("timing."):
            continue
        if key not in config_keys():
            raise ConfigError(key, arg.split("=", 1)[1], "unknown key" + suggest_key(key))
