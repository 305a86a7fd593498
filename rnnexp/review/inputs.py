"""Reading what a run left: a results table and its side tables, from a file, a run dir or a sweep dir.

A sweep interrupted before its root tables were written is rebuilt from its job dirs. Every table
comes back with its declared dtypes (``rnnexp.schema.read_table``).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from rnnexp import schema

log = logging.getLogger(__name__)

SIDE = (schema.STEPS, schema.LAYER_STATS, schema.SAMPLES, schema.LYAPUNOV)
ENV_FILE = "env.json"
SOURCE = "source"  # added when several inputs are read together: which input a row came from


class InputError(Exception):
    """A path that holds no usable results; the message is one line naming it."""


@dataclass
class Results:
    """One input's rows, the side tables found beside them (by file name), and its env.json."""

    path: Path
    table: pd.DataFrame
    sides: dict[str, pd.DataFrame] = field(default_factory=dict)
    env: dict = field(default_factory=dict)

    def side(self, name: str) -> pd.DataFrame | None:
        return self.sides.get(name)


def is_run_dir(path: Path) -> bool:
    """A dir rnnexp made (a run, a sweep or one of its jobs): reports may be written into it."""
    path = Path(path)
    return path.is_dir() and any((path / m).exists() for m in (ENV_FILE, "manifest.json", "multirun.yaml", ".hydra"))


def _job_key(path: Path) -> tuple:
    name = path.parent.name
    return (0, int(name), "") if name.isdigit() else (1, 0, name)


def job_files(folder: Path, name: str) -> list[Path]:
    """Every job dir's ``name`` under a sweep dir, in job order."""
    return sorted(Path(folder).glob(f"*/{name}"), key=_job_key)


def _read(path: Path, table: str) -> pd.DataFrame:
    try:
        return schema.read_table(path, table)
    except schema.TableError as exc:
        raise InputError(str(exc)) from None
    except OSError as exc:
        raise InputError(f"{path}: {exc.strerror or exc}") from None


def _gather(folder: Path, table: str) -> pd.DataFrame | None:
    """``table`` at the root, else its jobs' (by the manifest: only this sweep's) concatenated; None if none."""
    root = folder / table
    if root.is_file():
        return _read(root, table)
    if (folder / "manifest.json").is_file():
        from rnnexp import results

        df = results.collect(folder, table)
        return None if df.empty else schema.coerce(df, table, str(folder))
    files = job_files(folder, table)
    if not files:
        return None
    return pd.concat([_read(f, table) for f in files], ignore_index=True)


def _env(folder: Path) -> dict:
    path = folder / ENV_FILE
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        log.warning("%s: unreadable (%s); ignored", path, exc)
        return {}


def load(path: Path | str) -> Results:
    """The results under ``path``: a results CSV, a run or job dir holding one, or a sweep dir.

    Side tables are read from the same dir (or its job dirs) when the input is a dir or a file
    named results.csv; beside a CSV of another name (a baseline OUT.csv) they are OUT.<table>.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file or directory")
    if path.is_dir():
        table = _gather(path, schema.RESULTS)
        if table is None:
            raise InputError(f"{path}: no {schema.RESULTS} in it or in its job dirs")
        folder = path
    else:
        table = _read(path, schema.RESULTS)
        folder = path.parent if path.name == schema.RESULTS else None
    if table.empty:
        raise InputError(f"{path}: results table has no rows")
    sides = {}
    for name in SIDE:
        if folder is not None:
            side = _gather(folder, name)
        else:  # a baseline OUT.csv keeps its side tables as OUT.<table> (rnnexp.review.baseline)
            beside = path.with_name(f"{path.stem}.{name}")
            side = _read(beside, name) if beside.is_file() else None
        if side is not None:
            sides[name] = side
    return Results(path, table, sides, _env(folder) if folder is not None else {})


def source_names(paths: list[Path]) -> list[str]:
    """Short names for inputs in tables and legends: the sweep or run dir's name, or the whole path if those clash."""
    short = [p.name if p.is_dir() else p.parent.name or p.name for p in paths]
    return short if len(set(short)) == len(short) else [str(p) for p in paths]


def load_many(paths: list[Path]) -> Results:
    """Several inputs as one: every table gets a ``source`` column when there is more than one input."""
    loaded = [load(p) for p in paths]
    if len(loaded) == 1:
        return loaded[0]
    names = source_names([Path(p) for p in paths])
    table = pd.concat([r.table.assign(**{SOURCE: n}) for r, n in zip(loaded, names, strict=True)], ignore_index=True)
    sides = {}
    for side in SIDE:
        parts = [r.sides[side].assign(**{SOURCE: n}) for r, n in zip(loaded, names, strict=True) if side in r.sides]
        if parts:
            sides[side] = pd.concat(parts, ignore_index=True)
    return Results(Path(paths[0]), table, sides, loaded[0].env)


def join_keys(table: pd.DataFrame, side: pd.DataFrame) -> list[str]:
    """What a side table joins the results on: job_num, and the source when several inputs were read."""
    return [c for c in (SOURCE, "job_num") if c in table and c in side]
