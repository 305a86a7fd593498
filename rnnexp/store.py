"""The history store: every finished run and sweep in one embedded DuckDB file (config key ``store``).

Four tables: ``meta`` (the store's schema version), ``sweeps`` (one row per run or sweep: its
``sweep_id`` and ``sweep_record.Meta``), ``rows`` (every job's declared row with its ``sweep_id``) and
``samples`` (``samples.csv``, likewise). Every write holds a lock beside the file (``NAME.lock``)
around one transaction, so two sweeps finishing at once both land whole, one after the other, and a
writer killed mid-append leaves nothing of itself (DuckDB's write-ahead log keeps committed
transactions only). A store of another schema version is migrated (``MIGRATIONS``) or refused in
one line, never misread. A column the registry declares later is added to ``rows`` when a row first
has it. DuckDB is imported here only, when a store is opened.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from rnnexp import schema
from rnnexp.config import DEFAULT_STORE
from rnnexp.sweep_record import Meta, Record

SCHEMA_VERSION = 1
# version N -> the step that makes a version-N store a version-(N+1) one, run under the lock in one transaction.
# Bump SCHEMA_VERSION (and add a step) when a table's layout changes, or a declared column changes its dtype;
# a newly declared column needs neither: it is added to ``rows`` when a row first has it.
MIGRATIONS: dict[int, Callable[[Any], None]] = {}
LOCK_TIMEOUT_S = 120.0  # an append takes well under a second; a writer waits this long for another
_SQL = {schema.INT: "BIGINT", schema.FLOAT64: "DOUBLE", schema.BOOL: "BOOLEAN", schema.STR: "VARCHAR"}
_META_SQL = {"str": "VARCHAR", "int": "BIGINT", "bool": "BOOLEAN", "int | None": "BIGINT", "bool | None": "BOOLEAN"}
_MAGIC = b"DUCK"  # bytes 8-11 of every DuckDB database file


class StoreError(Exception):
    """A store that cannot be opened, read or written; one line. ``code``: 2 for a bad path, 1 otherwise."""

    def __init__(self, message: str, code: int = 1):
        self.code = code
        super().__init__(message)


class Duplicate(StoreError):
    """The run or sweep is in the store already."""


@dataclass(frozen=True)
class Added:
    sweep_id: int
    replaced: bool  # an interrupted earlier state of the same sweep was replaced by its finished one
    n_rows: int


def resolve(path: Path | str | None = None) -> Path:
    """The store's absolute path: ``path``, or the default ``outputs/history.duckdb``, from the current dir."""
    return Path(os.path.abspath(Path(path if path is not None else DEFAULT_STORE).expanduser()))


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def is_duckdb(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(12)[8:12] == _MAGIC
    except OSError:
        return False


def check_target(path: Path | str, make_dir: bool = False) -> Path:
    """Before anything is written: the store's dir exists (``make_dir``: is made) and is writable, its file a store."""
    p = resolve(path)
    if p.is_dir():
        raise StoreError(f"store {p}: is a directory (give a file, e.g. {p / 'history.duckdb'})", 2)
    if not p.parent.is_dir() and make_dir and not p.parent.exists():
        try:
            p.parent.mkdir(parents=True)
        except OSError as exc:
            raise StoreError(f"store {p}: cannot make its dir: {exc.strerror or exc}", 2) from None
    if not p.parent.is_dir():
        raise StoreError(f"store {p}: no such directory {p.parent} (make it, or choose another store=PATH)", 2)
    if not os.access(p.parent, os.W_OK | os.X_OK) or (p.exists() and not os.access(p, os.R_OK | os.W_OK)):
        raise StoreError(f"store {p}: not writable (choose a writable store=PATH, or store=null for none)", 2)
    if p.exists() and p.stat().st_size:
        if not is_duckdb(p):
            raise StoreError(f"store {p}: not a rnnexp history store (not a DuckDB file); choose another store=PATH", 2)
        with _locked(p, writing=True):  # a DuckDB file of something else, or of a version this rnnexp cannot read
            con = _connect(p, writing=False)
            try:
                version = _version(con, p)
            finally:
                con.close()
        if version is not None and not _readable(version):
            _refuse_version(p, version)
    return p


@contextlib.contextmanager
def _locked(p: Path, writing: bool) -> Iterator[None]:
    """The store's lock; a reader that cannot make the lock file (a read-only dir) reads without it."""
    from filelock import FileLock, Timeout

    from rnnexp.locking import lock_path

    lock = FileLock(lock_path(p), timeout=LOCK_TIMEOUT_S)
    try:
        lock.acquire()
    except Timeout:
        raise StoreError(f"store {p}: busy: another writer held it for {LOCK_TIMEOUT_S:.0f}s") from None
    except OSError as exc:
        if writing:
            raise StoreError(f"store {p}: cannot lock it: {exc.strerror or exc}", 2) from None
        yield
        return
    try:
        yield
    finally:
        lock.release()


def _connect(p: Path, writing: bool) -> Any:
    import duckdb

    try:
        return duckdb.connect(str(p), read_only=not writing)
    except duckdb.Error as exc:
        why = " ".join(str(exc).split())[:200]
        raise StoreError(f"store {p}: cannot open it as a rnnexp history store ({why})", 2) from None


def _one(con: Any, sql: str, params: list[Any] | None = None) -> tuple | None:
    """The first row of a query, the result read to its end (DuckDB refuses new work while one is open)."""
    found = con.execute(sql, params or []).fetchall()
    return found[0] if found else None


def _tables(con: Any) -> set[str]:
    sql = "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'"
    return {r[0] for r in con.execute(sql).fetchall()}


def _version(con: Any, p: Path) -> int | None:
    """The store's schema version; None for a new, empty file."""
    tables = _tables(con)
    if not tables:
        return None
    if "meta" not in tables:
        raise StoreError(f"store {p}: a DuckDB file, but not a rnnexp history store (no meta table)", 2)
    row = _one(con, "SELECT value FROM meta WHERE key = 'schema_version'")
    try:
        return int(row[0])
    except (TypeError, ValueError):
        raise StoreError(f"store {p}: not a rnnexp history store (no schema version)", 2) from None


def _create(con: Any) -> None:
    meta_cols = ", ".join(f"{_q(f.name)} {_META_SQL[str(f.type)]}" for f in dataclasses.fields(Meta))
    con.execute("CREATE TABLE meta (key VARCHAR, value VARCHAR)")
    con.execute("INSERT INTO meta VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)])
    con.execute(f"CREATE TABLE sweeps (sweep_id BIGINT, {meta_cols})")
    for name, table in (("rows", schema.RESULTS), ("samples", schema.SAMPLES)):
        cols = ", ".join(f"{_q(c.name)} {_SQL[c.dtype]}" for c in schema.columns(table))
        con.execute(f"CREATE TABLE {name} (sweep_id BIGINT, {cols})")


def _readable(version: int) -> bool:
    """This version, or an older one with a migration step for every version between."""
    return version == SCHEMA_VERSION or (
        version < SCHEMA_VERSION and all(v in MIGRATIONS for v in range(version, SCHEMA_VERSION))
    )


def _refuse_version(p: Path, version: int) -> None:
    raise StoreError(
        f"store {p}: written with history schema version {version}; this rnnexp reads version {SCHEMA_VERSION}"
        f"{' and cannot migrate it' if version < SCHEMA_VERSION else ' (a newer rnnexp wrote it)'}; "
        "use the rnnexp that wrote it, or another store=PATH",
        2,
    )


def _ready(con: Any, p: Path, writing: bool) -> None:
    """Create a new store, migrate an older one (when writing), or refuse one this rnnexp cannot read."""
    version = _version(con, p)
    if version == SCHEMA_VERSION:
        return
    if version is None:
        if not writing:
            raise StoreError(f"store {p}: empty (no sweep stored yet)", 1)
        con.begin()
        _create(con)
        con.commit()
        return
    if not _readable(version):
        _refuse_version(p, version)
    if not writing:
        raise StoreError(
            f"store {p}: schema version {version}, older than {SCHEMA_VERSION}: make it writable to migrate it"
        )
    con.begin()
    for v in range(version, SCHEMA_VERSION):
        MIGRATIONS[v](con)
    con.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", [str(SCHEMA_VERSION)])
    con.commit()


@contextlib.contextmanager
def connect(path: Path | str | None = None, writing: bool = False) -> Iterator[Any]:
    """An open, current store under its lock; StoreError (one line) for a path that is not one."""
    p = resolve(path)
    if writing:
        check_target(p)
    elif not p.is_file():
        where = "no such directory" if not p.parent.is_dir() else "no such store"
        raise StoreError(f"store {p}: {where} (finished sweeps are added to it; or: rnnexp history add DIR)", 2)
    elif not is_duckdb(p):
        raise StoreError(f"store {p}: not a rnnexp history store (not a DuckDB file)", 2)
    can_write = writing or os.access(p, os.W_OK)
    with _locked(p, writing):
        con = _connect(p, can_write)
        try:
            _ready(con, p, can_write)
            yield con
        finally:
            con.close()


_COLUMNS = "SELECT column_name FROM information_schema.columns WHERE table_name = ?"


def _add_columns(con: Any, table: str, frame: pd.DataFrame, declared: str) -> pd.DataFrame:
    """``frame`` ready to insert: new declared columns added to ``table``, undeclared ones added as text."""
    have = {r[0] for r in con.execute(_COLUMNS, [table]).fetchall()}
    out = frame.copy()
    for name in frame.columns:
        col = schema.column(name, declared)
        if col is None:
            out[name] = frame[name].astype("string")
        if name not in have:
            con.execute(f"ALTER TABLE {table} ADD COLUMN {_q(name)} {_SQL[col.dtype] if col else 'VARCHAR'}")
    return out


def _insert(con: Any, table: str, frame: pd.DataFrame, sweep_id: int) -> None:
    if frame.empty:
        return
    con.register("incoming", frame)
    try:
        con.execute(f"INSERT INTO {table} BY NAME SELECT {int(sweep_id)} AS sweep_id, * FROM incoming")
    finally:
        con.unregister("incoming")


def _existing(con: Any, key: str) -> tuple[int, int, int, str] | None:
    sql = "SELECT sweep_id, n_rows, n_missing, added_utc FROM sweeps WHERE key = ?"
    return _one(con, sql, [key])


def _fuller(con: Any, old: tuple, record: Record) -> bool:
    """Whether ``record`` is a later state of stored sweep ``old``: more rows, or more ok ones (a resume ran them)."""
    ok_before = _one(con, "SELECT count(*) FROM rows WHERE sweep_id = ? AND status = 'ok'", [old[0]])[0]
    ok_now = int((record.rows["status"] == "ok").sum()) if "status" in record.rows else 0
    return record.meta.n_rows > old[1] or ok_now > ok_before


def append(path: Path | str | None, record: Record) -> Added:
    """Add ``record`` in one transaction; Duplicate when the same run or sweep is stored already.

    A sweep stored unfinished (jobs without rows, or failed ones) is replaced by a later, fuller state of
    it: what ``rnnexp resume`` makes of it.
    """
    with connect(path, writing=True) as con:
        con.begin()
        try:
            old = _existing(con, record.meta.key)
            if old is not None and not _fuller(con, old, record):
                raise Duplicate(f"{record.meta.sweep_dir}: already in the store as sweep {old[0]} (added {old[3]})")
            if old is not None:
                for table in ("rows", "samples", "sweeps"):
                    con.execute(f"DELETE FROM {table} WHERE sweep_id = ?", [old[0]])
                sweep_id = int(old[0])
            else:
                sweep_id = int(_one(con, "SELECT coalesce(max(sweep_id), 0) + 1 FROM sweeps")[0])
            rows = _add_columns(con, "rows", record.rows, schema.RESULTS)
            samples = _add_columns(con, "samples", record.samples, schema.SAMPLES)
            _insert(con, "rows", rows, sweep_id)
            _insert(con, "samples", samples, sweep_id)
            _insert(con, "sweeps", pd.DataFrame([record.meta.as_dict()]), sweep_id)
            con.commit()
        except BaseException:
            con.rollback()
            raise
    return Added(sweep_id, old is not None, record.meta.n_rows)


def sweeps(path: Path | str | None = None) -> pd.DataFrame:
    """Every stored run and sweep, oldest first: its id and metadata (not the whole env.json)."""
    with connect(path) as con:
        cols = ", ".join(_q(f.name) for f in dataclasses.fields(Meta) if f.name != "env_json")
        return con.execute(f"SELECT sweep_id, {cols} FROM sweeps ORDER BY started_utc, sweep_id").df()


def _where(equals: dict[str, Any] | None, like: pd.DataFrame | None) -> tuple[str, list[Any]]:
    """The rows' filter: ``key = value`` as text or number, and equal in ``like``'s columns to one of its rows."""
    parts, params = ["TRUE"], []
    for key, value in (equals or {}).items():
        text = f"lower(CAST(r.{_q(key)} AS VARCHAR)) = lower(?)"
        try:  # 1 and 1.0 are the same number
            number = float(value)
        except ValueError:
            parts.append(text)
            params.append(str(value))
            continue
        parts.append(f"({text} OR TRY_CAST(r.{_q(key)} AS DOUBLE) = ?)")
        params += [str(value), number]
    if like is not None:
        same = " AND ".join(f"r.{_q(k)} IS NOT DISTINCT FROM w.{_q(k)}" for k in like.columns) or "TRUE"
        parts.append(f"EXISTS (SELECT 1 FROM wanted w WHERE {same})")
    return " AND ".join(parts), params


def select(
    path: Path | str | None = None,
    equals: dict[str, Any] | None = None,
    like: pd.DataFrame | None = None,
    phases: tuple[str, ...] | None = None,
    columns: list[str] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """(rows, samples): the stored job rows that match, oldest sweep first, each with its sweep's ``sweep_id``,
    ``machine`` and ``started_utc``; with ``phases``, the samples of the ok ones among them in those phases.

    ``equals`` compares a column with a value as text (``hidden_size=64``, ``bidirectional=true``);
    ``like`` keeps rows equal in its columns to one of its rows (a missing value equals a missing one);
    ``columns``: only these of the rows' columns (the stored ones among them), for a fast narrow read.
    """
    where, params = _where(equals, like)
    with connect(path) as con:
        stored = {r[0] for r in con.execute(_COLUMNS, ["rows"]).fetchall()}
        picked = ", ".join(f"r.{_q(c)}" for c in columns if c in stored) if columns else "r.* EXCLUDE (sweep_id)"
        head = f"SELECT r.sweep_id, s.machine, s.started_utc, {picked} FROM rows r JOIN sweeps s USING (sweep_id)"
        if like is not None:
            con.register("wanted", like)
        found = _typed(con.execute(f"{head} WHERE {where} ORDER BY s.started_utc, r.sweep_id, r.job_num", params).df())
        if phases is None:
            return found, None
        chosen = f" AND m.phase IN ({', '.join('?' * len(phases))})" if phases else ""
        sql = (
            "SELECT m.sweep_id, m.job_num, m.phase, m.block_size, m.block_time_s FROM samples m "
            "JOIN rows r ON r.sweep_id = m.sweep_id AND r.job_num = m.job_num "
            f"WHERE r.status = 'ok' AND {where}{chosen}"
        )
        return found, con.execute(sql, [*params, *phases]).df()


def _typed(df: pd.DataFrame) -> pd.DataFrame:
    """The declared dtypes; DuckDB gives most already (a full ``schema.coerce`` would cost ~3 ms a column)."""
    differ = [c for c in df.columns if (col := schema.column(c)) is not None and str(df[c].dtype) != col.dtype]
    if differ:
        df = df.copy()
        df[differ] = schema.coerce(df[differ])
    return df
