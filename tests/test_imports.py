"""No import circles in rnnexp and its launcher plugin, function-level imports included.

The graph is built from the source: every ``import`` and ``from ... import`` at any depth (inside
functions, under ``if TYPE_CHECKING``, in ``try``), relative imports resolved, and ``from pkg import
name`` counted as an import of ``pkg.name`` when that is a module (else of ``pkg``). An edge to a
package is an edge to its ``__init__``; the parent packages Python initialises on the way are not
edges (as in import-linter's graph). A circle means a function sits in the wrong module: move it down a layer.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TOPS = ("rnnexp", "hydra_plugins/rnnexp_launcher")


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules(root: Path = ROOT) -> dict[str, Path]:
    return {module_name(p, root): p for top in TOPS for p in sorted((root / top).rglob("*.py"))}


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The modules of ``known`` that ``name`` (at ``path``) imports, anywhere in its source."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            # ``from pkg import mod`` imports the module pkg.mod; ``from mod import name`` imports mod
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:  # a.b.c imports a.b's __init__ when a.b.c is not a module here
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    mods = modules(root)
    return {name: imports_of(name, path, set(mods)) for name, path in mods.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One circle of imports ([a, b, ..., a]), or None; iterative depth-first search."""
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    for start in sorted(graph):
        if state.get(start):
            continue
        path, stack = [start], [iter(sorted(graph[start]))]
        state[start] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            elif not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(graph.get(nxt, ()))))
    return None


def test_no_import_cycles():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import circle: " + " -> ".join(cycle)


def test_the_graph_sees_function_level_and_relative_imports():
    graph = import_graph()
    assert "rnnexp.backends.numpy_ref" in graph and "hydra_plugins.rnnexp_launcher.slurm" in graph
    assert "rnnexp.params" in graph["rnnexp.backends.numpy_ref"]
    assert "hydra_plugins.rnnexp_launcher.submitit_compat" in graph["hydra_plugins.rnnexp_launcher.slurm"]


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    (tmp_path / "hydra_plugins" / "rnnexp_launcher").mkdir(parents=True, exist_ok=True)
    return tmp_path


@pytest.mark.parametrize(
    "files, cycle",
    [
        ({"rnnexp/__init__.py": "", "rnnexp/a.py": "import rnnexp.b", "rnnexp/b.py": "def f():\n    import rnnexp.a"},
         ["rnnexp.a", "rnnexp.b", "rnnexp.a"]),  # a function-level import closes it
        ({"rnnexp/__init__.py": "", "rnnexp/p/__init__.py": "", "rnnexp/p/x.py": "from . import y",
          "rnnexp/p/y.py": "from .. import z", "rnnexp/z.py": "from rnnexp.p import x"},
         ["rnnexp.p.x", "rnnexp.p.y", "rnnexp.z", "rnnexp.p.x"]),  # relative imports and `from pkg import module`
        ({"rnnexp/__init__.py": "from rnnexp.a import f", "rnnexp/a.py": "from rnnexp import b",
          "rnnexp/b.py": "if False:\n    from rnnexp.a import g"},
         ["rnnexp.a", "rnnexp.b", "rnnexp.a"]),  # a guarded import counts too
        ({"rnnexp/__init__.py": "", "rnnexp/a.py": "import rnnexp.b\nimport numpy", "rnnexp/b.py": "import os"}, None),
        ({"rnnexp/__init__.py": "", "rnnexp/a.py": "from rnnexp.b import thing", "rnnexp/b.py": "from rnnexp import c",
          "rnnexp/c.py": "x = 1"}, None),
    ],
)  # fmt: skip
def test_find_cycle_on_small_trees(tmp_path, files, cycle):
    found = find_cycle(import_graph(_tree(tmp_path, files)))
    if cycle is None:
        assert found is None
    else:  # the same circle, from whichever module the search entered it
        assert found is not None and found[0] == found[-1] and set(found) == set(cycle) and len(found) == len(cycle)
