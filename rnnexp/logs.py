"""Logging and terminal output: what a job's log holds, what the terminal shows, and a stdout that may close.

A job's log file (``rnnexp.log`` in its dir, Hydra's job logging, configured by
``conf/hydra/job_logging/rnnexp.yaml``) gets everything: its one-line summary, the warnings raised
inside it, and the full traceback of an unexpected exception. The terminal gets the summary lines
only: a record logged with ``extra=FILE_ONLY`` is dropped by :class:`TerminalFilter`.

A log file that cannot be written (a full disk, a dir gone read-only) is not the job's failure:
:class:`QuietFileHandler` says so in one line on stderr the first time and drops the records that
follow, instead of logging's ~50-line ``--- Logging error ---`` block for every record.

``rnnexp ... | head`` closes stdout early. That is not an error: :func:`guard_stdout` sends
further output to /dev/null, so the work and its files complete.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import sys
import traceback
import warnings
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import IO

FILE_ONLY = {"rnnexp_file_only": True}  # pass as ``extra=`` to keep a record off the terminal


# Loggers whose records are about the user's jobs: rnnexp's own. A framework's (jax probing for a
# TPU, a GPU it cannot use; torch's compiler) below ERROR is about the framework: the log keeps it.
OWN_LOGGERS = ("rnnexp", "hydra_plugins.rnnexp_launcher")


class TerminalFilter(logging.Filter):
    """Lets through what a person at the terminal should see: rnnexp's lines, and any framework's errors;
    not warnings' detail, not tracebacks, not a framework's notes about itself."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "rnnexp_file_only", False) or record.name == "py.warnings":
            return False
        own = record.name.split(".")[0] == "rnnexp" or record.name.startswith(OWN_LOGGERS[1:])
        return own or record.levelno >= logging.ERROR


class QuietFileHandler(logging.FileHandler):
    """A FileHandler that survives an unwritable file: one line on stderr at the first OSError, then silence.

    Only OSError is quiet; any other error in emitting a record (a bad format argument) is logging's
    own report, as it is a bug worth its traceback.
    """

    failed = False  # set at the first OSError: later records are dropped

    def emit(self, record: logging.LogRecord) -> None:
        if self.failed:
            return
        if self.stream is None:  # delay=True: FileHandler opens it outside its own error handling
            try:
                self.stream = self._open()
            except OSError as exc:
                self._fail(exc)
                return
        super().emit(record)

    def flush(self) -> None:
        try:
            super().flush()
        except OSError as exc:
            self._fail(exc)

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging's name
        exc = sys.exc_info()[1]
        if not isinstance(exc, OSError):
            super().handleError(record)
            return
        self._fail(exc)

    def _fail(self, exc: OSError) -> None:
        if self.failed:
            return
        self.failed = True
        reason = exc.strerror or " ".join(str(exc).split()) or type(exc).__name__
        with contextlib.suppress(Exception):  # stderr gone too: nothing left to tell
            line = f"rnnexp: warning: cannot write the log {self.baseFilename}: {reason}; its further lines are dropped"
            sys.stderr.write(line + "\n")
            sys.stderr.flush()


class _ClosableStream:
    """A text stream whose reader may go away: on a broken pipe, the rest goes to /dev/null."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream

    def _divert(self) -> None:
        devnull = os.open(os.devnull, os.O_WRONLY)
        with contextlib.suppress(OSError, ValueError):
            os.dup2(devnull, self._stream.fileno())  # the interpreter's final flush lands there too
        os.close(devnull)

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            self._divert()
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._divert()
        except OSError as exc:
            if exc.errno != errno.EPIPE:
                raise
            self._divert()

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


def guard_stdout() -> None:
    """Make a closed stdout harmless for the rest of the process (idempotent)."""
    if not isinstance(sys.stdout, _ClosableStream):
        sys.stdout = _ClosableStream(sys.stdout)


@contextlib.contextmanager
def captured_warnings() -> Iterator[list[warnings.WarningMessage]]:
    """Every warning raised inside (each occurrence, not Python's once-per-place), kept off the terminal."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield caught


def log_warnings(log: logging.Logger, caught: list[warnings.WarningMessage]) -> None:
    """One file-only line per distinct warning, with how many times it was raised."""
    counts = Counter(f"{w.category.__name__}: {w.message} ({Path(w.filename).name}:{w.lineno})" for w in caught)
    for text, n in counts.items():
        log.warning("%s%s", text, f" (x{n})" if n > 1 else "", extra=FILE_ONLY)


def append_traceback(path: Path, exc: BaseException, context: str) -> bool:
    """Append ``exc``'s full traceback to the log at ``path``; False when it cannot be written."""
    try:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(f"{context}\n{''.join(traceback.format_exception(exc))}")
        return True
    except OSError:
        return False
