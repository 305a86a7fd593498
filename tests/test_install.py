"""A regular (non-editable) install holds what the tests test: every module and config, and the CLI works from it.

An editable install reads the checkout, so it hides a module the wheel leaves out (``rnnexp.review``
once was). These tests build the real wheel, compare its files with the source tree, and run a sweep,
``report`` and ``compare`` from a folder outside the checkout with only the wheel's files on the path.
"""

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from conftest import ROOT

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    # Build from a copy, so no build/ or egg-info is left in (or reused from) the checkout.
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    junk = shutil.ignore_patterns(".venv", ".git", "outputs", "build", "dist", "*.egg-info", "__pycache__", ".*_cache")
    shutil.copytree(ROOT, src, ignore=junk, symlinks=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "-w", str(tmp), str(src)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    (built,) = tmp.glob("rnnexp-*.whl")
    return built


def source_files() -> set[str]:
    """What the wheel must hold: every file of the packages (modules and their data) and every config."""
    modules = {
        p.relative_to(ROOT).as_posix()
        for top in ("rnnexp", "hydra_plugins")
        for p in (ROOT / top).rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.relative_to(ROOT).parts[:2] != ("rnnexp", "conf")
    }
    configs = {f"rnnexp/conf/{p.relative_to(ROOT / 'conf').as_posix()}" for p in (ROOT / "conf").rglob("*.yaml")}
    return modules | configs


def test_wheel_holds_every_module_and_config(wheel):
    names = {n for n in zipfile.ZipFile(wheel).namelist() if ".dist-info/" not in n}
    expected = source_files()
    assert {"rnnexp/review/report.py", "rnnexp/review/page.js", "rnnexp/conf/config.yaml"} <= expected
    assert expected - names == set(), "left out of the wheel"
    assert names - expected == set(), "in the wheel but not in the source tree"


def test_installed_cli_runs_sweep_report_and_compare_elsewhere(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), str(wheel)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    # Only the wheel's files: the checkout must not be importable (the editable finder maps it, so hide it too).
    env = {**os.environ, "PYTHONPATH": str(target), "PYTHONSAFEPATH": "1"}
    work = tmp_path / "elsewhere"
    work.mkdir()

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "rnnexp", *args], cwd=work, env=env, capture_output=True, text=True, timeout=300
        )

    where = subprocess.run(
        [sys.executable, "-c", "import rnnexp.plan, rnnexp.review.report; print(rnnexp.plan.conf_dir())"],
        cwd=work, env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert where.returncode == 0, where.stderr
    assert where.stdout.startswith(str(target)), where.stdout
    sweep = work / "sweep"
    proc = cli("-m", "layers=1,2", "bidirectional=true,false", "timing=quick", f"hydra.sweep.dir={sweep}")
    assert proc.returncode == 0, proc.stderr
    assert (sweep / "results.csv").is_file()
    report = cli("report", str(sweep), "--out", str(work / "report"))
    assert report.returncode == 0, report.stderr
    assert (work / "report" / "report.md").is_file()
    compare = cli("compare", str(sweep), str(sweep), "--ignore-timing")
    assert compare.returncode == 0, compare.stdout + compare.stderr
