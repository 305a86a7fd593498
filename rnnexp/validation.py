"""Whether a job can run: the config's own rules, then what its backend and its dynamics accept.

It sits above ``rnnexp.config`` (the schema and the rules that read the config alone), the backend
registry and ``rnnexp.dynamics``, so the config module imports none of them. The backend's own
check comes last: it may import the backend's framework (torch), which a config that breaks a
plain rule never needs to pay for.
"""

from __future__ import annotations

from rnnexp import backends, dynamics
from rnnexp.config import ConfigError, RunConfig, check_values


def validate(cfg: RunConfig) -> None:
    """Raise ConfigError for the first rule ``cfg`` breaks, config rules first."""
    check_values(cfg)
    if cfg.backend not in backends.names():
        raise ConfigError("backend", cfg.backend, f"allowed: {', '.join(backends.names())}")
    backends.check_supported(cfg)  # what it declares it cannot run (a linear cell, training, ...), then its check
    dynamics.check(cfg)  # undefined or hours-long dynamics are refused before the job starts
