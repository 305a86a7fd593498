"""A newcomer's path: the README's quick start, run as written, in a fresh directory, through the real CLI.

The commands are read from the README's "Quick start" code block, so the README cannot show a command
this test does not run. Each must exit 0 and make what the README's numbered notes say it makes.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parent.parent


def quick_start(readme: str) -> list[str]:
    """The command lines of the first code block under the README's "## Quick start" heading."""
    section = readme.split("\n## Quick start\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"^```[a-z]*\n(.*?)^```", section, re.S | re.M)
    assert block, "README.md's Quick start has no code block"
    return [line for line in block.group(1).splitlines() if line.strip() and not line.lstrip().startswith("#")]


def argv(line: str) -> list[str]:
    """A README line as the process it starts: ``python`` is this interpreter (the venv the README activates)."""
    args = shlex.split(line, comments=True)
    assert args[0] == "python", f"a quick start line that is not a python command: {line}"
    return [sys.executable, *args[1:]]


def option(args: list[str], key: str) -> str | None:
    return next((a.split("=", 1)[1] for a in args if a.startswith(f"{key}=")), None)


def check(args: list[str], proc: subprocess.CompletedProcess, cwd: Path) -> None:
    """What each kind of quick start command must leave behind (the README's numbered notes)."""
    out = proc.stdout
    if args[1:3] == ["-m", "rnnexp"] and "-m" in args[3:]:
        sweep = cwd / option(args, "hydra.sweep.dir")
        if "--dry-run" in args:
            assert "4 jobs into sweep dir" in out and "dry run: nothing was run" in out
            assert not sweep.exists()
            return
        table = pd.read_csv(sweep / "results.csv")
        assert len(table) == 4 and (table["status"] == "ok").all()
        assert sorted(zip(table["layers"], table["bidirectional"], strict=True)) == [
            (1, False), (1, True), (2, False), (2, True)]  # fmt: skip
        for side in ("samples.csv", "steps.csv", "layer_stats.csv"):
            assert (sweep / side).is_file(), side
        assert all((sweep / str(n)).is_dir() for n in range(4))
    elif args[3:4] == ["report"]:
        for made in ("report.md", "report.html"):
            assert (cwd / args[4] / made).is_file(), made
        assert list((cwd / args[4]).glob("*.png"))
    elif args[3:4] == ["compare"]:
        assert "0 regressions" in out
    elif args[1] == "-c":
        header, *rows = out.strip().splitlines()
        assert header.split() == ["layers", "bidirectional", "time_median_ms", "parity_ok"]
        assert len(rows) == 4 and all(row.split()[-1] == "True" for row in rows)
    else:
        raise AssertionError(f"a quick start command this test does not know what to expect of: {args}")


def test_quick_start_is_parsed_from_the_readme():
    lines = quick_start((ROOT / "README.md").read_text())
    assert 3 <= len(lines) <= 10
    kinds = [argv(line)[3] if argv(line)[1:3] == ["-m", "rnnexp"] else argv(line)[1] for line in lines]
    assert {"-m", "report", "compare"} <= set(kinds)  # a sweep, its report, a compare
    assert quick_start("x\n## Quick start\n\ntext\n\n```bash\npython a\n\n# note\npython b  # c\n```\n## Next\n") == [
        "python a", "python b  # c"]  # fmt: skip


@pytest.mark.slow
def test_readme_quick_start_runs_as_written(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HYDRA_FULL_ERROR": "0"}
    for line in quick_start((ROOT / "README.md").read_text()):
        args = argv(line)
        proc = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, f"{line}\nexit {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
        assert "Traceback" not in proc.stderr, line
        check(args, proc, tmp_path)
