"""What the driver hands every job of one invocation, and how a job ends the whole sweep.

It sits below both ``rnnexp.cli`` (which makes the session and catches :class:`Fatal`) and
``rnnexp.job`` (which runs under it and raises :class:`Fatal`), so neither imports the other's module.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


class Fatal(BaseException):
    """A failure outside any job's own result (a full disk while writing a row): end the sweep, keep the rest."""


@dataclass
class Session:
    """What every job of this invocation needs to know, passed to the task explicitly (picklable)."""

    root: Path
    multirun: bool
    total: int
    concurrent_jobs: int
    started: float
    cache_dir: Path
    shared: set[int] = field(default_factory=set)  # jobs whose float64 reference another job needs too
    ran: int = 0  # jobs run in this process so far (for the ETA)
    driver_pid: int = field(default_factory=os.getpid)  # jobs run elsewhere (joblib, SLURM) get no ETA
