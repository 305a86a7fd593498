"""User configs and races in one line: a config file that does not parse, and two sweeps started into one dir."""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from filelock import FileLock

import rnnexp
from conftest import ROOT
from rnnexp import cli, configfiles, dirlock

# (file contents, what the line says, the line it names): malformed YAML, and YAML Hydra refuses
BAD_FILES = {
    "mapping-in-value": ("# @package _global_\nhidden_size: 4\nbad: : x\n", "mapping values are not allowed", 3),
    "unclosed-list": ("# @package _global_\nhidden_size: [4\n", "flow sequence (line 2, column 14)", 3),
    "duplicate-key": ("# @package _global_\nhidden_size: 4\nhidden_size: 5\n", "duplicate key hidden_size", 3),
    "tab": ("# @package _global_\n\thidden_size: 4\n", "'\\t' that cannot start any token", 2),
    "not-utf8": (b"# @package _global_\nhidden_size: 4 \xff\n", "not a UTF-8 text file", 2),
    "defaults-not-a-list": ("# @package _global_\ndefaults: 5\n", "defaults must be a list", None),
    "bad-package-header": ("# @package bad header\nhidden_size: 4\n", "Too many components", None),
}


def write(path: Path, contents: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(contents if isinstance(contents, bytes) else contents.encode())
    return path


def one_error(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line]
    assert len(lines) == 1, lines
    return lines[0]


COMMANDS = {
    "run": ["+experiment=mine"],
    "sweep": ["-m", "+experiment=mine", "hidden_size=4,8"],
    "sweep-of-presets": ["-m", "+experiment=mine,ci"],  # planned job by job, past the checks before planning
}


@pytest.mark.parametrize("case", list(BAD_FILES))
@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_bad_preset_is_named_with_its_file_and_line(tmp_path, monkeypatch, capsys, case, command):
    contents, says, line = BAD_FILES[case]
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "my_conf" / "experiment" / "mine.yaml", contents)
    assert cli.run(["--config-dir", "my_conf", *COMMANDS[command], "--dry-run"]) == 2
    error = one_error(capsys)
    assert error.startswith("rnnexp: error: my_conf/experiment/mine.yaml") and says in error, error
    if line is not None:
        assert f"mine.yaml, line {line}" in error
    assert not (tmp_path / "outputs").exists()


@pytest.mark.parametrize("group", ["timing", "tracking"])
def test_a_bad_file_in_any_group_of_the_search_path(tmp_path, capsys, group):
    write(tmp_path / "conf" / group / "mine.yaml", "min_blocks: [3\n")
    assert cli.run(["--config-dir", str(tmp_path / "conf"), f"{group}=mine", "--dry-run"]) == 2
    assert re.match(rf"rnnexp: error: {re.escape(str(tmp_path))}/conf/{group}/mine\.yaml, line 2, ", one_error(capsys))


def test_a_bad_file_behind_hydra_searchpath_and_in_help_and_cfg(tmp_path, capsys):
    write(tmp_path / "extra" / "experiment" / "mine.yaml", "a: : b\n")
    searchpath = f"hydra.searchpath=[file://{tmp_path / 'extra'}]"
    for flags in (["--dry-run"], ["--cfg", "job"], ["--help"]):
        assert cli.run([searchpath, "+experiment=mine", *flags]) == 2, flags
        assert "extra/experiment/mine.yaml, line 1, column 4: not valid YAML" in one_error(capsys)


def test_resume_names_a_recorded_preset_that_no_longer_parses(tmp_path, capsys):
    conf = tmp_path / "my_conf"
    write(conf / "experiment" / "mine.yaml", "# @package _global_\nbackend: numpy\nhidden_size: 4\n")
    root = tmp_path / "sweep"
    argv = ["--config-dir", str(conf), "-m", "+experiment=mine", "seed=0,1", "timing=quick", f"hydra.sweep.dir={root}"]
    argv.append("store=null")
    assert cli.run(argv) == 0
    write(conf / "experiment" / "mine.yaml", "# @package _global_\nbackend: [numpy\n")
    capsys.readouterr()
    assert cli.run(["resume", str(root), "--config-dir", str(conf)]) == 2
    assert "experiment/mine.yaml, line 3, column 1: not valid YAML" in one_error(capsys)


