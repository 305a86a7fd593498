"""One exclusive lock per file, across processes, for caches that parallel jobs fill (GEMM peak, reference).

``exclusive(path)`` holds a ``filelock`` lock beside ``path`` (``NAME.lock``), so that of several jobs
wanting the same entry one computes it and the others wait and read it. After ``timeout_s`` the
waiter goes ahead anyway rather than hang (the entries are written atomically, so the worst case
is the same work done twice). The lock file is removed while still held, so none is left behind
(filelock re-checks the inode, so a waiter never holds a lock on a removed file).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock, Timeout

LOCK_SUFFIX = ".lock"


def lock_path(path: Path) -> Path:
    return path.with_name(path.name + LOCK_SUFFIX)


@contextlib.contextmanager
def exclusive(path: Path | str, timeout_s: float) -> Iterator[bool]:
    """Hold the lock of ``path`` for the duration; yields False when it timed out and runs unlocked."""
    where = lock_path(Path(path))
    lock = FileLock(where, timeout=timeout_s)
    try:
        lock.acquire()
    except Timeout:
        yield False
        return
    try:
        yield True
    finally:
        where.unlink(missing_ok=True)
        lock.release()
