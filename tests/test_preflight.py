"""preflight.check_argv on its own: what it refuses (one line, naming key and value), what it lets through."""

from __future__ import annotations

import pytest
from hydra.core.global_hydra import GlobalHydra

from rnnexp import preflight
from rnnexp.config import ConfigError, suggest_key


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["hidden_size=abc"], "hidden_size=abc: must be a positive integer (>= 1)"),
        (["hidden_size=0", "backend=numpy"], "hidden_size=0: must be a positive integer (>= 1)"),
        (["timing.warmup=x"], "timing.warmup=x: must be an integer >= 0"),
        (["init_gain=abc"], "init_gain=abc: must be a number"),
        (["batch_first=maybe"], "batch_first=maybe: must be true or false"),
        (["cell=gru2"], "cell=gru2: allowed: rnn, lstm, gru"),
        (["device=gpu"], "device=gpu: allowed: cpu, cuda, auto"),
        (["backend=tf"], "backend=tf: allowed: numpy, numpy_naive, torch, torch_cell, torch_compile, onnxruntime, jax"),
        (["hiden_size=3"], "hiden_size=3: unknown key (did you mean hidden_size?)"),
        (["+hiden_size=3"], "hiden_size=3: unknown key (did you mean hidden_size?)"),
        (["-m", "+hiden_size=3"], "hiden_size=3: unknown key (did you mean hidden_size?)"),
        (["~hiden_size"], "hiden_size=: unknown key (did you mean hidden_size?)"),
        (
            ["+timing.warmup=3"],
            "+timing.warmup=3: timing.warmup is in the config already; drop the +",
        ),
        (["+timing=quick"], "+timing=quick: timing is in the config already; drop the + (timing=quick)"),
        (["deepbench=nope"], "deepbench=nope: not in the defaults list; choose one with +deepbench=NAME"),
        (["cell=lstm", "nonlinearity=relu", "backend=numpy"], "nonlinearity=relu: applies to cell=rnn only"),
        (["cell=lstm", "proj_size=9", "backend=numpy"], "proj_size=9: must be < hidden_size (8)"),
        (["init_gain=inf", "backend=numpy"], "init_gain=inf: must be a positive finite number"),
        (["timing.noisy_frac=-0.1", "backend=numpy"], "timing.noisy_frac=-0.1: must be >= 0"),
        (["timing=quick,precise"], "timing=quick,precise: a sweep needs -m/--multirun"),
        (["-m", "+experiment=nope"], "experiment=nope: no such preset in experiment/ (available: "),
        (["-m", "hydra/sweeper=nope"], "hydra/sweeper=nope: no such option in hydra/sweeper/ (available: basic"),
        (["-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=x"], "hydra.launcher.n_jobs=x: Value 'x' of type"),
        (["hydra.mode=MULTIRUN", "hiden_size=1,2"], "hiden_size=1,2: unknown key"),
        (["layers=choice(1,"], "layers=choice(1,: malformed override ("),
        (
            ["hydra.run.dir=out/it's"],
            "hydra.run.dir=out/it's: malformed override (LexerNoViableAltException: hydra.run.dir=out/it's; ^); "
            "quote a value holding any of",
        ),
        (["=3"], "=3: missing key before '='"),
        (["--cfg", "job", "--info"], "--info=all: cannot be combined with --cfg"),
        (["--resolve"], "--resolve=: works only with --cfg or --help"),
        (["-m", "--cfg", "job"], "--cfg=job: cannot be combined with --multirun"),
        (["-cd", "/nonexistent/presets"], "--config-dir=/nonexistent/presets: no such directory"),
        (["--dry-run", "hiden_size=3"], "hiden_size=3: unknown key (did you mean hidden_size?)"),
        (["threads=0", "backend=numpy"], "threads=0: must be a positive integer (>= 1)"),
        (["init_gain=0", "backend=numpy"], "init_gain=0: must be a positive finite number"),  # as typed, not 0.0
        (["cell=LSTM"], "cell=LSTM: allowed: rnn, lstm, gru"),
        (["warmup=3"], "warmup=3: unknown key (did you mean timing.warmup?)"),
        (["xyzzy=1"], "xyzzy=1: unknown key (keys: cell, input_size, hidden_size,"),
        (["timing.xyzzy=1"], "timing.xyzzy=1: unknown timing setting (allowed: warmup, min_run_time_s,"),
    ],
)
def test_refused_in_one_line(argv, expected):
    with pytest.raises(ConfigError) as err:
        preflight.check_argv(argv)
    assert str(err.value).startswith(expected)
    assert "\n" not in str(err.value)
    assert not GlobalHydra.instance().is_initialized()  # compose left no global state behind


