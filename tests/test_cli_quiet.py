"""Quiet engines: a framework's notes about itself go to the job's log, never to the terminal."""

from __future__ import annotations

import importlib.util
import logging

import pytest

from conftest import run_cli
from rnnexp import logs


def record(name: str, level: int, **extra) -> logging.LogRecord:
    rec = logging.LogRecord(name, level, __file__, 1, "message", None, None)
    rec.__dict__.update(extra)
    return rec


@pytest.mark.parametrize(
    "name, level, shown",
    [
        ("rnnexp.job", logging.INFO, True),
        ("rnnexp", logging.WARNING, True),
        ("hydra_plugins.rnnexp_launcher.launcher", logging.INFO, True),
        ("jax._src.xla_bridge", logging.INFO, False),  # "Unable to initialize backend 'tpu'"
        ("jax._src.xla_bridge", logging.WARNING, False),  # "An NVIDIA GPU may be present ... falling back to cpu"
        ("torch._dynamo.convert_frame", logging.WARNING, False),
        ("rnnexpish", logging.INFO, False),  # not rnnexp's: a prefix of a name is not the name
        ("onnxruntime", logging.ERROR, True),  # a framework's error may be the job's: it is shown
        ("py.warnings", logging.WARNING, False),
    ],
)
def test_the_terminal_shows_rnnexps_lines_and_frameworks_errors(name, level, shown):
    assert logs.TerminalFilter().filter(record(name, level)) is shown


def test_a_file_only_record_stays_off_the_terminal():
    assert logs.TerminalFilter().filter(record("rnnexp.job", logging.ERROR, **logs.FILE_ONLY)) is False


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="needs the jax extra")
def test_a_jax_job_prints_only_its_own_lines(tmp_path):
    proc = run_cli(["backend=jax", "timing=quick", "store=null"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    terminal = proc.stdout + proc.stderr
    assert "libtpu" not in terminal and "Unable to initialize backend" not in terminal
    assert proc.stdout.startswith("rnn/jax ") and proc.stderr == ""
    (log,) = (tmp_path / "outputs" / "runs").glob("*/*/rnnexp.log")
    assert "rnn/jax" in log.read_text()  # the job's own line is in its log as well as on the terminal
