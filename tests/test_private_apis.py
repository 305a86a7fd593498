"""No reach into another library's internals outside a ``*_compat.py`` adapter.

A private name (one leading underscore, not a dunder) of torch, omegaconf, hydra, submitit, numpy,
... may change in any release without notice. rnnexp keeps every such use in an adapter module
whose tests pin it against the library's own behaviour (``rnnexp/hydra_compat.py``,
``rnnexp/torch_compat.py``, ``hydra_plugins/rnnexp_launcher/submitit_compat.py``), so a release
that changes it fails one named test. This test walks the source and finds any other: an import of
a private module or name, an attribute chain rooted at an imported library name that reaches a
private attribute (``torch._dynamo.reset()``, ``OmegaConf.select(c, k)._get_node(n)``), or a
``getattr(lib, "_name")``.
"""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
OWN = ("rnnexp", "hydra_plugins")  # hydra_plugins is a namespace package: only ours is scanned and imported from


def is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def is_own(module: str | None, level: int = 0) -> bool:
    return level > 0 or (module is not None and module.split(".")[0] in OWN)


def _root(node: ast.expr) -> ast.expr:
    """The name an attribute chain starts from, through calls and subscripts: ``a`` in ``a.b(c)[0].d``."""
    while isinstance(node, ast.Attribute | ast.Call | ast.Subscript):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node


def private_uses(source: str) -> list[tuple[int, str]]:
    """(line, what) for every private name of a library that is not rnnexp's own, in ``source``."""
    tree = ast.parse(source)
    foreign: set[str] = set()  # names bound, anywhere in the module, to a library module or one of its objects
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if is_own(alias.name):
                    continue
                foreign.add(alias.asname or alias.name.split(".")[0])
                if any(map(is_private, alias.name.split("."))):
                    found.append((node.lineno, f"import {alias.name}"))
        elif isinstance(node, ast.ImportFrom) and not is_own(node.module, node.level):
            for alias in node.names:
                foreign.add(alias.asname or alias.name)
                if any(map(is_private, [*node.module.split("."), alias.name])):
                    found.append((node.lineno, f"from {node.module} import {alias.name}"))
    for node in ast.walk(tree):
        root = _root(node) if isinstance(node, ast.Attribute) else None
        if isinstance(root, ast.Name) and root.id in foreign and is_private(node.attr):
            found.append((node.lineno, f"{ast.unparse(node)}"))
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("getattr", "setattr", "hasattr", "delattr")
            and len(node.args) >= 2
            and isinstance(_root(node.args[0]), ast.Name)
            and _root(node.args[0]).id in foreign
            and isinstance(node.args[1], ast.Constant)
            and isinstance(node.args[1].value, str)
            and is_private(node.args[1].value)
        ):
            found.append((node.lineno, ast.unparse(node)))
    return sorted(set(found))


def source_files() -> list[Path]:
    return sorted(p for top in ("rnnexp", "hydra_plugins/rnnexp_launcher") for p in (ROOT / top).rglob("*.py"))


def test_no_private_api_outside_compat_modules():
    found = [
        f"{path.relative_to(ROOT)}:{line}: {what}"
        for path in source_files()
        if not path.name.endswith("_compat.py")
        for line, what in private_uses(path.read_text())
    ]
    assert not found, "private API of a library outside a *_compat.py adapter:\n" + "\n".join(found)


def test_the_scan_sees_the_source_tree():
    names = {p.relative_to(ROOT).as_posix() for p in source_files()}
    assert {"rnnexp/plan.py", "rnnexp/backends/numpy_ref.py", "hydra_plugins/rnnexp_launcher/slurm.py"} <= names


CAUGHT = {
    "import torch\ntorch._dynamo.reset()": "torch._dynamo",
    "import torch as t\nt._C._profiler": "t._C._profiler",
    "from omegaconf import OmegaConf\nOmegaConf.select(c, 'a')._get_node('b')._value()": "._get_node",
    "from torch._C._profiler import _EventType": "from torch._C._profiler import _EventType",
    "from submitit.core.utils import _x": "import _x",
    "import hydra._internal.utils": "import hydra._internal.utils",
    "import numpy as np\ndef f():\n    return np.random._bit_generator": "np.random._bit_generator",
    "from hydra.core.override_parser.types import Override\nOverride._get_value_element_as_str(1)": "Override._get",
    "import torch\ngetattr(torch, '_dynamo')": "getattr(torch, '_dynamo')",
    "import pandas as pd\nx = pd.DataFrame()[0]._mgr": "._mgr",
}

CLEAN = [
    "import torch\ntorch.compiler.reset()\ntorch.__version__",  # public, and a dunder
    "from rnnexp import _private\nfrom . import _torch\nfrom .backends._torch import f\nf._cache",  # our own modules
    "import rnnexp.backends._torch as bt\nbt._x",
    "class A:\n    def f(self):\n        return self._x",  # our own object's attribute
    "def f(row):\n    return row._asdict()",  # a local value: not rooted at a library name
    "import numpy as np\nnp.zeros(3).__array_interface__",
    "import os\nx = os.environ['_A']",
]


@pytest.mark.parametrize("source,want", CAUGHT.items(), ids=list(CAUGHT))
def test_the_scan_catches_private_uses(source, want):
    found = private_uses(source)
    assert found and any(want in what for _, what in found), found


@pytest.mark.parametrize("source", CLEAN)
def test_the_scan_passes_public_and_own_names(source):
    assert private_uses(textwrap.dedent(source)) == []
