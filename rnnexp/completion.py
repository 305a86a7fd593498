"""Shell completion: Hydra's (``rnnexp -sc install=bash``), with what Hydra cannot know about rnnexp.

Hydra's bash completion asks ``rnnexp -sc query=bash`` for the choices of the word being typed
(``COMP_LINE``). It knows keys, groups and presets, but not rnnexp's subcommands, offers an Enum
key only its current value as Python writes it (``cell=Cell.rnn``), and after a subcommand it
prints an override-parsing error into the terminal. Here: the first word also completes to a
subcommand; after a subcommand nothing is offered (the shell completes file names, which is what
report, compare and resume take); ``KEY=`` of an Enum key offers its choices; the rest is Hydra's.
"""

from __future__ import annotations

import enum
import typing
from collections.abc import Callable


def is_query(argv: list[str]) -> bool:
    """Whether ``argv`` is bash completion's question (``-sc query=bash``)."""
    return any(a in ("-sc", "--shell-completion") for a in argv) and "query=bash" in argv


def answer(line: str, subcommands: list[str], hydra: Callable[[], str]) -> str:
    """The choices for the last word of ``line`` (the command line so far), space-separated."""
    words = line.split()[1:]  # without the program's name
    new_word = not line or line[-1] == " "
    current = "" if new_word or not words else words[-1]
    before = words if new_word else words[:-1]
    if before and before[0] in subcommands:
        return ""
    if "=" in current:
        choices = _enum_choices(current)
        if choices is not None:
            return " ".join(choices)
    mine = [s for s in subcommands if s.startswith(current)] if not before else []
    return " ".join([*mine, *hydra().split()])


def _enum_choices(word: str) -> list[str] | None:
    """``KEY=VALUE`` for each choice of an Enum key that starts with what was typed; None for other keys."""
    from rnnexp.config import RunConfig, TimingConfig

    key, _, typed = word.partition("=")
    name = key.lstrip("+~")
    schema, attr = (TimingConfig, name.removeprefix("timing.")) if name.startswith("timing.") else (RunConfig, name)
    kind = typing.get_type_hints(schema).get(attr)
    if not (isinstance(kind, type) and issubclass(kind, enum.Enum)):
        return None
    return [f"{key}={m.value}" for m in kind if str(m.value).startswith(typed)]
