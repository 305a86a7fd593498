from __future__ import annotations

import copy
import functools
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from rnnexp.config import RunConfig
from rnnexp.plan import conf_dir

ROOT = Path(__file__).resolve().parent.parent


@functools.cache
def _composed(overrides: tuple[str, ...]) -> RunConfig:
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        return OmegaConf.to_object(compose(config_name="config", overrides=list(overrides)))


def make_config(*overrides: str) -> RunConfig:
    """A typed RunConfig composed by Hydra from conf/, as the CLI composes it (a fresh copy)."""
    return copy.deepcopy(_composed(tuple(overrides)))


@pytest.fixture
def cfg_of():
    return make_config


def run_cli(args: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    """The real CLI in a subprocess, under ``cwd`` (so outputs/ lands there)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HYDRA_FULL_ERROR": "0"}
    env.pop("HYDRA_FULL_ERROR")
    return subprocess.run(
        [sys.executable, "-m", "rnnexp", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def sweep_table(cwd: Path) -> pd.DataFrame:
    """The one sweep table a CLI run under ``cwd`` wrote."""
    tables = list((cwd / "outputs" / "multirun").glob("*/*/results.csv"))
    assert len(tables) == 1, tables
    return pd.read_csv(tables[0])


def run_table(cwd: Path) -> pd.DataFrame:
    tables = list((cwd / "outputs" / "runs").glob("*/*/results.csv"))
    assert len(tables) == 1, tables
    return pd.read_csv(tables[0])


def default_signals() -> None:
    """``preexec_fn`` for a CLI started by a test: SIGINT and SIGTERM as a terminal gives them.

    A test runner started in the background (``cmd &``, nohup) ignores SIGINT, and a child inherits
    that; Python then never raises KeyboardInterrupt, so an interrupt test would test nothing.
    """
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
