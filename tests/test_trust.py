"""A sweep dir from elsewhere is data (issue 27): tampered copies of one real sweep, escaping job dirs, huge plans.

One small real sweep is made once per module; each test tampers a copy of it. Refusals run in-process
(``cli.run``): they must happen before anything runs, so nothing needs a subprocess. Only what needs
the real process (a run that goes ahead, signals, the exit) starts one.
"""

from __future__ import annotations

import dataclasses
import errno
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from conftest import ROOT, run_cli
from rnnexp import cli, fileio, trust
from rnnexp.config import ConfigError

SWEEP = ["-m", "hidden_size=3,4", "timesteps=3", "timing=quick", "backend=numpy"]


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("made") / "sweep"
    proc = run_cli([*SWEEP, f"hydra.sweep.dir={root}"], root.parent)
    assert proc.returncode == 0, proc.stderr
    return root


@pytest.fixture
def sweep(made, tmp_path) -> Path:
    """A copy of the real sweep: somebody else's dir, to be tampered with."""
    return Path(shutil.copytree(made, tmp_path / "copy", symlinks=True))


def tamper(sweep: Path, argv: list[str] = (), dirs: list[str] | None = None) -> None:
    path = sweep / "manifest.json"
    record = json.loads(path.read_text())
    record["argv"] += list(argv)
    for job, d in zip(record["jobs"], dirs or [], strict=False):
        job["dir"] = d
    path.write_text(json.dumps(record))


def one_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("rnnexp: error: ") and "Traceback" not in err[0], err
    return err[0]


def untouched(sweep: Path, before: dict[str, bytes]) -> bool:
    return snapshot(sweep) == before and not list(sweep.glob(".rnnexp.lock*"))


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_the_issues_callback_deletes_nothing(sweep, tmp_path, capsys):
    victim = tmp_path / "some" / "file"
    victim.parent.mkdir()
    victim.write_text("mine")
    tamper(sweep, ["+hydra.callbacks.x._target_=pathlib.Path.unlink", f"+hydra.callbacks.x.self={victim}"])
    before = snapshot(sweep)
    assert cli.run(["resume", str(sweep)]) == 2
    line = one_error(capsys)
    assert "+hydra.callbacks.x._target_=pathlib.Path.unlink" in line and "repeat it" in line
    assert victim.read_text() == "mine" and untouched(sweep, before)


HOSTILE = {
    "a callback as a dict": "hydra.callbacks={x:{_target_:pathlib.Path.touch,self:/tmp/x}}",
    "a forced callback": "++hydra.callbacks.x._target_=builtins.open",
    "a callback without _target_": "+hydra.callbacks.x.self=/tmp/x",
    "another launcher": "hydra/launcher=submitit_local",
    "joblib": "hydra/launcher=joblib",
    "another sweeper target": "hydra.sweeper._target_=pathlib.Path.unlink",
    "a launcher target": "hydra.launcher._target_=os.system",
    "a shell setup for slurm": "hydra.launcher.setup=[touch /tmp/x]",
    "any sbatch flag": "+hydra.launcher.additional_parameters.wrap=touch",
    "any srun flag": "+hydra.launcher.srun_args=['--export=ALL']",
    "a lost-job recorder": "hydra.launcher.lost_recorder=os.system",
    "submitit's files elsewhere": "hydra.launcher.submitit_folder=/tmp/x",
    "a search path": "hydra.searchpath=[file:///tmp]",
    "a preset from a path": "+experiment=../../../../tmp/evil",
    "a timing from a path": "timing=../../../../tmp/evil",
    "logging from a path": "hydra/job_logging=../../../../tmp/evil",
    "a log file elsewhere": "hydra.job_logging.handlers.file.filename=/tmp/x.log",
    "a logging class": "+hydra.job_logging.handlers.h.class=os.system",
    "a logging config as a dict": "hydra.job_logging={version:1,root:{level:INFO}}",
    "an environment for child processes": "+hydra.job.env_set.LD_PRELOAD=/tmp/x.so",
    "a job name that is a path": "hydra.job.name=../../../x",
    "hydra's own files elsewhere": "hydra.output_subdir=../../x",
    "a preset moved under hydra": "+experiment@hydra=ci",
}


@pytest.mark.parametrize("override", HOSTILE.values(), ids=HOSTILE.keys())
def test_a_recorded_override_that_could_run_code_is_refused(sweep, capsys, override):
    tamper(sweep, [override])
    before = snapshot(sweep)
    assert cli.run(["resume", str(sweep)]) == 2
    line = one_error(capsys)
    assert override.partition("=")[0] in line and "recorded" in line
    assert untouched(sweep, before)


