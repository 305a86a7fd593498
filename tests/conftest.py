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


@pytest.fixture
def extra_backend(tmp_path, monkeypatch):
    """``add(module, source=None)``: a registry line for ``module`` (written to tmp_path from ``source`` if
    given), as a new backend adds one; the registry, sys.path and every monkeypatch are put back after."""
    from rnnexp import backends

    monkeypatch.syspath_prepend(str(tmp_path))

    def add(module: str, source: str | None = None) -> None:
        if source is not None:
            (tmp_path / f"{module}.py").write_text(source)
        monkeypatch.setattr(backends, "_MODULES", (*backends._MODULES, module))
        backends._registry.cache_clear()

    yield add
    monkeypatch.undo()
    backends._registry.cache_clear()


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


def interruptible_cli(*args: str) -> list[str]:
    """The CLI's command line for a test that interrupts it: SIGINT raises KeyboardInterrupt, as at a terminal.

    A test runner started in the background (``cmd &``, nohup) ignores SIGINT and its children inherit
    that, so Python would never raise KeyboardInterrupt and an interrupt test would test nothing. The
    handler is set in the child's own interpreter (a ``preexec_fn`` would fork a process that may run
    JAX's threads).
    """
    code = (
        "import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
        "signal.signal(signal.SIGTERM, signal.SIG_DFL); sys.argv[0] = 'rnnexp'; "
        "runpy.run_module('rnnexp', run_name='__main__', alter_sys=True)"
    )
    return [sys.executable, "-c", code, *args]
