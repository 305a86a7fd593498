"""Bad input on the real command line: one line naming the key and the value, a non-zero exit, no
traceback, and nothing half-written (issue 8). Every case runs ``python -m rnnexp`` under tmp_path."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from conftest import ROOT, run_cli, sweep_table

pytestmark = pytest.mark.slow


def bad(id_: str, *args: str, key: str, value: str, says: str, no_gpu: bool = False):
    """A command line that must fail with ``rnnexp: error: KEY=VALUE: ...SAYS...``."""
    marks = [pytest.mark.skipif(no_gpu and _has_cuda(), reason="needs a machine without a CUDA device")]
    return pytest.param(list(args), key, value, says, id=id_, marks=marks)


def _has_cuda() -> bool:
    import torch  # only for the one case whose outcome depends on the machine

    return torch.cuda.is_available()


CONFIG_CASES = [
    # types, ranges and positive sizes
    bad("hidden-size-not-int", "hidden_size=abc", key="hidden_size", value="abc", says="positive integer"),
    bad("hidden-size-zero", "hidden_size=0", key="hidden_size", value="0", says="positive integer"),
    bad("hidden-size-negative", "hidden_size=-1", key="hidden_size", value="-1", says="positive integer"),
    bad("hidden-size-fraction", "hidden_size=3.5", key="hidden_size", value="3.5", says="positive integer"),
    bad("layers-zero", "layers=0", key="layers", value="0", says="positive integer"),
    bad("layers-null", "layers=null", key="layers", value="null", says="positive integer"),
    bad("timesteps-zero", "timesteps=0", key="timesteps", value="0", says="positive integer"),
    bad("batch-size-zero", "batch_size=0", key="batch_size", value="0", says="positive integer"),
    bad("seed-negative", "seed=-1", key="seed", value="-1", says=">= 0"),
    bad("bool-not-bool", "bidirectional=maybe", key="bidirectional", value="maybe", says="true or false"),
    bad("init-gain-zero", "init_gain=0", key="init_gain", value="0", says="positive"),
    bad("input-scale-not-number", "input_scale=big", key="input_scale", value="big", says="number"),
    # choices
    bad("unknown-backend", "backend=tensorflow", key="backend", value="tensorflow", says="numpy, numpy_naive, torch"),
    bad("unknown-cell", "cell=transformer", key="cell", value="transformer", says="rnn, lstm, gru"),
    bad("unknown-dtype", "dtype=float16", key="dtype", value="float16", says="float32, float64"),
    bad("dtype-numpy-cannot-run", "backend=numpy", "dtype=bfloat16", key="dtype", value="bfloat16", says="float32"),
    bad("unknown-device", "device=tpu", key="device", value="tpu", says="cpu, cuda, auto"),
    bad("unknown-nonlinearity", "nonlinearity=sigmoid", key="nonlinearity", value="sigmoid", says="tanh, relu"),
    bad("unknown-init", "init=kaiming", key="init", value="kaiming", says="xavier_uniform"),
    bad("unknown-input-dist", "input_dist=uniform", key="input_dist", value="uniform", says="uniform01"),
    # keys
    bad("misspelt-key", "hiden_size=3", key="hiden_size", value="3", says="did you mean hidden_size?"),
    bad("added-unknown-key", "+hiden_size=3", key="hiden_size", value="3", says="did you mean hidden_size?"),
    bad("force-added-unknown-key", "++hiden_size=3", key="hiden_size", value="3", says="did you mean hidden_size?"),
    bad("plus-on-known-key", "+hidden_size=3", key="+hidden_size", value="3", says="drop the +"),
    bad("timing-misspelt", "timing.warmpu=3", key="timing.warmpu", value="3", says="did you mean timing.warmup?"),
    bad("timing-negative", "timing.warmup=-1", key="timing.warmup", value="-1", says=">= 0"),
    bad("unknown-group", "foo/bar=1", key="foo/bar", value="1", says="unknown config group"),
    bad("missing-equals", "hidden_size", key="hidden_size", value="", says="key=value"),
    bad("undefined-interpolation", "hidden_size=${nope}", key="hidden_size", value="${nope}", says="not found"),
    bad("hydra-setting-type", "hydra.job.chdir=abc", key="hydra.job.chdir", value="abc", says="bool"),
    # cross-field rules
    bad("relu-with-lstm", "cell=lstm", "nonlinearity=relu", key="nonlinearity", value="relu", says="cell=rnn only"),
    bad("relu-with-gru", "cell=gru", "nonlinearity=relu", key="nonlinearity", value="relu", says="cell=rnn only"),
    bad("proj-size-not-below-hidden", "cell=lstm", "proj_size=8", key="proj_size", value="8", says="< hidden_size"),
    bad("proj-size-on-rnn", "proj_size=2", key="proj_size", value="2", says="cell=lstm only"),
    bad("proj-size-negative", "cell=lstm", "proj_size=-1", key="proj_size", value="-1", says=">= 0"),
    bad("cuda-on-numpy", "backend=numpy", "device=cuda", key="device", value="cuda", says="cpu only"),
    bad("cuda-without-gpu", "device=cuda", key="device", value="cuda", says="no CUDA device", no_gpu=True),
    # sweeps, presets, groups, flags
    bad("sweep-without-m", "layers=1,2", key="layers", value="1,2", says="-m/--multirun"),
    bad("malformed-sweep-multirun", "-m", "layers=1,,2", key="layers", value="1,,2", says="malformed override"),
    bad("unclosed-list-multirun", "-m", "layers=[1,2", key="layers", value="[1,2", says="malformed override"),
    bad("bad-range-multirun", "-m", "layers=range(a)", key="layers", value="range(a)", says="malformed override"),
    bad("unknown-key-multirun", "-m", "hiden_size=3,4", key="hiden_size", value="3,4", says="did you mean"),
    bad("missing-preset", "+experiment=nope", key="experiment", value="nope", says="available: "),
    bad("missing-preset-multirun", "-m", "+experiment=nope", key="experiment", value="nope", says="tutorial"),
    bad("preset-without-plus", "experiment=tutorial", key="experiment", value="tutorial", says="+experiment="),
    bad("unknown-timing-option", "timing=slow", key="timing", value="slow", says="default, precise, quick"),
    bad("unknown-launcher", "-m", "hydra/launcher=nope", key="hydra/launcher", value="nope", says="basic"),
    bad("broken-preset", "-cd", "presets", "+experiment=broken", key="experiment", value="broken", says="hidden_size"),
    bad("preset-sweeps-bad-key", "-m", "-cd", "presets", "+experiment=sweeps", key="layrs", value="1,2", says="layers"),
]

TABLE_CASES = [
    pytest.param(["report", "missing"], "missing", id="report-missing-path"),
    pytest.param(["report", "notatable.txt"], "notatable.txt", id="report-not-a-table"),
    pytest.param(["compare", "good/results.csv", "missing.csv"], "missing.csv", id="compare-missing-path"),
    pytest.param(["compare", "notatable.txt", "good/results.csv"], "notatable.txt", id="compare-not-a-table"),
]


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """tmp_path with the inputs the cases name: presets under presets/, a text file, a small results table."""
    experiment = tmp_path / "presets" / "experiment"
    experiment.mkdir(parents=True)
    (experiment / "broken.yaml").write_text("# @package _global_\nhiden_size: 4\n")
    (experiment / "sweeps.yaml").write_text("# @package _global_\nhydra:\n  sweeper:\n    params:\n      layrs: 1,2\n")
    (tmp_path / "notatable.txt").write_text("hello\n")
    (tmp_path / "good").mkdir()
    (tmp_path / "good" / "results.csv").write_text("cell,backend,status\nrnn,torch,ok\n")
    return tmp_path


def assert_nothing_half_written(root: Path) -> None:
    assert not list(root.rglob("*.tmp")), "a temporary results file was left behind"
    for table in root.rglob("results.csv"):
        pd.read_csv(table)  # a whole table, or it does not parse


def message(proc: subprocess.CompletedProcess) -> str:
    """The last non-empty line on stderr: the one line the user reads."""
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines, f"nothing on stderr; stdout: {proc.stdout!r}"
    return lines[-1]


def assert_no_traceback(proc: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr


@pytest.mark.parametrize("args, key, value, says", CONFIG_CASES)
def test_bad_config_is_one_line(workdir, args, key, value, says):
    proc = run_cli(args, workdir)
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert_no_traceback(proc)
    assert message(proc).startswith(f"rnnexp: error: {key}={value}: "), proc.stderr
    assert says in message(proc)
    assert len(proc.stderr.strip().splitlines()) == 1, f"more than the one line (Hydra's chatter?): {proc.stderr}"
    assert proc.stdout == "", "a job started"
    assert not (workdir / "outputs").exists(), "a run or sweep dir was made"
    assert_nothing_half_written(workdir)


@pytest.mark.parametrize("args, path", TABLE_CASES)
def test_bad_table_path_is_one_line(workdir, args, path):
    proc = run_cli(args, workdir)
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert_no_traceback(proc)
    assert path in message(proc) and "error" in message(proc), proc.stderr
    assert_nothing_half_written(workdir)


def test_full_error_shows_the_traceback(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HYDRA_FULL_ERROR": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "rnnexp", "hidden_size=abc"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert "Traceback" in proc.stderr and "ValidationError" in proc.stderr  # OmegaConf's own error, chained
    assert message(proc) == "rnnexp: error: hidden_size=abc: must be a positive integer (>= 1)"


def test_bad_value_inside_a_sweep_is_an_error_row(tmp_path):
    # Preflight lets the sweep start: the valid job runs, the invalid one is a row saying why.
    proc = run_cli(["-m", "hidden_size=8,0", "backend=numpy", "timing=quick"], tmp_path)
    assert proc.returncode != 0
    assert_no_traceback(proc)
    table = sweep_table(tmp_path)
    assert list(table.status) == ["ok", "error"]
    assert table.error[1].endswith("hidden_size=0: must be a positive integer (>= 1)")
    assert_nothing_half_written(tmp_path)


def test_preflight_error_does_not_import_torch(tmp_path):
    code = (
        "import sys\nfrom rnnexp import preflight\nfrom rnnexp.config import ConfigError\n"
        "try:\n    preflight.check_argv(['cell=lstm', 'nonlinearity=relu'])\nexcept ConfigError:\n"
        "    print('torch' in sys.modules)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.stdout.strip() == "False", proc.stderr
