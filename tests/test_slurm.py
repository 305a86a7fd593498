"""The SLURM launcher (hydra_plugins/rnnexp_launcher/slurm.py): the bounded wait on its own, then sweeps on a real
cluster (CI starts one with .ci/slurm/): same table as the default launcher, a cancelled or timed-out job kept as an
error row naming SLURM's state, and no hang when the scheduler stops answering.

Cluster tests skip with the reason when no cluster answers (``sinfo``), except under ``CI=true``, where that fails.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
import uuid
from pathlib import Path

import pandas as pd
import pytest

from conftest import ROOT, interruptible_cli, run_cli
from hydra_plugins.rnnexp_launcher import slurm, submitit_compat

if slurm.SlurmLauncher is None and os.environ.get("CI") == "true":
    pytest.fail("hydra-submitit-launcher is not installed (the `launchers` extra)", pytrace=False)
if slurm.SlurmLauncher is None:
    pytest.skip("hydra-submitit-launcher is not installed (the `launchers` extra)", allow_module_level=True)

SWEEP = ["-m", "cell=rnn,lstm", "bidirectional=false,true", "hidden_size=5", "timing=quick"]  # test_reproducible's
KEY = ["cell", "bidirectional", "hidden_size", "backend", "layers"]
DETERMINISTIC = ["job_num", "output_shape", "h_n_shape", "shape_ok", "h_mean", "h_std", "h_min", "h_max",
                 "h_saturation_frac", "max_abs_err_vs_ref", "parity_ok", "status"]  # fmt: skip
SLOW_JOBS = ["timing.min_run_time_s=3", "timing.max_run_time_s=3"]  # each job runs ~3 s after ~5 s of start-up


# -- the wait, with a fake scheduler and clock ------------------------------------------------------------------


class FakeQueue:
    """Answers ``query`` from a script: at call k, answer min(k, last) (None: the scheduler did not answer)."""

    def __init__(self, *answers: dict[str, str] | None):
        self.answers = list(answers)
        self.calls = 0

    def __call__(self, ids: list[str]) -> dict[str, str] | None:
        answer = self.answers[min(self.calls, len(self.answers) - 1)]
        self.calls += 1
        return None if answer is None else {k: v for k, v in answer.items() if k in ids}


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.now += s


def _tracked(num: int, results_after: float | None, clock: FakeClock) -> slurm.Tracked:
    done = (lambda: clock.now >= results_after) if results_after is not None else (lambda: False)
    return slurm.Tracked(num, f"7_{num}", done)


BOUND = slurm.WaitBound(poll_s=1.0, lost_after_s=10.0, no_answer_s=30.0, max_wait_min=1.0)


def test_a_job_the_queue_does_not_list_is_lost_after_the_grace_period():
    # squeue answers without the job and there is no sacct (the case that hung submitit forever).
    clock = FakeClock()
    jobs = [_tracked(0, 3.0, clock), _tracked(1, None, clock)]
    out = slurm.wait(jobs, FakeQueue({}), BOUND, clock, clock.sleep)
    assert out.finished == [0]
    assert out.lost == {1: ("UNKNOWN", "never listed by squeue or sacct in 10 s")}
    assert clock.now == 10.0


def test_a_silent_scheduler_ends_the_wait_after_no_answer_s():
    # Neither squeue nor sacct answers at all: jobs may still be running, so the longer bound applies.
    clock = FakeClock()
    answers = [{"7_0": "RUNNING", "7_1": "RUNNING"}, *[None] * 100]
    jobs = [_tracked(0, 15.0, clock), _tracked(1, None, clock)]
    out = slurm.wait(jobs, FakeQueue(*answers), BOUND, clock, clock.sleep)
    assert out.finished == [0]  # its result came while the scheduler was silent
    assert out.lost == {1: ("RUNNING", "no answer from squeue or sacct for 30 s")}
    assert clock.now == 30.0


def test_a_cancelled_job_is_lost_with_its_state_and_the_others_finish():
    clock = FakeClock()
    jobs = [_tracked(0, 5.0, clock), _tracked(1, None, clock), _tracked(2, 8.0, clock)]
    queue = FakeQueue({"7_0": "RUNNING", "7_1": "RUNNING", "7_2": "PENDING"}, {"7_1": "CANCELLED", "7_2": "RUNNING"})
    out = slurm.wait(jobs, queue, BOUND, clock, clock.sleep)
    assert sorted(out.finished) == [0, 2]
    assert out.lost == {1: ("CANCELLED", "ended CANCELLED without a result")}
    assert clock.now == 10.0  # last reported RUNNING at 0 s


def test_a_state_seen_once_is_kept_when_the_queue_forgets_the_job():
    clock = FakeClock()
    queue = FakeQueue({"7_0": "RUNNING"}, {"7_0": "TIMEOUT"}, {})  # then purged from squeue, and no sacct
    out = slurm.wait([_tracked(0, None, clock)], queue, BOUND, clock, clock.sleep)
    assert out.lost[0][0] == "TIMEOUT" and "no longer listed" in out.lost[0][1]


def test_a_running_job_keeps_the_wait_going_and_a_late_result_counts():
    # Reported RUNNING for 30 s, then no answer for 9 s (< lost_after_s), then its result appears.
    clock = FakeClock()
    answers = [{"7_0": "RUNNING"}] * 31 + [{}] * 9
    out = slurm.wait([_tracked(0, 39.0, clock)], FakeQueue(*answers), BOUND, clock, clock.sleep)
    assert out.finished == [0] and not out.lost


def test_max_wait_ends_a_wait_on_a_job_that_never_starts():
    clock = FakeClock()
    out = slurm.wait([_tracked(0, None, clock)], FakeQueue({"7_0": "PENDING"}), BOUND, clock, clock.sleep)
    assert out.lost == {0: ("PENDING", "still PENDING after max_wait_min=1; cancelled")}
    assert clock.now == 60.0


def test_the_telling_line_of_a_lost_jobs_stderr():
    oom = "slurmstepd-vm: error: Exceeded job memory limit\nsrun: error: vm: task 0: Killed\n"
    crash = "Traceback (most recent call last):\nImportError: no torch\nsrun: error: vm: task 0: Exited with code 1"
    assert slurm._telling_line(oom) == "slurmstepd-vm: error: Exceeded job memory limit"
    assert slurm._telling_line(crash) == "ImportError: no torch"
    assert slurm._telling_line("srun: error: vm: task 0: Killed\n\n") == "srun: error: vm: task 0: Killed"
    assert slurm._telling_line("") == ""


def test_launcher_options_are_split_from_submitits(tmp_path):
    launcher = slurm.RnnexpSlurmLauncher(
        submitit_folder=str(tmp_path), lost_after_s=5, poll_s=0.5, max_wait_min=2, lost_recorder="my.record", mem_gb=1
    )
    assert launcher.bound == slurm.WaitBound(poll_s=0.5, lost_after_s=5.0, no_answer_s=600.0, max_wait_min=2.0)
    assert launcher.lost_recorder == "my.record"
    assert set(launcher.params) == {"submitit_folder", "mem_gb"}


# -- a real cluster ----------------------------------------------------------------------------------------------


def _cluster_reason() -> str | None:
    """Why no cluster is usable here, or None when sinfo lists a node that can run jobs."""
    if shutil.which("sinfo") is None or shutil.which("sbatch") is None:
        return "SLURM's commands (sinfo, sbatch) are not on PATH; CI starts a cluster with .ci/slurm/"
    try:
        proc = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        return "sinfo did not answer in 20 s"
    states = proc.stdout.split()
    if proc.returncode != 0 or not any(s.rstrip("*~#") in ("idle", "mixed", "allocated") for s in states):
        return f"no SLURM node is up (sinfo: {proc.stdout.strip() or proc.stderr.strip()})"
    return None


@pytest.fixture(scope="module")
def cluster():
    reason = _cluster_reason()
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true needs a SLURM cluster: {reason}", pytrace=False)
        pytest.skip(reason)


def _launcher(name: str, timeout_min: int = 10) -> list[str]:
    """hydra/launcher=slurm for a test: small memory, a short grace, and a job name of its own to find its jobs."""
    return ["hydra/launcher=slurm", "hydra.launcher.mem_gb=1", f"hydra.launcher.timeout_min={timeout_min}",
            "hydra.launcher.poll_s=0.5", "hydra.launcher.lost_after_s=5", f"hydra.launcher.name={name}"]  # fmt: skip


def _env(path_first: Path | None = None) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}  # tests/: _report_job
    if path_first is not None:
        env["PATH"] = f"{path_first}{os.pathsep}{env['PATH']}"
    return env


def _sweep(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.Popen:
    out = open(cwd / "driver.log", "w")  # noqa: SIM115 - closed with the process, in _finish
    return subprocess.Popen(interruptible_cli(*args), cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                            text=True)  # fmt: skip


def _finish(proc: subprocess.Popen, cwd: Path, timeout: float = 600) -> tuple[int, str]:
    try:
        code = proc.wait(timeout=timeout)
    finally:
        proc.stdout and proc.stdout.close()
    return code, (cwd / "driver.log").read_text()


def _tasks(name: str, states: str = "all") -> list[str]:
    """This test's SLURM job ids (array tasks one by one) in these squeue states."""
    proc = subprocess.run(["squeue", "-h", "-r", "-n", name, "-t", states, "-o", "%i"], capture_output=True, text=True)
    return proc.stdout.split()