def test_the_real_cli_prints_one_line_and_full_error_on_request(tmp_path):
    write(tmp_path / "my_conf" / "experiment" / "mine.yaml", BAD_FILES["unclosed-list"][0])
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("HYDRA_FULL_ERROR", None)
    argv = [sys.executable, "-m", "rnnexp", "--config-dir", "my_conf", "+experiment=mine"]
    proc = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.splitlines() == [
        "rnnexp: error: my_conf/experiment/mine.yaml, line 3, column 1: not valid YAML: while parsing a flow sequence "
        "(line 2, column 14), expected ',' or ']', but got '<stream end>'"
    ]
    full = subprocess.run(argv, cwd=tmp_path, env={**env, "HYDRA_FULL_ERROR": "1"}, capture_output=True, text=True)
    assert full.returncode == 2 and "Traceback" in full.stderr and "yaml.parser.ParserError" in full.stderr


def test_the_api_names_the_file_too(tmp_path, monkeypatch):
    import shutil

    from rnnexp import preflight

    conf = tmp_path / "conf"
    shutil.copytree(preflight.conf_dir(), conf)
    write(conf / "experiment" / "mine.yaml", "# @package _global_\na: : b\n")
    monkeypatch.setattr(preflight, "conf_dir", lambda: conf)  # as if the shipped configs held it
    with pytest.raises(configfiles.ConfigFileError, match=r"experiment/mine\.yaml, line 2, column 4: not valid YAML"):
        rnnexp.run("+experiment=mine")


def test_other_errors_pass_through():
    with pytest.raises(KeyError), configfiles.named():
        raise KeyError("not a config file's")
    with pytest.raises(UnicodeDecodeError), configfiles.named():
        b"\xff".decode()  # no config file was being read: not said to be one


# --------------------------------------------------------------------------- two runs into one dir


def _make_dir(root: str, barrier, results) -> None:
    barrier.wait()
    try:
        cli.make_dir(Path(root))
        results.put("ok")
    except Exception as exc:  # noqa: BLE001 - the test reports what it was
        results.put(repr(exc))


def test_two_runs_making_one_dir_at_once_both_succeed(tmp_path):
    ctx = multiprocessing.get_context("fork")
    for i in range(30):
        barrier, results = ctx.Barrier(2), ctx.Queue()
        procs = [ctx.Process(target=_make_dir, args=(str(tmp_path / str(i)), barrier, results)) for _ in range(2)]
        for p in procs:
            p.start()
        for p in procs:
            p.join()
        assert [results.get(), results.get()] == ["ok", "ok"], i
        assert sorted(os.listdir(tmp_path / str(i))) == []  # the probe is gone, and nothing else was left


def test_the_loser_names_the_holder_even_before_its_record_is_written(tmp_path):
    # The winner holds the lock but has not written its record yet (it is started at the same moment).
    held = FileLock(tmp_path / dirlock.LOCK, timeout=0)
    held.acquire()
    record = {"pid": 4242, "host": "h", "since": "now", "command": "rnnexp -m ..."}
    later = threading.Timer(0.5, lambda: (tmp_path / dirlock.HOLDER).write_text(json.dumps(record)))
    later.start()
    try:
        with pytest.raises(dirlock.DirBusy, match=r"in use by pid 4242 on h"), dirlock.DirLock(tmp_path, "rnnexp"):
            pass
    finally:
        later.join()
        held.release()


@pytest.mark.slow
def test_two_sweeps_started_at_once_into_one_dir(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    slow = ["backend=numpy", "timing=quick", "timing.min_run_time_s=0.3", "timing.max_run_time_s=1", "store=null"]
    for i in range(4):
        argv = [sys.executable, "-m", "rnnexp", "-m", "seed=0,1", *slow, f"hydra.sweep.dir={tmp_path / str(i)}"]
        procs = [subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(2)]  # fmt: skip
        done = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
        codes = sorted(code for code, _ in done)
        loser = [err for code, err in done if code != 0]
        assert codes == [0, 1] and len(loser) == 1, done
        busy = r"rnnexp: error: \S+ is in use by pid \d+ on .*; wait for it to finish, or use another dir\n"
        assert re.fullmatch(busy, loser[0]), loser[0]
        time.sleep(0.1)
