"""A config file that does not parse, said in one line naming the file and the line.

Hydra reads the YAML files of its search path (conf/, a ``--config-dir``, ``hydra.searchpath``)
only as it composes, and lets their parse errors through as they are: a PyYAML error (its
problem and where: file, line, column) or, for a file that is not UTF-8, a bare
UnicodeDecodeError that names no file. ``named()`` turns both into a ConfigFileError whose
message is the whole parse error on one line, the file and line first. A defaults list or package
header that Hydra refuses (a plain ValueError from inside Hydra) is named by its file the same way.
Imports nothing heavy.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path


class ConfigFileError(ValueError):
    """A config file that is not valid YAML; the message names the file and line and says what is wrong."""


@contextlib.contextmanager
def named() -> Iterator[None]:
    """Raise a ConfigFileError for a config file that fails to parse inside (the parse error chained)."""
    try:
        yield
    except Exception as exc:  # PyYAML's errors derive from Exception only
        message = describe(exc)
        if message is None:
            raise
        raise ConfigFileError(message) from exc


def describe(exc: BaseException) -> str | None:
    """One line for a parse error of a config file (PyYAML's, or a file that is not UTF-8); None for others."""
    import yaml

    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        where = _shown(_file_of(exc, getattr(mark, "name", None)))
        at = f", line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        context = exc.context
        cm = exc.context_mark
        if context and cm is not None and mark is not None and (cm.line, cm.column) != (mark.line, mark.column):
            context += f" (line {cm.line + 1}, column {cm.column + 1})"  # where the unfinished thing began
        what = ", ".join(p for p in (context, exc.problem) if p)
        return f"{where}{at}: not valid YAML: {' '.join(what.split())}"
    if isinstance(exc, yaml.YAMLError):
        return f"{_shown(_file_of(exc, None))}: not valid YAML: {' '.join(str(exc).split())}"
    if isinstance(exc, UnicodeDecodeError):
        path = _file_of(exc, None)
        if path is None:
            return None  # not a config file's (nothing was reading one)
        text = exc.object[: exc.start] if isinstance(exc.object, bytes) else b""
        line = text.count(b"\n") + 1
        byte = f"byte {exc.object[exc.start]:#04x} at offset {exc.start}"
        return f"{_shown(path)}, line {line}: not a UTF-8 text file ({byte})"
    if type(exc) is ValueError and _raised_in_hydra(exc):  # a defaults list or package header Hydra refuses
        return f"{_shown(_file_of(exc, None))}: not a valid config: {' '.join(str(exc).split())}"
    return None


def _raised_in_hydra(exc: BaseException) -> bool:
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and f"{os.sep}hydra{os.sep}" in tb.tb_frame.f_code.co_filename


def _file_of(exc: BaseException, named_by_yaml: str | None) -> str | None:
    """The file being read: as PyYAML names it, else the path Hydra's config source was loading."""
    if named_by_yaml and not named_by_yaml.startswith("<"):
        return named_by_yaml
    found, tb = None, exc.__traceback__
    while tb is not None:  # the innermost loader frame that names a path wins
        frame = tb.tb_frame
        if frame.f_code.co_name == "load_config":  # a config source's (full_path) or the repository's (source)
            local = frame.f_locals
            source, name = local.get("source"), local.get("config_path")
            if local.get("full_path"):
                found = local["full_path"]
            elif getattr(source, "scheme", lambda: "")() == "file" and name:
                found = os.path.join(source.path, name if name.endswith(".yaml") else f"{name}.yaml")
            elif name and found is None:
                found = name
        tb = tb.tb_next
    return str(found) if found is not None else None


def _shown(path: str | None) -> str:
    """A path as the user would type it: relative to the working dir when it is under it."""
    if path is None:
        return "a config file"
    try:
        return str(Path(path).resolve().relative_to(Path(os.getcwd()).resolve()))
    except ValueError:
        return path