@pytest.mark.parametrize(
    "argv",
    [
        ["backend=numpy"],
        ["backend=numpy", "hidden_size=4", "layers=2", "bidirectional=true", "timing=quick", "timing.warmup=0"],
        ["backend=numpy", "cell=lstm", "proj_size=4", "~seed", "++threads=2"],
        ["backend=numpy", "hidden_size=${input_size}"],
        ["backend=numpy", "+experiment=tutorial"],
        ["-m", "layers=1,2", "bidirectional=true,false"],
        ["-m", "+experiment=tutorial", "hydra/launcher=joblib"],
        ["-m", "layers=range(1,3)", "cell=choice(rnn,gru)", "timing=quick,precise"],
        # a bad value inside a sweep is that job's error row, not a reason to refuse the sweep
        ["-m", "hidden_size=8,0"],
        ["-m", "hidden_size=abc,8"],
        ["-m", "cell=lstm,rnn", "nonlinearity=relu"],
        ["--cfg", "job", "hidden_size=0"],  # only printing the config: ranges are not checked
        ["--help"],
        ["--version"],
    ],
)
def test_let_through(argv):
    preflight.check_argv(argv)
    assert not GlobalHydra.instance().is_initialized()


def test_own_presets_from_config_dir(tmp_path):
    experiment = tmp_path / "experiment"
    experiment.mkdir()
    (experiment / "mine.yaml").write_text("# @package _global_\nhidden_size: 4\nbackend: numpy\n")
    (experiment / "broken.yaml").write_text("# @package _global_\nhiden_size: 4\n")
    (experiment / "sweeps.yaml").write_text("# @package _global_\nhydra:\n  sweeper:\n    params:\n      layrs: 1,2\n")
    preflight.check_argv(["-cd", str(tmp_path), "+experiment=mine"])
    with pytest.raises(ConfigError, match=r"^experiment=broken: Key 'hiden_size' not in 'RunConfig' \(did you mean"):
        preflight.check_argv(["-cd", str(tmp_path), "+experiment=broken"])
    with pytest.raises(ConfigError, match=r"^layrs=1,2: unknown key \(did you mean layers\?\)"):
        preflight.check_argv(["-m", "-cd", str(tmp_path), "+experiment=sweeps"])
    with pytest.raises(ConfigError, match=r"^experiment=nope: .*available: .*mine.*tutorial"):
        preflight.check_argv(["-cd", str(tmp_path), "+experiment=nope"])


def test_full_error_prints_the_trace_and_still_raises(monkeypatch, capsys):
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    with pytest.raises(ConfigError):
        preflight.check_argv(["layers=1,,2"])
    err = capsys.readouterr().err
    assert "Traceback" in err and "OverrideParseException" in err


def test_no_trace_by_default(monkeypatch, capsys):
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    with pytest.raises(ConfigError):
        preflight.check_argv(["layers=1,,2"])
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    "key, suggestion",
    [
        ("hiden_size", " (did you mean hidden_size?)"),
        ("bidirectonal", " (did you mean bidirectional?)"),
        ("warmup", " (did you mean timing.warmup?)"),
        ("timing.warmpu", " (did you mean timing.warmup?)"),
        ("xyzzy", ""),
        ("timing.xyzzy", ""),  # not "timing": a timing setting is never offered a top-level key
    ],
)
def test_suggest_key(key, suggestion):
    assert suggest_key(key) == suggestion


def test_suggest_key_knows_extra_names():
    assert suggest_key("experimnt", ("experiment",)) == " (did you mean experiment?)"