@pytest.mark.parametrize(
    "flags, says",
    [
        (["--config-dir", "/tmp"], "--config-dir=/tmp"),
        (["-cp", "/tmp"], "--config-path=/tmp"),
        (["--config-name", "other"], "--config-name=other"),
        (["--experimental-rerun", "/tmp/x.pickle"], "--experimental-rerun=/tmp/x.pickle"),
        (["--info"], "--info"),
    ],
)
def test_a_recorded_flag_that_reads_other_configs_or_runs_no_job_is_refused(sweep, capsys, flags, says):
    tamper(sweep, flags)
    before = snapshot(sweep)
    assert cli.run(["resume", str(sweep)]) == 2
    assert says in one_error(capsys) and untouched(sweep, before)


def test_a_flag_given_to_resume_only_repeats_a_recorded_one(sweep, capsys, tmp_path):
    assert cli.run(["resume", str(sweep), "--config-dir", str(tmp_path)]) == 2
    assert "resume takes a flag only to repeat one the sweep recorded" in one_error(capsys)


@pytest.mark.parametrize("argv", ["-m hidden_size=3,4", ["-m", 7], {"a": 1}])
def test_a_recorded_command_line_that_is_not_one_is_one_line(sweep, capsys, argv):
    record = json.loads((sweep / "manifest.json").read_text())
    record["argv"] = argv
    (sweep / "manifest.json").write_text(json.dumps(record))
    assert cli.run(["resume", str(sweep)]) == 2
    assert "does not parse" in one_error(capsys)


def test_a_recorded_command_line_is_checked_as_a_fresh_one(sweep, capsys):
    tamper(sweep, ["hiden_size=3"])
    assert cli.run(["resume", str(sweep)]) == 2
    assert "hiden_size=3: unknown key (did you mean hidden_size?)" in one_error(capsys)


