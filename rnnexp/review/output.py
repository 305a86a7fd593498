"""Printing to a stdout that may close early (``rnnexp report ... | head``) or fill a disk: the work goes on.

Every line goes out inert (``escape.terminal_lines``): whatever a table or a path held, the terminal
shows it and acts on none of it.
"""

from __future__ import annotations

import os
import sys

from rnnexp.review.escape import terminal_lines


class Printer:
    """Writes lines to stdout; once the reader has gone, later lines are dropped instead of raising."""

    def __init__(self) -> None:
        self.closed = False
        self.failed: OSError | None = None  # a write that failed for another reason than a closed reader

    def say(self, text: str = "") -> None:
        if self.closed:
            return
        try:
            sys.stdout.write(terminal_lines(text) + "\n")
            sys.stdout.flush()
        except BrokenPipeError:
            self._detach()
        except OSError as exc:  # stdout on a full disk: say so once, at the end
            self.failed = exc
            self._detach()

    def close(self) -> None:
        try:
            if not self.closed:
                sys.stdout.flush()
        except BrokenPipeError:
            self._detach()
        except OSError as exc:
            self.failed = exc
            self._detach()

    def exit_code(self, prog: str, code: int = 0) -> int:
        """``code``, or 1 with one line on stderr when stdout could not be written (a reader that left is fine)."""
        if self.failed is None:
            return code
        print(f"{prog}: error: cannot write to stdout: {self.failed.strerror or self.failed}", file=sys.stderr)
        return 1

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
