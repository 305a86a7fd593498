"""``rnnexp list presets|backends|cells|deepbench|columns``: what can be chosen, read from where it is defined.

Presets and DeepBench kernels are the conf dir's files (and a ``--config-dir``'s presets), each
described by its own first comment line; backends come from the registry (``rnnexp.backends``),
cells from the schema's choices, columns from the declared row (``rnnexp.schema``). Nothing here
imports torch or Hydra, so it answers at once.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path

from rnnexp.config import conf_dir

PROG = "rnnexp list"


WIDTH = 100  # a description's most characters: one line of a terminal beside the name


def _first_comment(path: Path) -> str:
    """A config file's leading comment (not ``@package``) up to its first sentence's end: what the file is."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return ""
    words: list[str] = []
    for line in lines:
        text = line.strip()
        if not text.startswith("#"):
            break
        text = text.lstrip("#").strip()
        if text.startswith("@package"):
            continue
        if not text or text.startswith(("python ", "rnnexp ")):  # a blank comment line or a usage example
            break
        words.append(text)
        if text.endswith((".", ":")):
            break
    return _short(" ".join(words))


def _short(text: str) -> str:
    text = text.replace("``", "").rstrip(".:")
    if len(text) <= WIDTH:
        return text
    return text[: WIDTH - 3].rsplit(" ", 1)[0] + "..."


def _configs(group: str, extra_dir: Path | None = None) -> list[tuple[str, str]]:
    dirs = [conf_dir() / group, *([extra_dir / group] if extra_dir else [])]
    found = {p.stem: _first_comment(p) for d in dirs if d.is_dir() for p in sorted(d.glob("*.yaml"))}
    return sorted(found.items())


def presets(args: argparse.Namespace) -> list[tuple[str, str]]:
    """Each preset of conf/experiment/ (and --config-dir's experiment/), run as: rnnexp -m +experiment=NAME."""
    return _configs("experiment", args.config_dir)


def deepbench(args: argparse.Namespace) -> list[tuple[str, str]]:
    """DeepBench's RNN kernels (conf/deepbench/), one job as +deepbench=NAME; all: rnnexp -m +experiment=deepbench."""
    return [(name, what.partition(": ")[2] or what) for name, what in _configs("deepbench")]  # drop "kernel: "


def backends(args: argparse.Namespace) -> list[tuple[str, str]]:
    """The backend registry: each engine, what it is, and the extra its framework needs if not installed."""
    from rnnexp import backends as registry

    rows = []
    for name in registry.names():
        extra = registry.declared(name).extra
        note = f" (not installed: pip install 'rnnexp[{extra}]')" if extra and not registry.installed(name) else ""
        rows.append((name, _module_summary(registry.module_of(name)) + note))
    return rows


def _module_summary(module: str) -> str:
    """A module's docstring's first line, read from its source (importing it would import its framework)."""
    import ast

    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        return ""
    doc = ast.get_docstring(ast.parse(Path(spec.origin).read_text(encoding="utf-8"))) or ""
    return _short(doc.strip().splitlines()[0]) if doc.strip() else ""


def cells(args: argparse.Namespace) -> list[tuple[str, str]]:
    """The cells (config key cell): torch.nn's three and the linear recurrences (rnnexp.linear)."""
    from rnnexp.config import LINEAR_CELLS, Cell

    linear = {c.value if hasattr(c, "value") else c for c in LINEAR_CELLS}
    nonlinear = "nonlinear in h: torch.nn.{} semantics, run step by step"
    return [
        (
            c.value,
            "linear in h: h_t = a_t * h_{t-1} + b_t, a scan (scan=...)"
            if c.value in linear
            else nonlinear.format(c.value.upper() if c.value != "rnn" else "RNN"),
        )  # fmt: skip
        for c in Cell
    ]


def columns(args: argparse.Namespace) -> list[tuple[str, str]]:
    """The declared columns of a table (default results.csv): name, then dtype, unit and meaning."""
    from rnnexp import schema

    return [(c.name, f"{c.dtype:<8} {c.unit or '-':<10} {c.meaning}") for c in schema.columns(args.table)]


LISTS: dict[str, Callable[[argparse.Namespace], list[tuple[str, str]]]] = {
    "presets": presets,
    "backends": backends,
    "cells": cells,
    "deepbench": deepbench,
    "columns": columns,
}


def parser() -> argparse.ArgumentParser:
    from rnnexp import schema

    p = argparse.ArgumentParser(
        prog=PROG,
        description="List what can be chosen: presets (+experiment=NAME), backends (backend=NAME), cells "
        "(cell=NAME), DeepBench kernels (+deepbench=NAME), or the columns of a results table.",
        epilog="\n".join(f"  {name:<10} {(fn.__doc__ or '').splitlines()[0]}" for name, fn in LISTS.items()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("what", choices=list(LISTS), metavar="{" + ",".join(LISTS) + "}")
    p.add_argument("--config-dir", "-cd", type=Path, metavar="DIR", help="presets: also those of DIR/experiment/")
    p.add_argument("--table", default=schema.RESULTS, choices=list(schema.TABLES), help="columns: which table")
    return p


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)  # --help and usage errors: argparse's own (exit 0 / 2)
    if args.config_dir is not None and not args.config_dir.is_dir():
        print(f"rnnexp: error: --config-dir={args.config_dir}: no such directory", file=sys.stderr)
        return 2
    rows = LISTS[args.what](args)
    width = max((len(name) for name, _ in rows), default=0)
    for name, what in rows:
        print(f"{name:<{width}}  {what}".rstrip())
    return 0
