"""One writer per run or sweep dir: an exclusive lock that names its holder.

The lock is a ``filelock`` lock file (``.rnnexp.lock``) beside a small JSON record of who holds
it (pid, host, command, since). The OS releases the lock when its process dies, however it dies,
so a lock left by a killed process is simply taken over (its stale holder record is replaced). At
release both files are removed while the lock is still held; filelock re-checks the inode after
locking, so a process that was waiting on the removed file retries on the new one.

A root that turned read-only, or vanished, while it was held keeps its lock files: the release
still unlocks, says so in one warning on the log, and the next run takes the stale lock over.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from datetime import datetime, timezone
from pathlib import Path

from filelock import FileLock, Timeout

from rnnexp.fileio import write_json_atomic

LOCK = ".rnnexp.lock"
HOLDER = ".rnnexp.lock.json"

RECORD_WAIT_S = 5.0  # how long a loser waits for the winner's holder record (it is written right after locking)
UNKNOWN = "another process"

log = logging.getLogger(__name__)


class DirBusy(Exception):
    """Another live process holds the dir; the message names it."""


def holder(root: Path) -> str:
    """Who holds ``root``'s lock, in words, from the holder record (or 'another process')."""
    try:
        info = json.loads((Path(root) / HOLDER).read_text())
        return f"pid {info['pid']} on {info['host']} since {info['since']} ({info['command']})"
    except (OSError, ValueError, KeyError, TypeError):
        return UNKNOWN


class DirLock:
    """``with DirLock(root, command):`` holds ``root`` for this process or raises DirBusy at once."""

    def __init__(self, root: Path, command: str) -> None:
        self.root, self.command = Path(root), command
        self.lock = FileLock(self.root / LOCK, timeout=0)

    def __enter__(self) -> DirLock:
        try:
            self.lock.acquire()
        except Timeout:
            raise DirBusy(f"{self.root} is in use by {self._holder_when_written()}") from None
        since = datetime.now(timezone.utc).isoformat(timespec="seconds")
        record = {"pid": os.getpid(), "host": socket.gethostname(), "since": since, "command": self.command}
        write_json_atomic(self.root / HOLDER, record)
        return self

    def _holder_when_written(self) -> str:
        """The holder in words, waiting up to RECORD_WAIT_S for its record: two runs started at the same
        moment meet while the winner has the lock but has not yet written who it is."""
        deadline = time.monotonic() + RECORD_WAIT_S
        while True:
            said = holder(self.root)
            if said != UNKNOWN or time.monotonic() > deadline or not (self.root / LOCK).exists():
                return said
            time.sleep(0.05)

    def __exit__(self, *exc) -> None:
        self.release()

    def release(self) -> bool:
        """Unlock, removing both files; False (and one warning) when they could not be removed."""
        try:
            (self.root / HOLDER).unlink(missing_ok=True)
            (self.root / LOCK).unlink(missing_ok=True)
            removed = True
        except OSError as exc:  # a read-only or vanished root: the next run takes the stale lock over
            log.warning("could not remove the lock files in %s (%s); the next run there clears them", self.root, exc)
            removed = False
        try:
            self.lock.release()
        except OSError as exc:  # closing the lock file's descriptor failed: the OS has dropped the lock anyway
            log.warning("releasing the lock in %s: %s", self.root, exc)
        return removed
