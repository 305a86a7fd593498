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

from rnnexp import manifest as mf
from rnnexp import schema
from rnnexp.review import checks, coverage
from rnnexp.review.escape import terminal_text

log = logging.getLogger(__name__)

SIDE = (schema.STEPS, schema.LAYER_STATS, schema.SAMPLES, schema.LYAPUNOV)
ENV_FILE = "env.json"
SOURCE = "source"  # added when several inputs are read together: which input a row came from


class InputError(Exception):
    """A path that holds no usable results; the message is one line naming it."""


@dataclass
class Results:
    """One input's rows, the side tables found beside them (by file name), its env.json, and what it lacks.

    ``missing``: what a manifest recorded but no row holds, in a phrase (None when nothing is missing or
    there is no manifest to tell); ``busy``: the dirs still being written and by whom; ``notes``: what
    else a reader should know (side rows with no row of their own, an unreadable manifest).
    """

    path: Path
    table: pd.DataFrame
    sides: dict[str, pd.DataFrame] = field(default_factory=dict)
    env: dict = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    busy: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

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


def _recorded(folder: Path) -> tuple[list[mf.Job] | None, str | None]:
    """The jobs the dir's manifest records (None without one) and, for an unreadable manifest, why."""
    if not mf.exists(folder):
        return None, None
    try:
        return mf.load(folder).jobs, None
    except ValueError as exc:
        return None, " ".join(str(exc).split())
    except (AttributeError, TypeError):  # valid JSON of another shape (a list, a string) slips past mf.load
        return None, f"{folder / mf.MANIFEST}: not a readable rnnexp manifest (not a JSON object with jobs)"


def _gather(folder: Path, table: str, by_manifest: bool) -> pd.DataFrame | None:
    """``table`` at the root, else its jobs' (by the manifest: only this sweep's) concatenated; None if none."""
    root = folder / table
    if root.is_file():
        return _read(root, table)
    if by_manifest:
        from rnnexp import results

        try:
            df = results.collect(folder, table)
            return None if df.empty else schema.coerce(df, table, f"{folder} (its jobs' {table})")
        except schema.TableError as exc:
            raise InputError(str(exc)) from None
        except (OSError, ValueError, pd.errors.ParserError) as exc:
            raise InputError(f"{folder}: its jobs' {table} cannot be read ({' '.join(str(exc).split())})") from None
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
        log.warning("%s: unreadable (%s); ignored", terminal_text(path), terminal_text(exc))
        return {}


def _check(path: Path, table: pd.DataFrame, sides: dict[str, pd.DataFrame]) -> list[str]:
    """Refuse what no run writes (a job's row twice, an impossible value); the orphaned side rows, as notes."""
    twice = checks.duplicate_jobs(table)
    if twice:
        raise InputError(f"{path}: {twice}")
    for name, t in {schema.RESULTS: table, **sides}.items():
        bad = schema.out_of_range(t, name)
        if bad:
            more = f"; and {len(bad) - 1} more columns" if len(bad) > 1 else ""
            raise InputError(f"{path}: {'' if name == schema.RESULTS else name + ': '}{bad[0]}{more}")
    return checks.orphaned(table, sides)


def load(path: Path | str) -> Results:
    """The results under ``path``: a results CSV, a run or job dir holding one, or a sweep dir.

    Side tables are read from the same dir (or its job dirs) when the input is a dir or a file
    named results.csv; beside a CSV of another name (a baseline OUT.csv) they are OUT.<table>.
    A table no run writes (a job's row twice, ``time_median_ms=inf``, ``hidden_size=-5``) is refused.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file or directory")
    jobs, unreadable = _recorded(path) if path.is_dir() else (None, None)
    if path.is_dir():
        if unreadable and not (path / schema.RESULTS).is_file():
            raise InputError(f"{unreadable}; without it (and without a root {schema.RESULTS}) this sweep's rows "
                             "cannot be told from others")  # fmt: skip
        table = _gather(path, schema.RESULTS, jobs is not None)
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
            side = _gather(folder, name, jobs is not None)
        else:  # a baseline OUT.csv keeps its side tables as OUT.<table> (rnnexp.review.baseline)
            beside = path.with_name(f"{path.stem}.{name}")
            side = _read(beside, name) if beside.is_file() else None
        if side is not None:
            sides[name] = side
    res = Results(path, table, sides, _env(folder) if folder is not None else {}, notes=_check(path, table, sides))
    if unreadable:
        res.notes.append(f"{unreadable}: which of its jobs have no row cannot be said")
    if jobs is not None and (lacking := coverage.missing_jobs(jobs, table)):
        res.missing.append(coverage.missing_phrase(lacking, len(jobs)))
    root = coverage.sweep_root(path)
    if root is not None and (holder := coverage.live_holder(root)):
        res.busy.append(f"{root} is still being written by {holder}")
    return res


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
    said = lambda attr: [f"{n}: {line}" for r, n in zip(loaded, names, strict=True) for line in getattr(r, attr)]  # noqa: E731
    table = pd.concat([r.table.assign(**{SOURCE: n}) for r, n in zip(loaded, names, strict=True)], ignore_index=True)
    sides = {}
    for side in SIDE:
        parts = [r.sides[side].assign(**{SOURCE: n}) for r, n in zip(loaded, names, strict=True) if side in r.sides]
        if parts:
            sides[side] = pd.concat(parts, ignore_index=True)
    return Results(Path(paths[0]), table, sides, loaded[0].env, said("missing"), said("busy"), said("notes"))


def join_keys(table: pd.DataFrame, side: pd.DataFrame) -> list[str]:
    """What a side table joins the results on: job_num, and the source when several inputs were read."""
    return [c for c in (SOURCE, "job_num") if c in table and c in side]
