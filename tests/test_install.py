"""The configs travel with a regular (non-editable) install: a wheel's worth of files, no checkout."""

import os
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT

pytestmark = pytest.mark.slow


def test_non_editable_install_finds_configs(tmp_path):
    # Build from a copy, so no build/ or egg-info is left in (or reused from) the checkout.
    src = tmp_path / "src"
    junk = shutil.ignore_patterns(".venv", ".git", "outputs", "build", "*.egg-info", "__pycache__", ".*_cache")
    shutil.copytree(ROOT, src, ignore=junk)
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(src)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    shipped = {p.relative_to(target / "rnnexp" / "conf") for p in (target / "rnnexp" / "conf").rglob("*.yaml")}
    assert shipped == {p.relative_to(ROOT / "conf") for p in (ROOT / "conf").rglob("*.yaml")}
    env = {**os.environ, "PYTHONPATH": str(target)}
    work = tmp_path / "elsewhere"
    work.mkdir()
    proc = subprocess.run(
        [sys.executable, "-m", "rnnexp", "timing=quick", "hidden_size=3"],
        cwd=work, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert str(target) in subprocess.run(
        [sys.executable, "-c", "import rnnexp.plan; print(rnnexp.plan.conf_dir())"],
        cwd=work, env=env, capture_output=True, text=True,
    ).stdout  # fmt: skip
    assert list(work.glob("outputs/runs/*/*/results.csv"))