def _cancel_one_running(name: str, proc: subprocess.Popen, timeout: float = 300) -> str:
    """scancel the first of this test's jobs seen running (while it still starts Python: it has no row yet)."""
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        running = _tasks(name, "R")
        if running:
            subprocess.run(["scancel", running[0]], check=True)
            return running[0]
        time.sleep(0.1)
    pytest.fail(f"none of {name}'s jobs was seen running")


def _submitted_tasks(sweep_dir: Path) -> set[str]:
    """Every SLURM job id the sweep's launcher submitted: submitit's per-job folders that hold a submitted job."""
    return {p.parent.name for p in (sweep_dir / ".submitit").glob("*/*_submitted.pkl")}


def _deterministic(table: pd.DataFrame) -> pd.DataFrame:
    return table.sort_values(KEY)[KEY + [c for c in DETERMINISTIC if c in table]].reset_index(drop=True)


@pytest.mark.slow
def test_slurm_gives_the_default_launchers_table(cluster, tmp_path):
    name = f"rnnexp-same-{uuid.uuid4().hex[:6]}"
    default = run_cli([*SWEEP, f"hydra.sweep.dir={tmp_path / 'default'}"], tmp_path)
    assert default.returncode == 0, default.stderr
    sweep_dir = tmp_path / "slurm"
    proc = subprocess.run([sys.executable, "-m", "rnnexp", *SWEEP, *_launcher(name), f"hydra.sweep.dir={sweep_dir}"],
                          cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    table = pd.read_csv(sweep_dir / "results.csv", dtype={"slurm_job_id": str})
    want = pd.read_csv(tmp_path / "default" / "results.csv")
    assert len(table) == 4 and (table.status == "ok").all()
    pd.testing.assert_frame_equal(_deterministic(table), _deterministic(want))
    assert (table.concurrent_jobs == 1).all()  # each SLURM job owns its CPUs
    # Every task ran as SLURM says, and sacct (accounting) agrees with the rows.
    tasks = _submitted_tasks(sweep_dir)
    assert len(tasks) == 4 and len({t.split("_")[0] for t in tasks}) == 1, tasks  # one array of 4
    assert set(slurm.query_states(sorted(tasks)).values()) <= {"COMPLETED", "COMPLETING", "RUNNING"}
    text = slurm._run(["sacct", "-n", "-P", "-X", "-j", next(iter(tasks)).split("_")[0], "-o", "JobID,State"])
    assert text is not None and set(submitit_compat.parse_states(text)) == tasks


@pytest.mark.slow
def test_rows_record_where_they_ran(cluster, tmp_path):
    name = f"rnnexp-where-{uuid.uuid4().hex[:6]}"
    sweep_dir = tmp_path / "slurm"
    proc = subprocess.run([sys.executable, "-m", "rnnexp", "-m", "seed=0,1", "timing=quick", *_launcher(name),
                           f"hydra.sweep.dir={sweep_dir}"], cwd=tmp_path, env=_env(), capture_output=True, text=True,
                          timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    table = pd.read_csv(sweep_dir / "results.csv", dtype={"slurm_job_id": str})
    assert sorted(table.slurm_job_id) == sorted(_submitted_tasks(sweep_dir))
    nodes = subprocess.run(["sinfo", "-h", "-N", "-o", "%N"], capture_output=True, text=True).stdout.split()
    assert set(table.hostname) <= set(nodes)


@pytest.fixture(scope="module")
def cancelled_sweep(cluster, tmp_path_factory):
    """A 4-job sweep through SLURM with one job scancel'ed while it runs: (sweep dir, exit code, output, slurm id)."""
    cwd = tmp_path_factory.mktemp("cancel")
    name = f"rnnexp-cancel-{uuid.uuid4().hex[:6]}"
    sweep_dir = cwd / "sweep"
    proc = _sweep([*SWEEP, *SLOW_JOBS, *_launcher(name), f"hydra.sweep.dir={sweep_dir}"], cwd, _env())
    cancelled = _cancel_one_running(name, proc)
    code, output = _finish(proc, cwd)
    return sweep_dir, code, output, cancelled


@pytest.mark.slow
def test_a_cancelled_job_is_an_error_row_and_the_table_is_written(cancelled_sweep):
    sweep_dir, code, output, cancelled = cancelled_sweep
    num = int(cancelled.split("_")[1])  # one array for jobs 0-3: task k is job k
    assert code == 1, output
    table = pd.read_csv(sweep_dir / "results.csv")
    assert list(table.job_num) == [0, 1, 2, 3]
    lost = table[table.job_num == num].iloc[0]
    assert lost.status == "error" and "CANCELLED" in lost.error and cancelled in lost.error
    assert (table[table.job_num != num].status == "ok").all()
    assert "Traceback" not in output and "UncompletedJobError" not in output


@pytest.mark.slow
def test_resume_submits_only_the_lost_job(cancelled_sweep, tmp_path):
    sweep_dir, _, output, cancelled = cancelled_sweep
    assert f"rnnexp resume {sweep_dir}" in output  # the summary says how to resume
    before = _submitted_tasks(sweep_dir)
    proc = subprocess.run([sys.executable, "-m", "rnnexp", "resume", str(sweep_dir)], cwd=tmp_path, env=_env(),
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    new = _submitted_tasks(sweep_dir) - before
    assert len(new) == 1, new  # one array of one task: the cancelled job alone
    table = pd.read_csv(sweep_dir / "results.csv")
    assert list(table.job_num) == [0, 1, 2, 3] and (table.status == "ok").all()


@pytest.mark.slow
def test_a_job_over_its_time_limit_is_a_timeout_row(cluster, tmp_path):
    # SLURM's shortest time limit is a minute (it checks limits about every 30 s): this test takes ~1.5 min.
    name = f"rnnexp-timeout-{uuid.uuid4().hex[:6]}"
    sweep_dir = tmp_path / "sweep"
    args = ["-m", "seed=0", "timing.min_run_time_s=600", "timing.max_run_time_s=600", *_launcher(name, timeout_min=1),
            f"hydra.sweep.dir={sweep_dir}"]  # fmt: skip
    proc = subprocess.run([sys.executable, "-m", "rnnexp", *args], cwd=tmp_path, env=_env(), capture_output=True,
                          text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 1, proc.stdout + proc.stderr
    row = pd.read_csv(sweep_dir / "results.csv").iloc[0]
    assert row.status == "error" and "TIMEOUT" in row.error
    assert "Traceback" not in proc.stderr


NO_ACCOUNTING = "#!/bin/sh\necho 'sacct: error: Slurm accounting storage is disabled' >&2\nexit 1\n"


@pytest.mark.slow
def test_without_accounting_a_cancelled_job_does_not_hang(cluster, tmp_path):
    # The driver's sacct fails as on a cluster without accounting (where submitit waits forever); squeue works.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sacct").write_text(NO_ACCOUNTING)
    (bin_dir / "sacct").chmod(0o755)
    name = f"rnnexp-noacct-{uuid.uuid4().hex[:6]}"
    sweep_dir = tmp_path / "sweep"
    proc = _sweep(["-m", "seed=0,1", "timing=quick", *SLOW_JOBS, *_launcher(name), f"hydra.sweep.dir={sweep_dir}"],
                  tmp_path, _env(bin_dir))  # fmt: skip
    cancelled = _cancel_one_running(name, proc)
    code, output = _finish(proc, tmp_path)
    assert code == 1, output
    table = pd.read_csv(sweep_dir / "results.csv")
    num = int(cancelled.split("_")[1])
    lost = table[table.job_num == num].iloc[0]
    assert lost.status == "error" and "CANCELLED" in lost.error
    assert (table[table.job_num != num].status == "ok").all()


@pytest.mark.slow
def test_a_job_killed_for_memory_is_an_error_row(cluster, tmp_path):
    # 200 MB cannot hold Python and torch. With cgroups SLURM says OUT_OF_MEMORY; this CI cluster has none, so
    # jobacct_gather kills the job (state FAILED) and its stderr says it exceeded its memory limit.
    name = f"rnnexp-oom-{uuid.uuid4().hex[:6]}"
    sweep_dir = tmp_path / "sweep"
    proc = subprocess.run([sys.executable, "-m", "rnnexp", "-m", "seed=0", "timing=quick", *_launcher(name),
                           "+hydra.launcher.additional_parameters.mem=200M", f"hydra.sweep.dir={sweep_dir}"],
                          cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 1, proc.stdout + proc.stderr
    row = pd.read_csv(sweep_dir / "results.csv").iloc[0]
    assert row.status == "error"
    assert "OUT_OF_MEMORY" in row.error or ("FAILED" in row.error and "memory limit" in row.error), row.error
    assert "srun" not in row.error  # slurmstepd's reason, not srun's "task 0: Killed"


@pytest.mark.slow
def test_an_array_sbatch_refuses_is_error_rows(cluster, tmp_path):
    name = f"rnnexp-refused-{uuid.uuid4().hex[:6]}"
    sweep_dir = tmp_path / "sweep"
    proc = subprocess.run([sys.executable, "-m", "rnnexp", "-m", "seed=0,1", "timing=quick", *_launcher(name),
                           "hydra.launcher.mem_gb=100000", f"hydra.sweep.dir={sweep_dir}"],
                          cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 1, proc.stdout + proc.stderr
    table = pd.read_csv(sweep_dir / "results.csv")
    assert list(table.job_num) == [0, 1] and (table.status == "error").all()
    assert table.error.str.contains("NOT_SUBMITTED").all() and table.error.str.contains("sbatch").all()
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_an_interrupted_driver_cancels_its_jobs(cluster, tmp_path, sig):
    name = f"rnnexp-interrupt-{uuid.uuid4().hex[:6]}"
    proc = _sweep(["-m", "seed=0,1,2", "timing=quick", *SLOW_JOBS, *_launcher(name),
                   f"hydra.sweep.dir={tmp_path / 'sweep'}"], tmp_path, _env())  # fmt: skip
    deadline = time.time() + 300
    while not _tasks(name, "R") and time.time() < deadline and proc.poll() is None:
        time.sleep(0.1)
    assert _tasks(name, "PD,R"), "the sweep's jobs should be queued or running before the signal"
    proc.send_signal(sig)
    code, output = _finish(proc, tmp_path, timeout=120)
    assert code in (128 + sig, -sig), output  # the CLI's exit status for the signal, or Python's own
    deadline = time.time() + 60  # scancel'ed jobs leave the queue after KillWait
    while _tasks(name, "PD,R,CG") and time.time() < deadline:
        time.sleep(0.2)
    assert not _tasks(name, "PD,R,CG"), "the driver should have cancelled its jobs"


SCAN = """
import sys
from hydra.core.plugins import Plugins
from hydra.plugins.launcher import Launcher
names = [c.__module__ + "." + c.__name__ for c in Plugins.instance().discover(Launcher)]
import hydra_plugins.rnnexp_launcher.slurm as slurm
found = "hydra_plugins.rnnexp_launcher.launcher.RnnexpLauncher" in names
print(slurm.SlurmLauncher is None, found, "submitit" in sys.modules)
"""


def _site_without_submitit(dest: Path) -> Path:
    """This venv's packages as links, less submitit and hydra-submitit-launcher (the `launchers` extra's half)."""
    purelib = Path(sysconfig.get_paths()["purelib"])
    dest.mkdir()
    for entry in purelib.iterdir():
        if entry.name.startswith(("submitit", "hydra_submitit_launcher")):
            continue
        if entry.name == "hydra_plugins":  # a namespace shared by plugins: keep the others
            (dest / entry.name).mkdir()
            for plugin in entry.iterdir():
                if plugin.name != "hydra_submitit_launcher":
                    (dest / entry.name / plugin.name).symlink_to(plugin)
            continue
        (dest / entry.name).symlink_to(entry)
    return dest


def test_without_the_launchers_extra_the_plugin_scan_is_clean(tmp_path):
    site = _site_without_submitit(tmp_path / "site")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(site)])}
    proc = subprocess.run([sys.executable, "-S", "-c", SCAN], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["True", "True", "False"]
    assert "rnnexp_launcher.slurm" not in proc.stderr  # Hydra's scanner warns about a module it cannot import


class _NoCallbacks:
    """Stands in for Hydra's Callbacks in a hand-built HydraContext."""

    def on_job_start(self, config, **kwargs):
        pass

    def on_job_end(self, config, job_return, **kwargs):
        pass


def _report_job(cfg):
    """A task that reports where and as what it ran (run in the SLURM job, so imported from tests/)."""
    from hydra.core.hydra_config import HydraConfig

    job = HydraConfig.get()
    task = os.environ["SLURM_ARRAY_TASK_ID"]
    return {"num": job.job.num, "seed": cfg.seed, "dir": job.runtime.output_dir, "task": task}


@pytest.mark.slow
def test_launch_jobs_runs_arbitrary_numbered_jobs_as_one_array(cluster, tmp_path, monkeypatch):
    # What a resume of jobs 3 and 7 asks for: one array of two tasks, each job keeping its number and dir.
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.plugins import Plugins
    from hydra.core.utils import setup_globals
    from hydra.types import HydraContext, RunMode

    from rnnexp.plan import conf_dir

    monkeypatch.setenv("PYTHONPATH", _env()["PYTHONPATH"])  # sbatch passes it on: the job imports _report_job
    name = f"rnnexp-numbered-{uuid.uuid4().hex[:6]}"
    setup_globals()
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        hydra = GlobalHydra.instance().hydra
        master = hydra.compose_config(
            "config", [*_launcher(name), f"hydra.sweep.dir={tmp_path}"], run_mode=RunMode.MULTIRUN
        )
        launcher = Plugins.instance().instantiate_launcher(
            hydra_context=HydraContext(config_loader=hydra.config_loader, callbacks=_NoCallbacks()),
            task_function=_report_job,
            config=master,
        )
        returns = launcher.launch_jobs([(3, ["seed=3"]), (7, ["seed=7"])])
    got = [r.return_value for r in returns]
    assert [(g["num"], g["seed"], g["task"]) for g in got] == [(3, 3, "0"), (7, 7, "1")]
    assert [g["dir"] for g in got] == [str(tmp_path / "3"), str(tmp_path / "7")]
    tasks = _submitted_tasks(tmp_path)
    assert len(tasks) == 2 and len({t.split("_")[0] for t in tasks}) == 1, tasks
