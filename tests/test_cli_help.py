"""A CLI that helps: a --help that fits a screen, `rnnexp list`, "did you mean", and `rnnexp resume` with no DIR."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from conftest import ROOT
from rnnexp import backends, cli, dirlock, schema
from rnnexp.config import Cell, conf_dir, config_keys

QUICK = ["backend=numpy", "timing=quick", "hidden_size=4", "timesteps=3", "store=null"]
SUBCOMMANDS = ["report", "compare", "history", "resume", "list"]


def rnnexp(*args: str) -> subprocess.CompletedProcess:
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-m", "rnnexp", *args], capture_output=True, text=True, env=env, cwd=ROOT)


def error_lines(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line]


@pytest.fixture(scope="module")
def main_help() -> str:
    proc = rnnexp("--help")
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_help_fits_a_screen_and_names_the_subcommands(main_help):
    assert len(main_help.rstrip("\n").splitlines()) <= 60
    for sub in [*SUBCOMMANDS, "-m", "--dry-run", "+experiment=PRESET", "+deepbench="]:
        assert sub in main_help, sub
    for what in ("backends", "cells", "deepbench", "columns"):
        assert what in main_help.split("rnnexp list presets|")[1], what
    assert "gru_h1024" not in main_help  # the long lists are `rnnexp list ...`, not the help
    assert "$" not in main_help.replace('"$(rnnexp -sc install=bash)"', "")  # every placeholder rendered


def test_the_help_names_only_real_keys(main_help):
    section = main_help.split("Main keys")[1].split("\n\n")[0]
    named = set(re.findall(r"(?<![\w.+-])\+?([a-z_]+)=", section))
    groups = {p.name for p in conf_dir().iterdir() if p.is_dir()}
    assert named and named <= set(config_keys()) | groups, named - set(config_keys()) - groups


@pytest.mark.parametrize("sub", SUBCOMMANDS)
def test_every_subcommand_help_renders_without_escapes(sub):
    proc = rnnexp(sub, "--help")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"usage: rnnexp {sub}")
    assert "%%" not in proc.stdout and "\x1b" not in proc.stdout and "\\n" not in proc.stdout


@pytest.mark.parametrize(
    "typed, meant",
    [
        ("reprot", "report"),
        ("comprae", "compare"),
        ("histroy", "history"),
        ("lsit", "list"),
        ("resmue", "resume"),
        ("reports", "report"),
    ],  # fmt: skip
)
def test_a_mistyped_subcommand_gets_did_you_mean(capsys, typed, meant):
    assert cli.run([typed, "outputs"]) == 2
    assert error_lines(capsys) == [f"rnnexp: error: unknown subcommand '{typed}'; did you mean '{meant}'?"]


@pytest.mark.parametrize("word", ["frobnicate", "run", "sweep"])
def test_a_word_that_is_nothing_is_one_line(capsys, word):
    assert cli.run([word]) == 2
    (line,) = error_lines(capsys)
    assert line.startswith("rnnexp: error: ") and "KEY=VALUE" in line


@pytest.mark.parametrize("argv", [["layers=2"], ["~seed"], ["+experiment=ci"], ["-m", "layers=1,2"], ["hidden_size=4"]])
def test_overrides_and_flags_are_not_taken_for_subcommands(capsys, argv):
    assert cli.run([*argv, "--dry-run"]) == 0
    assert "did you mean" not in capsys.readouterr().err


def test_a_bare_key_is_asked_for_its_value(capsys):
    assert cli.run(["hidden_size"]) == 2
    assert "missing '='" in error_lines(capsys)[0]


def rows_of(capsys, *args: str) -> dict[str, str]:
    assert cli.run(["list", *args]) == 0
    lines = capsys.readouterr().out.splitlines()
    return dict(re.match(r"(\S+)\s*(.*)", line).groups() for line in lines)


def test_list_reads_where_things_are_defined(capsys, tmp_path):
    presets = rows_of(capsys, "presets")
    assert sorted(presets) == sorted(p.stem for p in (conf_dir() / "experiment").glob("*.yaml"))
    assert all(presets.values()), "every shipped preset says what it is in its first comment"
    assert sorted(rows_of(capsys, "deepbench")) == sorted(p.stem for p in (conf_dir() / "deepbench").glob("*.yaml"))
    assert list(rows_of(capsys, "backends")) == backends.names()
    assert list(rows_of(capsys, "cells")) == [c.value for c in Cell]
    assert list(rows_of(capsys, "columns")) == schema.names(schema.RESULTS)
    assert list(rows_of(capsys, "columns", "--table", schema.STEPS)) == schema.names(schema.STEPS)
    (tmp_path / "experiment").mkdir()
    (tmp_path / "experiment" / "mine.yaml").write_text("# @package _global_\n# My own preset.\nhidden_size: 4\n")
    assert rows_of(capsys, "presets", "--config-dir", str(tmp_path))["mine"] == "My own preset"


def test_list_refuses_what_it_does_not_know(capsys, tmp_path):
    with pytest.raises(SystemExit) as stop:
        cli.run(["list", "models"])
    assert stop.value.code == 2
    assert cli.run(["list", "presets", "--config-dir", str(tmp_path / "nope")]) == 2
    assert "no such directory" in error_lines(capsys)[-1]


def test_list_imports_no_framework():
    code = "import sys; from rnnexp import cli; cli.run(['list', 'backends']); print('torch' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0 and proc.stdout.splitlines()[-1] == "False", proc.stderr


# --------------------------------------------------------------------------- resume without a DIR


def sweep_into(root, *overrides: str) -> None:
    assert cli.run(["-m", *QUICK, *overrides, f"hydra.sweep.dir={root}"]) == 0


def interrupt(root, job: int) -> None:
    (root / str(job) / "results.csv").unlink()
    (root / "results.csv").unlink()


@pytest.mark.slow
def test_resume_without_dir_finishes_the_newest_interrupted_sweep(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    older, newer, done = (tmp_path / "outputs" / "multirun" / "d" / name for name in ("t1", "t2", "t3"))
    sweep_into(older, "hidden_size=4,6")
    sweep_into(newer, "hidden_size=4,6,8")
    sweep_into(done, "hidden_size=4")  # the newest, but finished: not the one to resume
    interrupt(older, 1)
    interrupt(newer, 2)
    capsys.readouterr()
    with dirlock.DirLock(newer, "a live sweep"):  # held: still running, not interrupted
        assert cli.run(["resume"]) == 0
    assert f"resuming {older.relative_to(tmp_path)}" in capsys.readouterr().out
    assert (older / "results.csv").is_file() and not (newer / "results.csv").exists()
    assert cli.run(["resume", "hydra.verbose=false"]) == 0  # launcher options without a DIR
    assert (newer / "results.csv").is_file()
    capsys.readouterr()
    assert cli.run(["resume"]) == 2
    (line,) = error_lines(capsys)
    assert line.startswith("rnnexp: error: resume: no interrupted run or sweep under ") and "resume DIR" in line


def test_resume_without_dir_and_no_outputs_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli.run(["resume"]) == 2
    where = tmp_path / "outputs"
    assert error_lines(capsys) == [f"rnnexp: error: resume: no interrupted run or sweep under {where}/ (give its dir: "
                                   "rnnexp resume DIR)"]  # fmt: skip


# --------------------------------------------------------------------------- shell completion


@pytest.mark.parametrize(
    "line, offered",
    [
        ("rnnexp re", {"report", "resume"}),
        ("rnnexp li", {"list"}),
        ("rnnexp hid", {"hidden_size="}),
        ("rnnexp cell=l", {"cell=lstm", "cell=lru"}),  # an Enum key's choices, not its current value
        ("rnnexp -m dtype=", {"dtype=float32", "dtype=float64"}),
        ("rnnexp +experiment=deepb", {"+experiment=deepbench", "+experiment=deepbench_small"}),
        ("rnnexp layers=2 re", set()),  # a subcommand only as the first word
        ("rnnexp report ", set()),  # after a subcommand: the shell's file names
        ("rnnexp compare out", set()),
    ],
)
def test_completion_offers_subcommands_keys_and_choices(monkeypatch, capsys, line, offered):
    monkeypatch.setenv("COMP_LINE", line)
    monkeypatch.setenv("COMP_POINT", str(len(line)))
    assert cli.run(["-sc", "query=bash"]) == 0
    out, err = capsys.readouterr()
    assert set(out.split()) == offered and err == ""


def test_completion_installs_through_rnnexp(capsys):
    assert cli.run(["-sc", "install=bash"]) == 0
    assert "complete -o nospace -o default -F hydra_bash_completion rnnexp" in capsys.readouterr().out