@pytest.mark.slow
def test_repeating_it_on_the_resume_line_is_the_users_choice(sweep, tmp_path):
    made = tmp_path / "made-by-the-callback"
    hook = ["+hydra.callbacks.x._target_=pathlib.Path.touch", f"+hydra.callbacks.x.self={made}"]
    tamper(sweep, [*hook, "hydra.verbose=false", "hydra/launcher=rnnexp"])  # the last two: allowed as recorded
    proc = run_cli(["resume", str(sweep), *hook], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert made.exists()


def test_what_the_composed_config_names_as_code_is_what_rnnexp_ships():
    """The spelling checks' backstop: every launcher, sweeper and logging option rnnexp allows composes to HOOKS."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from rnnexp.plan import conf_dir

    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        shipped = {"hydra/launcher": trust.LAUNCHERS, "hydra/sweeper": trust.SWEEPERS, **trust.LOGGING}
        for group, options in shipped.items():
            for option in options:
                if option == "slurm" and importlib.util.find_spec("submitit") is None:
                    continue  # the SLURM launcher's schema exists only with the `launchers` extra
                cfg = compose("config", overrides=[f"{group}={option}"], return_hydra_config=True)
                found = trust.hooks(OmegaConf.to_container(cfg.hydra, resolve=False))
                trust.check_hooks(found)  # raises for anything not shipped
    shipped_cb = trust.SHIPPED_CALLBACKS["rnnexp_tracking"]
    assert trust.hooks({"callbacks": {"rnnexp_tracking": dict(shipped_cb)}}) == {}  # conf/config.yaml's own
    changed = {"callbacks": {"rnnexp_tracking": {**shipped_cb, "_target_": "os.system"}}}
    with pytest.raises(trust.ConfigError, match="does not ship"):
        trust.check_hooks(trust.hooks(changed))
    hostile = {"hydra": {"callbacks": {"x": {"self": "/tmp/x"}}, "job_logging": {"handlers": {"h": {"()": "os.x"}}}}}
    found = trust.hooks(hostile["hydra"])
    assert set(found) == {"hydra.callbacks.x", "hydra.job_logging.handlers.h.()"}
    for where, value in found.items():
        with pytest.raises(trust.ConfigError, match=f"{re.escape(where)}=.*does not ship"):
            trust.check_hooks({where: value})
    trust.check_hooks(found, exempt=["hydra.callbacks.", "hydra.job_logging."])  # what the user typed is theirs


# --------------------------------------------------------------------------- job dirs


@pytest.mark.parametrize(
    "subdir, says",
    [
        ("../victim", "is outside the sweep dir"),
        ("a/../../victim", "is outside the sweep dir"),
        ("{victim}", "is outside the sweep dir"),
        (".", "is the sweep dir"),
        ("same", "would share the dir"),
        ("${hidden_size}", None),  # inside and distinct: fine
    ],
)
def test_a_fresh_sweeps_job_dirs_stay_inside_it(tmp_path, capsys, subdir, says):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "lyapunov.csv").write_text("job_num\n0\n")
    subdir = subdir.replace("{victim}", str(victim))
    argv = [*SWEEP, f"hydra.sweep.dir={tmp_path / 'new'}", f"hydra.sweep.subdir={subdir}"]
    if says is None:
        assert cli.run([*argv, "--dry-run"]) == 0
        return
    assert cli.run(argv) == 2
    line = one_error(capsys)
    assert "hydra.sweep.subdir=" in line and says in line
    assert (victim / "lyapunov.csv").read_text() == "job_num\n0\n" and not (tmp_path / "new").exists()


def test_a_job_dir_that_is_a_symlink_out_is_outside(tmp_path, capsys):
    (tmp_path / "new").mkdir()
    (tmp_path / "victim").mkdir()
    (tmp_path / "new" / "0").symlink_to(tmp_path / "victim")
    assert cli.run([*SWEEP, f"hydra.sweep.dir={tmp_path / 'new'}", "--dry-run"]) == 2
    assert f"(-> {tmp_path / 'victim'})" in one_error(capsys)


@pytest.mark.parametrize(
    "dirs, says",
    [
        (["../victim", "1"], "outside"),
        (["{victim}", "1"], "outside"),
        (["1", "1"], "share"),
        ([".", "1"], "sweep dir"),
        ([5, "1"], "must be a path"),
    ],
)
def test_a_manifests_job_dirs_stay_inside_it(sweep, tmp_path, capsys, dirs, says):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "lyapunov.csv").write_text("theirs")
    tamper(sweep, dirs=[d.format(victim=victim) if isinstance(d, str) else d for d in dirs])
    before = snapshot(sweep)
    assert cli.run(["resume", str(sweep)]) == 2
    line = one_error(capsys)
    assert "manifest.json job dir=" in line and says in line
    assert (victim / "lyapunov.csv").read_text() == "theirs" and untouched(sweep, before)


@pytest.mark.parametrize(
    "overrides",
    [
        ["hidden_size=3", "timesteps=3", "timing=quick", "backend=numpy", "+hydra.callbacks.x._target_=os.getcwd"],
        ["hidden_size=3", "timesteps=3", "timing=quick", "backend=numpy", "hydra.sweep.subdir=../victim"],
        ["hidden_size=3", "timesteps=3", "timing=quick", "backend=numpy", "hydra.job.env_set.X=1"],
        "hidden_size=3",
    ],
)
def test_a_manifests_job_overrides_must_be_the_recorded_command_lines(sweep, capsys, overrides):
    """The sweeper launches each job by the manifest's own overrides: they are checked, not only the argv."""
    (sweep / "0" / "results.csv").unlink()  # job 0 would run again
    record = json.loads((sweep / "manifest.json").read_text())
    record["jobs"][0]["overrides"] = overrides
    (sweep / "manifest.json").write_text(json.dumps(record))
    before = snapshot(sweep)
    assert cli.run(["resume", str(sweep)]) == 2
    assert "manifest.json job #0=" in one_error(capsys) and untouched(sweep, before)


def test_a_job_dir_swapped_for_a_symlink_out_is_refused(sweep, tmp_path, capsys):
    victim = tmp_path / "victim"
    shutil.move(sweep / "1", victim)
    (sweep / "1").symlink_to(victim)
    assert cli.run(["resume", str(sweep)]) == 2
    assert "outside the sweep dir" in one_error(capsys)


def test_only_rnnexps_own_temp_files_are_removed(sweep):
    from rnnexp import manifest

    ours = [sweep / ".results.csv.123.rnnexp.tmp", sweep / "0" / ".steps.csv.9.rnnexp.tmp"]
    ours.append(sweep / "1" / ".hydra" / ".config.yaml.77.rnnexp.tmp")
    theirs = [sweep / ".notes.123.tmp", sweep / "0" / ".notes.123.rnnexp.tmp", sweep / "0" / ".steps.csv.x.rnnexp.tmp"]
    theirs += [sweep / "0" / ".steps.csv.123.tmp", sweep / "mine" / ".results.csv.5.rnnexp.tmp"]  # not a job's dir
    for path in [*ours, *theirs]:
        path.parent.mkdir(exist_ok=True)
        path.write_text("x")
    cli.remove_stale_temps(sweep, manifest.load(sweep))
    assert not any(p.exists() for p in ours) and all(p.exists() for p in theirs)
    assert fileio.temp_path(sweep / "results.csv").name == f".results.csv.{os.getpid()}.rnnexp.tmp"


# --------------------------------------------------------------------------- bounded plans


@pytest.mark.parametrize(
    "sweep_args, count",
    [
        (["seed=range(0,100000000)"], "100,000,000"),
        (["seed=range(0,1000)", "hidden_size=range(1,1000)"], "999,000"),
        (["init_gain=range(0,1e12,0.5)"], "2,000,000,000,000"),  # a float range: never materialised
        (["seed=range(0,10000000000000000000000)", "hidden_size=1,2"], "20,000,000,000,000,000,000,000"),
    ],
)
def test_a_sweep_too_large_is_refused_before_it_is_expanded(tmp_path, capsys, sweep_args, count):
    assert cli.run(["-m", *sweep_args, f"hydra.sweep.dir={tmp_path / 's'}", "--dry-run"]) == 2
    line = one_error(capsys)
    assert f"{count} jobs" in line and "200,000" in line and "--max-jobs" in line


def test_a_raised_bound_lets_a_large_dry_run_show_a_sample(tmp_path, capsys):
    argv = ["-m", "seed=range(0,1000)", "hidden_size=range(1,1000)", f"hydra.sweep.dir={tmp_path / 's'}"]
    assert cli.run([*argv, "--dry-run", "--max-jobs", "1000000"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "#0: python -m rnnexp seed=0 hidden_size=1"
    assert out[-2] == "#998999: python -m rnnexp seed=999 hidden_size=999"
    assert "... 998,980 more jobs ..." in out and len(out) == 22
    assert out[-1].startswith("999,000 jobs into sweep dir ") and "the 20 shown were composed and checked" in out[-1]
    assert cli.run([*argv, "--max-jobs=10"]) == 2  # the bound holds for a real run too (and is lowered here)
    assert "999,000 jobs" in one_error(capsys)


def test_a_dry_run_sample_is_checked(tmp_path, capsys):
    # the last job's value is not a hidden size: the sample includes it, so the dry run says so
    argv = ["-m", "seed=range(0,1000)", "hidden_size=3,abc", f"hydra.sweep.dir={tmp_path / 's'}", "--dry-run"]
    assert cli.run(argv) == 2
    assert "hidden_size=abc" in one_error(capsys)


@pytest.mark.parametrize("value", ["0", "-5", "many", ""])
def test_max_jobs_is_a_positive_integer(tmp_path, capsys, value):
    assert cli.run(["-m", "seed=1,2", "--max-jobs", value, "--dry-run"]) == 2
    assert "--max-jobs=" in one_error(capsys)


# --------------------------------------------------------------------------- the way out


def test_a_full_disk_on_resume_is_one_line_and_leaves_no_lock(sweep, capsys, monkeypatch):
    real = fileio.write_atomic

    def full(path, *args, **kwargs):
        if Path(path).name == ".rnnexp.probe":  # an empty file still fits; nothing with data does
            return real(path, *args, **kwargs)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(fileio, "write_atomic", full)
    table = (sweep / "results.csv").read_bytes()
    assert cli.run(["resume", str(sweep)]) == 1
    assert "No space left on device" in one_error(capsys)
    assert (sweep / "results.csv").read_bytes() == table and not list(sweep.glob(".rnnexp.lock*"))


def test_a_full_disk_after_the_lock_is_one_line_ending_with_the_hint(sweep, capsys, monkeypatch):
    real = fileio.write_atomic

    def full(path, *args, **kwargs):  # the lock's record fits, the sweep's files do not
        if Path(path).name in (".rnnexp.probe", ".rnnexp.lock.json"):
            return real(path, *args, **kwargs)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(fileio, "write_atomic", full)
    assert cli.run(["resume", str(sweep)]) == 1
    line = one_error(capsys)
    assert "cannot write the table" in line and line.endswith(f"rnnexp resume {sweep}")
    assert not list(sweep.glob(".rnnexp.lock*"))


SIGNALLED = """
import atexit, logging, os, signal, sys
from rnnexp import cli, results, runner
def signalled(real, sigs):
    def call(*args, **kwargs):
        for sig in sigs:
            os.kill(os.getpid(), sig)
        return real(*args, **kwargs)
    return call
runner.run_job = signalled(runner.run_job, {in_job})
results.write_tables = signalled(results.write_tables, {in_table})
logging.getLogger().addHandler(logging.StreamHandler(sys.stderr))
# what used to follow the last line: a torch log line at exit, a signal while the interpreter exits
atexit.register(lambda: logging.getLogger("torch._subclasses.fake_tensor").error("FakeTensor cache stats:"))
atexit.register(lambda: os.kill(os.getpid(), signal.SIGTERM))
signal.signal(signal.SIGINT, signal.default_int_handler)
cli.main(sys.argv[1:])
"""


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_while_the_table_is_written_waits_and_is_said(sweep, tmp_path, sig):
    (sweep / "1" / "results.csv").unlink()  # job 1 runs again, then the table is written
    proc = signalled(sweep, tmp_path, in_job=[], in_table=[sig])
    assert proc.returncode == 128 + sig, proc.stderr  # never -2/-15: no signal kills it, at the end or at exit
    name = signal.Signals(sig).name
    want = f"rnnexp: error: {name} received while the table was written; the table is whole; exiting {128 + sig}"
    assert proc.stderr.strip().splitlines()[-1] == want, proc.stderr
    assert "FakeTensor" not in proc.stderr + proc.stdout
    assert list(pd.read_csv(sweep / "results.csv").status) == ["ok", "ok"] and not list(sweep.glob(".rnnexp.lock*"))


@pytest.mark.slow
def test_a_second_ctrl_c_in_the_wrap_up_keeps_the_table_and_the_hint_last(sweep, tmp_path):
    (sweep / "1" / "results.csv").unlink()
    proc = signalled(sweep, tmp_path, in_job=[signal.SIGINT], in_table=[signal.SIGINT, signal.SIGINT])
    assert proc.returncode == 130, proc.stderr
    err = proc.stderr.strip().splitlines()
    assert err[-2] == "rnnexp: error: SIGINT received while the table was written; the table is whole; exiting 130"
    assert err[-1].startswith("rnnexp: error: interrupted (SIGINT): 1 of 2 jobs finished; to finish the rest: ")
    assert err[-1].endswith(f"rnnexp resume {sweep}") and "FakeTensor" not in proc.stderr + proc.stdout
    assert list(pd.read_csv(sweep / "results.csv").job_num) == [0] and not list(sweep.glob(".rnnexp.lock*"))


def signalled(sweep: Path, cwd: Path, in_job: list[int], in_table: list[int]) -> subprocess.CompletedProcess:
    """``rnnexp resume SWEEP`` with signals sent to itself as a job runs and as the table is written."""
    script = textwrap.dedent(SIGNALLED).format(in_job=[int(s) for s in in_job], in_table=[int(s) for s in in_table])
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run(
        [sys.executable, "-c", script, "resume", str(sweep)], cwd=cwd, env=env, capture_output=True, text=True
    )


def test_every_option_of_the_slurm_launcher_is_data_or_code_and_not_both():
    """A new submitit option must be sorted: the scheduler's requests a recorded sweep may hold, or code/paths."""
    slurm = pytest.importorskip("hydra_plugins.rnnexp_launcher.slurm")
    if slurm.SlurmLauncher is None:
        pytest.skip("needs the launchers extra")
    fields = {f.name for f in dataclasses.fields(slurm.RnnexpSlurmConf)}
    assert not trust.LAUNCHER_OPTIONS & trust.LAUNCHER_CODE
    assert fields - trust.LAUNCHER_CODE == trust.LAUNCHER_OPTIONS


@pytest.mark.parametrize(
    "override",
    ["hydra.launcher.name=rnnexp-x", "hydra.launcher.partition=cpu", "hydra.launcher.mem_gb=1",
     "hydra.launcher.timeout_min=5", "hydra.launcher.poll_s=0.5", "hydra.launcher.exclude=node1",
     "hydra.launcher.account=proj", "hydra.launcher.array_parallelism=4"],
)  # fmt: skip
def test_a_recorded_scheduler_request_is_data(override):
    trust.check_override(override, set())


@pytest.mark.parametrize("key", sorted(trust.LAUNCHER_CODE - {"_target_"}))
def test_a_recorded_launcher_option_that_names_code_or_a_path_is_refused(key):
    with pytest.raises(ConfigError, match="not a Hydra setting a recorded sweep may hold"):
        trust.check_override(f"hydra.launcher.{key}=x", set())
