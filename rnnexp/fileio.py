"""Writing files so that a reader sees the old file or the whole new one, never a part.

The one atomic writer of the project: every table, JSON record and text file rnnexp writes goes
through :func:`write_atomic`. The data goes to a temp file beside the target (``.NAME.PID.rnnexp.tmp``),
is flushed and fsync'd, given the mode the process umask gives any new file (0644 under umask
022; ``mkstemp`` alone would leave 0600), then renamed over the target; the dir is fsync'd so
the rename itself survives a crash. On any failure (a full disk, an interrupt) the temp file is
removed and the target is left as it was. A temp file left by a killed process is stale: the next
run in that dir removes it (:func:`remove_stale_temps`), and nothing else.

``durable=False`` leaves out both fsyncs: the file is still whole or absent for any reader and
against a killed process (the rename is atomic), but not across a power loss or an OS crash. A
job's own files are written so (``rnnexp.results.write_job``): their 12 fsyncs cost ~42 ms a job on
this machine's disk, more than the rest of the harness per job; the sweep's own files stay durable.
"""

from __future__ import annotations

import glob
import json
import os
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

TEMP_SUFFIX = ".rnnexp.tmp"  # rnnexp's own mark: a user's .notes.123.tmp is never taken for one
_umask_lock = threading.Lock()


def umask() -> int:
    """The process umask (read by setting and restoring it; the lock keeps threads from racing)."""
    with _umask_lock:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def file_mode() -> int:
    """The mode ``open(path, "w")`` would give a new file here: 0o666 less the umask."""
    return 0o666 & ~umask()


def temp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}{TEMP_SUFFIX}")


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # some file systems do not let a dir be opened; the rename is still atomic
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_atomic(
    path: Path | str, write: Callable[[IO], Any], newline: str | None = "", binary: bool = False, durable: bool = True
) -> Path:
    """Create or replace ``path`` with what ``write(handle)`` writes to a text (or ``binary``) handle, atomically;
    ``durable``: fsync'd, the file and then its dir (see the module docstring)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    text = {} if binary else {"newline": newline, "encoding": "utf-8"}
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, file_mode())
        with os.fdopen(fd, "wb" if binary else "w", **text) as handle:
            write(handle)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        _fsync_dir(path.parent)
    return path


def write_text_atomic(path: Path | str, text: str, durable: bool = True) -> Path:
    return write_atomic(path, lambda fh: fh.write(text), newline=None, durable=durable)


def write_json_atomic(path: Path | str, record: Any) -> Path:
    return write_text_atomic(path, json.dumps(record, indent=2, default=str) + "\n")


def write_csv_atomic(df, path: Path | str, durable: bool = True) -> Path:
    """A pandas DataFrame as CSV, without its index."""
    return write_atomic(path, lambda fh: df.to_csv(fh, index=False), durable=durable)


def remove_stale_temps(folder: Path | str, names: Iterable[str]) -> list[Path]:
    """Delete the temp files killed rnnexp writers left in ``folder`` for the files ``names`` (not recursive).

    Only names rnnexp itself writes there are passed, so only ``.NAME.PID.rnnexp.tmp`` for one of
    those NAMEs goes: a file must carry both rnnexp's mark and one of its own targets' names. A
    pattern alone (any ``.X.123.tmp``) took a user's notes for a temp file; recording each temp
    before creating it would cost a write per file written. Call it only for a dir rnnexp owns,
    while holding its lock, when no other writer can be mid-write there.
    """
    removed = []
    folder = Path(folder)
    for name in set(names):
        prefix = f".{name}."
        for tmp in folder.glob(f".{glob.escape(name)}.*{TEMP_SUFFIX}"):
            pid = tmp.name[len(prefix) : -len(TEMP_SUFFIX)]
            if pid.isdigit() and tmp.is_file() and not tmp.is_symlink():
                tmp.unlink(missing_ok=True)
                removed.append(tmp)
    return removed
