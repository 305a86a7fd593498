"""rnnexp.plan: every job of a command line composed, typed and given its dir before anything runs."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from hydra.core.global_hydra import GlobalHydra

from conftest import make_config
from rnnexp.config import ConfigError, as_flat_dict
from rnnexp.plan import make_plan, read_argv


def plan_of(*argv: str):
    return make_plan(read_argv(list(argv)))


@pytest.mark.parametrize(
    "argv",
    [
        ["-m", "layers=1,2", "bidirectional=true,false"],
        ["-m", "cell=lstm,gru", "timing=quick,default", "hidden_size=4"],
        ["-m", "+experiment=tutorial", "seed=3"],
        ["-m", "+experiment=saturation", "hidden_size=8"],
        ["-m", "+deepbench=rnn_h1760_n16_t50,gru_h512_n32_t1", "backend=numpy"],
        ["-m", "init_gain=0.5,2", "timing.warmup=0", "input_dist=zeros"],
        ["hidden_size=6", "cell=gru"],
    ],
)
def test_every_job_config_equals_hydras_own_compose(argv):
    p = plan_of(*argv)
    for job in p.jobs:  # the fast path (one compose per group choice) against a compose from scratch
        assert job.config == as_flat_dict(make_config(*copy.copy(job.overrides)))
    assert not GlobalHydra.instance().is_initialized()


def test_sweep_order_and_numbers_follow_hydra():
    p = plan_of("-m", "layers=1,2", "bidirectional=true,false")
    assert [j.overrides for j in p.jobs] == [  # Hydra writes a swept bool as Python spells it
        ["layers=1", "bidirectional=True"],
        ["layers=1", "bidirectional=False"],
        ["layers=2", "bidirectional=True"],
        ["layers=2", "bidirectional=False"],
    ]
    assert [j.num for j in p.jobs] == [0, 1, 2, 3] and [j.dir for j in p.jobs] == ["0", "1", "2", "3"]


def test_hydra_mode_multirun_is_a_sweep_too():
    p = plan_of("hydra.mode=MULTIRUN", "hidden_size=8,16")
    assert p.multirun and len(p.jobs) == 2


@pytest.mark.parametrize(
    "subdir, dirs",
    [
        ("jobs/${hydra.job.num}", ["jobs/0", "jobs/1"]),
        ("${hydra.job.override_dirname}", ["hidden_size=8", "hidden_size=16"]),
        ("run_${hydra:job.num}", ["run_0", "run_1"]),  # the resolver reads HydraConfig: set for that job
    ],
)
def test_job_dirs_follow_the_subdir_pattern(tmp_path, subdir, dirs):
    p = plan_of("-m", "hidden_size=8,16", f"hydra.sweep.dir={tmp_path}", f"hydra.sweep.subdir={subdir}")
    assert p.root == tmp_path and [j.dir for j in p.jobs] == dirs


def test_run_dir_is_resolved_once_and_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    p = plan_of("hydra.run.dir=rel/x")
    assert p.root == tmp_path / "rel" / "x" and not p.multirun and [j.dir for j in p.jobs] == ["."]


@pytest.mark.parametrize(
    "argv, says",
    [
        (["-m", "hidden_size=range(8,4)"], "hidden_size=range(8,4): this sweep has no values"),
        (["-m", "init_gain=interval(0.5,2.0)"], "init_gain=interval(0.5,2.0): only list, range and choice"),
        (["-m", "hidden_size=range(8,9,0)"], "hidden_size=range(8,9,0): range() arg 3 must not be zero"),
        (["-m", "hidden_size=8,abc"], "hidden_size=abc: must be a positive integer (>= 1) (job #1: hidden_size=abc)"),
        (["-m", "cell=rnn,foo"], "cell=foo: allowed: rnn, lstm, gru, mingru, minlstm, lru, s6 (job #1: cell=foo)"),
        (["-m", "timing=quick,nope"], "timing=nope: no such option in timing/ (available: default, precise, quick)"),
        (["hydra.run.dir=out/${oops}"], "hydra.run.dir=out/${oops}: Interpolation key 'oops' not found"),
        (["-m", "hidden_size=8,16", "hydra.sweep.dir=out/${now:}"], "hydra.sweep.dir=out/${now:}: TypeError"),
        (["-m", "hidden_size=8,16", "hydra.sweep.subdir=${nope}"], "hydra.sweep.subdir=${nope}: Interpolation key"),
    ],
)
def test_bad_sweeps_are_refused_in_one_line(argv, says):
    with pytest.raises(ConfigError) as err:
        plan_of(*argv)
    assert str(err.value).startswith(says) and "\n" not in str(err.value)
    assert not GlobalHydra.instance().is_initialized()


def test_concurrent_jobs_follow_the_launcher():
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    assert plan_of("-m", "seed=range(5)").concurrent_jobs() == 1
    assert plan_of("-m", "seed=range(5)", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2").concurrent_jobs() == 2
    assert plan_of("-m", "seed=range(3)", "hydra/launcher=submitit_local").concurrent_jobs() == 3


def test_config_dir_presets_are_planned(tmp_path):
    (tmp_path / "experiment").mkdir()
    (tmp_path / "experiment" / "mine.yaml").write_text(
        "# @package _global_\nhidden_size: 5\nhydra:\n  sweeper:\n    params:\n      seed: 1,2,3\n"
    )
    inv = read_argv(["--config-dir", str(tmp_path), "-m", "+experiment=mine"])
    p = make_plan(inv)
    assert len(p.jobs) == 3 and {j.config["hidden_size"] for j in p.jobs} == {5}
    assert Path(p.root).is_absolute()


def test_joblib_negative_n_jobs_counts_back_from_the_cores():
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    from rnnexp.threads import usable_cores

    def concurrent(n_jobs: int, jobs: int = 64) -> int:
        argv = ["-m", f"seed=range({jobs})", "hydra/launcher=joblib", f"hydra.launcher.n_jobs={n_jobs}"]
        return plan_of(*argv).concurrent_jobs()

    assert concurrent(-1) == usable_cores()
    assert concurrent(-2) == max(usable_cores() - 1, 1)
    assert concurrent(3) == 3
    assert concurrent(-1, jobs=1) == 1  # a one-job sweep runs alone


def test_a_hydra_resolver_in_a_swept_value_reads_each_jobs_own_number():
    p = plan_of("-m", "hidden_size=8,16", "seed=${hydra:job.num}")
    assert [j.config["seed"] for j in p.jobs] == [0, 1]


def test_a_slurm_sweep_over_threads_is_refused():
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    with pytest.raises(ConfigError) as err:
        plan_of("-m", "threads=1,2", "hydra/launcher=slurm")
    assert str(err.value).startswith("threads=2: more threads than the 1 CPUs each SLURM task gets")
    assert len(plan_of("-m", "threads=1,2", "hydra/launcher=slurm", "hydra.launcher.cpus_per_task=2").jobs) == 2
