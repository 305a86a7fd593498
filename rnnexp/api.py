"""The Python API: ``rnnexp.load`` (results into pandas) and ``rnnexp.run`` (one job, in this process).

Both answer a bad input with one exception whose message names the path or the key:
FileNotFoundError for a path that is not there, ValueError for one that holds no results table,
``rnnexp.ConfigError`` (a ValueError) for an override the config refuses, ``rnnexp.ConfigFileError``
for a config file that does not parse, and a ValueError for what only the command line can do (a
sweep, Hydra's settings, flags). pandas, Hydra and the job machinery are imported inside the
functions, so ``import rnnexp`` stays cheap.

>>> import rnnexp
>>> row = rnnexp.run("backend=numpy", "timing=quick", "hidden_size=4", "timesteps=3")
>>> row[["cell", "backend", "hidden_size", "status"]].to_dict("records")
[{'cell': 'rnn', 'backend': 'numpy', 'hidden_size': 4, 'status': 'ok'}]
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

LOG_FILE = "rnnexp.log"  # a run's log, as the CLI names it (conf/hydra/job_logging/rnnexp.yaml)


def load(path: str | os.PathLike, *more: str | os.PathLike) -> pd.DataFrame:
    """The results under one or more paths as one DataFrame, every column with its declared dtype.

    A path is a ``results.csv`` (or a CSV saved from one), a run dir, a sweep dir, or a job dir of a
    sweep. A sweep interrupted before it wrote its table is read from its job dirs (only the jobs
    its manifest records). With several paths the tables are concatenated and a ``source`` column
    (the dir's name, or the whole path where names clash) says which path each row came from.
    A sweep with jobs that have no row, or one still being written, is loaded with a warning saying so.
    """
    import warnings

    from rnnexp.review import inputs

    paths = [Path(p) for p in (path, *more)]
    for p in paths:
        if not p.exists():
            raise FileNotFoundError(f"{p}: no such file or directory (give a results.csv, a run dir or a sweep dir)")
    try:
        loaded = inputs.load_many(paths)
    except inputs.InputError as exc:
        raise ValueError(" ".join(str(exc).split())) from None
    for line in [*loaded.missing, *loaded.busy]:
        warnings.warn(line, UserWarning, stacklevel=2)
    return loaded.table


def run(*overrides: str, out: str | os.PathLike | None = None) -> pd.DataFrame:
    """Run one job with these overrides (``"cell=lstm"``, ``"hidden_size=64"``, ...); its row as a DataFrame.

    The job is composed by Hydra's compose API from the shipped configs, checked as the CLI checks
    a run (a bad key or value raises ConfigError before anything runs), and run in this process.
    The row has the CLI's columns and dtypes; a job that fails is a row with ``status`` error.
    Without ``out`` nothing is written outside a temporary dir that is removed; with ``out`` the
    row, side tables, ``.hydra/``, ``env.json`` and the job's log go there, as a CLI run dir's do
    (``rnnexp report`` and ``rnnexp.load`` read it). The history store and tracking are the CLI's.
    """
    from rnnexp import configfiles, preflight, schema
    from rnnexp.override import parse

    texts = _check_overrides(overrides)
    with configfiles.named():  # a config file that does not parse: its file and line, not PyYAML's trace
        preflight.check_argv(texts)  # exactly a CLI run's checks: keys, values, presets, the composed config
        dcfg = preflight.compose([parse(t) for t in texts])
    with tempfile.TemporaryDirectory(prefix="rnnexp-run-") as tmp:
        root = _out_dir(Path(out)) if out is not None else Path(tmp)
        _run_in(root, dcfg, texts, keep=out is not None)
        return schema.read_table(root / schema.RESULTS)


# What rnnexp.run cannot do: these belong to the command line (a sweep, Hydra's runtime, its flags).
_SWEEP = "rnnexp.run runs one job; for a sweep use the command line: rnnexp -m KEY=A,B"


def _check_overrides(overrides: tuple) -> list[str]:
    from rnnexp.config import ConfigError
    from rnnexp.override import parse

    texts = []
    for o in overrides:
        if not isinstance(o, str):
            raise TypeError(f"rnnexp.run takes overrides as strings such as 'hidden_size=64', not {o!r}")
        if o in ("-m", "--multirun"):
            raise ValueError(f"{o}: {_SWEEP}")
        if o.startswith("-"):
            raise ValueError(f"{o}: rnnexp.run takes only KEY=VALUE overrides; flags are the command line's")
        parsed = parse(o)  # a malformed one: ConfigError naming its key
        key = parsed.key_or_group
        if parsed.is_sweep_override():
            raise ValueError(f"{o}: a sweep over {key}; {_SWEEP}")
        if key == "hydra" or key.startswith(("hydra.", "hydra/")):
            raise ConfigError(key, o.partition("=")[2], "rnnexp.run runs in this process: Hydra's settings do "
                              "not apply (out= chooses where its files go)")  # fmt: skip
        texts.append(o)
    return texts


def _out_dir(out: Path) -> Path:
    """``out`` made (a fresh dir, or an empty one): refused if it holds a run already, or cannot be a dir."""
    from rnnexp import manifest, schema

    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"out={out}: not a directory")
    if (out / schema.RESULTS).exists() or manifest.exists(out):
        raise FileExistsError(f"out={out}: holds a run already (give each run its own dir)")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OSError(exc.errno, f"out={out}: {exc.strerror or exc}") from None
    return out.resolve()


def _run_in(root: Path, dcfg, overrides: list[str], keep: bool) -> None:
    """The job, run into ``root`` under its lock as the CLI's; ``keep``: the dir stays (env.json, GEMM peak cache)."""
    from rnnexp import job
    from rnnexp.dirlock import DirLock
    from rnnexp.runner import JobContext
    from rnnexp.session import Fatal

    # A kept dir caches this machine's GEMM peak, as a CLI run dir does; a temporary one would only lose it.
    ctx = JobContext(concurrent_jobs=1, peak_dir=root if keep else None)
    with DirLock(root, f"rnnexp.run({', '.join(map(repr, overrides))})"), _logged_to(root / LOG_FILE):
        try:
            job.run_into(root, dcfg, 0, overrides, ctx)
        except Fatal as exc:  # BaseException, for the sweep's sake; to a caller it is a file that cannot be written
            raise OSError(str(exc)) from None
        if keep:
            _write_env(root)


def _write_env(root: Path) -> None:
    from rnnexp import envinfo, peak
    from rnnexp.runner import environment

    envinfo.write_env(root / "env.json", {"gemm_peaks": peak.cached_peaks(root)}, env=environment())


@contextlib.contextmanager
def _logged_to(path: Path) -> Iterator[None]:
    """rnnexp's log records go to the run's log file for the duration, as a CLI job's do, not to the terminal."""
    from rnnexp.logs import QuietFileHandler

    logger = logging.getLogger("rnnexp")
    handler = QuietFileHandler(path, delay=True)
    handler.setFormatter(logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"))
    level, propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False  # a notebook's root handlers would print every job line
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate
        handler.close()
