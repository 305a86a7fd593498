"""Printing to a stdout that may close early (``rnnexp report ... | head``): the work goes on, quietly."""

from __future__ import annotations

import os
import sys


class Printer:
    """Writes lines to stdout; once the reader has gone, later lines are dropped instead of raising."""

    def __init__(self) -> None:
        self.closed = False

    def say(self, text: str = "") -> None:
        if self.closed:
            return
        try:
            sys.stdout.write(text + "\n")
            sys.stdout.flush()
        except BrokenPipeError:
            self._detach()

    def close(self) -> None:
        try:
            if not self.closed:
                sys.stdout.flush()
        except BrokenPipeError:
            self._detach()

    def _detach(self) -> None:
        # Python's own advice: point stdout at devnull so the interpreter's final flush does not fail too.
        self.closed = True
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        finally:
            os.close(devnull)
