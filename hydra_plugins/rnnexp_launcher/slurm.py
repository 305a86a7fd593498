"""SLURM launcher: hydra-submitit-launcher's ``SlurmLauncher``, waiting with a bound and keeping lost jobs as data.

Selected by ``hydra/launcher=slurm`` (conf/hydra/launcher/slurm.yaml). Each launch is one SLURM
array. The wait polls the queue itself (``squeue``, then ``sacct`` for what squeue no longer
lists) instead of submitit's ``job.results()``, which raises for a job that ended without a result
and, without accounting, never returns for one. A job that leaves the queue without a result
(SLURM state CANCELLED, TIMEOUT, OUT_OF_MEMORY, NODE_FAIL, ...), or that the scheduler stops
reporting, is handed to ``lost_recorder`` (rnnexp.manifest.record_lost) once ``lost_after_s`` has
passed since the scheduler last reported it queued or running; the other jobs' results come back as
usual. Nothing here waits without a bound: ``max_wait_min`` caps the whole array's wait, after which
its unfinished jobs are cancelled and recorded. Interrupting the driver (Ctrl-C, SIGTERM) cancels
the jobs still queued or running.

Without the ``launchers`` extra (no hydra-submitit-launcher) this module defines nothing, so
Hydra's plugin scan, which imports every module under ``hydra_plugins``, still succeeds.
"""

import logging
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, filter_overrides

from hydra_plugins.rnnexp_launcher import submitit_compat

log = logging.getLogger(__name__)

# The scheduler still has the job (queued, starting, running, requeued, suspended, finishing).
ACTIVE = frozenset(
    {"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD", "RESIZING",
     "SUSPENDED", "SIGNALING", "STAGE_OUT", "STOPPED", "RESV_DEL_HOLD"}
)  # fmt: skip
UNKNOWN = "UNKNOWN"  # the state recorded for a job the scheduler never reported
QUERY_TIMEOUT_S = 30  # one squeue/sacct/scancel call; a hung one counts as no answer


@dataclass
class WaitBound:
    """How long the driver waits on the scheduler (the launcher config's keys of the same names)."""

    poll_s: float = 2.0
    lost_after_s: float = 30.0
    no_answer_s: float = 600.0
    max_wait_min: float = 1440.0


@dataclass
class Tracked:
    """One submitted job as the wait sees it."""

    num: int  # rnnexp's job number
    slurm_id: str  # "123_4" for an array task, "123" for a lone job
    has_result: Callable[[], bool]  # whether its submitit result pickle says "success"
    state: str = ""  # the last state the scheduler reported ("" = never)
    alive_at: float = 0.0  # when the scheduler last reported it queued or running (submission at first)


@dataclass
class Outcome:
    """The wait's verdict: job numbers that finished with a result, and lost ones with (state, detail)."""

    finished: list[int] = field(default_factory=list)
    lost: dict[int, tuple[str, str]] = field(default_factory=dict)


def wait(
    jobs: Sequence[Tracked],
    query: Callable[[list[str]], dict[str, str] | None],
    bound: WaitBound,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Outcome:
    """Wait until every job has a result or is lost, within ``bound``. ``query`` maps SLURM ids to the states
    the scheduler reports (a job it does not list is left out), or returns None when nothing answered."""
    out = Outcome()
    start = answered_at = clock()
    for job in jobs:
        job.alive_at = start
    pending = {job.num: job for job in jobs}

    def lose(job: Tracked, detail: str) -> None:
        out.lost[job.num] = (job.state or UNKNOWN, detail)
        del pending[job.num]

    while pending:
        for job in [j for j in pending.values() if j.has_result()]:
            out.finished.append(pending.pop(job.num).num)
        if not pending:
            break
        states = query([job.slurm_id for job in pending.values()])
        now = clock()
        if states is not None:
            answered_at = now
        for job in list(pending.values()):
            state = (states or {}).get(job.slurm_id)
            if state:
                job.state = state
            if state in ACTIVE:
                job.alive_at = now
            elif job.has_result():
                continue  # it finished since the look at the results above
            elif states is None and now - answered_at >= bound.no_answer_s:
                lose(job, f"no answer from squeue or sacct for {bound.no_answer_s:g} s")
            elif states is not None and now - job.alive_at >= bound.lost_after_s:
                lose(job, _lost_detail(job, state, bound))
        if pending and now - start >= bound.max_wait_min * 60:
            for job in list(pending.values()):
                lose(job, f"still {job.state or 'unreported'} after max_wait_min={bound.max_wait_min:g}; cancelled")
        if pending:
            sleep(bound.poll_s)
    return out


def _lost_detail(job: Tracked, state: str | None, bound: WaitBound) -> str:
    if state:
        return f"ended {state} without a result"
    if job.state:
        return f"last reported {job.state}, then no longer listed by squeue or sacct for {bound.lost_after_s:g} s"
    return f"never listed by squeue or sacct in {bound.lost_after_s:g} s"


def _run(cmd: list[str]) -> str | None:
    """A scheduler command's stdout, or None when it is missing, fails or hangs (logged once per call)."""
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=QUERY_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.debug("%s: %s", cmd[0], exc)
        return None
    if proc.returncode != 0:
        log.debug("%s exited %d: %s", cmd[0], proc.returncode, proc.stderr.strip())
        return None
    return proc.stdout


def query_states(slurm_ids: list[str]) -> dict[str, str] | None:
    """The states SLURM reports for these jobs: squeue (the live queue), then sacct for the ones squeue
    no longer lists. Either may be missing or down; what neither lists is left out; None if neither answered."""
    arrays = sorted({sid.split("_")[0] for sid in slurm_ids})
    squeue = _run(["squeue", "-h", "-r", "-t", "all", "-j", ",".join(arrays), "-o", "%i|%T"])
    states = submitit_compat.parse_states(squeue) if squeue is not None else {}
    if all(sid in states for sid in slurm_ids):
        return states
    sacct = _run(["sacct", "-n", "-P", "-X", "-j", ",".join(arrays), "-o", "JobID,State"])
    if sacct is not None:
        states = {**submitit_compat.parse_states(sacct), **states}
    return None if squeue is None and sacct is None else states


def cancel(slurm_ids: Iterable[str]) -> None:
    ids = list(slurm_ids)
    if ids and _run(["scancel", *ids]) is None:
        log.warning("scancel %s failed; those jobs may still be queued or running", " ".join(ids))


class _Terminated(BaseException):
    """SIGTERM while waiting, when nothing else handles it (BaseException: no job code swallows it)."""


def _raise_terminated(signum: int, frame: Any) -> None:
    raise _Terminated()


def _sigterm_guard() -> Callable[[], None]:
    """Make SIGTERM raise while waiting if it would otherwise kill the driver outright; returns the undo."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
        return lambda: None  # the CLI's own handler (or a caller's) turns SIGTERM into an exception already
    signal.signal(signal.SIGTERM, _raise_terminated)
    return lambda: signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _result(job: Any) -> tuple[str, Any] | None:
    """A submitit job's (outcome, value) from its result pickle, or None while there is none."""
    return submitit_compat.read_result(job.paths.result_pickle)


def _outcome(job: Any) -> str:
    """The result's outcome: "success" (its value is the task's JobReturn), "error" (a traceback), "" (none yet)."""
    result = _result(job)
    return result[0] if result else ""


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def _last_line(text: str, limit: int = 200) -> str:
    """The last non-blank line of a log or traceback, cut to ``limit`` characters."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1][:limit] if lines else ""


def _telling_line(stderr: str, limit: int = 200) -> str:
    """The line of a lost job's stderr that says why: slurmstepd's last word ("Exceeded job memory limit",
    "CANCELLED AT ... DUE TO TIME LIMIT"), else the job's own last line (not srun's "task 0: Killed")."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    for prefer in (lambda ln: ln.startswith("slurmstepd"), lambda ln: not ln.startswith("srun:"), bool):
        chosen = [ln for ln in lines if prefer(ln)]
        if chosen:
            return chosen[-1][:limit]
    return ""


def _locate(dotted: str) -> Callable[..., Any]:
    from hydra.utils import get_method

    return get_method(dotted)


try:
    from hydra.core.config_store import ConfigStore
    from hydra_plugins.hydra_submitit_launcher.config import SlurmQueueConf
    from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher
except ImportError:  # the `launchers` extra is not installed: no SLURM launcher, nothing else affected
    SlurmLauncher = None

if SlurmLauncher is not None:

    @dataclass
    class RnnexpSlurmConf(SlurmQueueConf):
        """hydra-submitit-launcher's SLURM options, plus the bound on waiting for the scheduler."""

        _target_: str = "hydra_plugins.rnnexp_launcher.slurm.RnnexpSlurmLauncher"
        # seconds between looks at the queue (one squeue call, plus one sacct call when squeue lost a job)
        poll_s: float = 2.0
        # a job that has left the queue without a result (or that neither squeue nor sacct reports) is
        # lost this many seconds after the scheduler last reported it queued or running
        lost_after_s: float = 30.0
        # when neither squeue nor sacct answers (controller down, no accounting and purged) for this long,
        # the jobs still waited for are lost
        no_answer_s: float = 600.0
        # the longest one array is waited for, minutes; then its unfinished jobs are cancelled and lost
        max_wait_min: float = 1440.0
        # called as f(sweep_dir, job_num, state, detail) for each lost job
        lost_recorder: str = "rnnexp.manifest.record_lost"
        # SLURM's early warning signal before the time limit; 0 = none (rnnexp jobs cannot checkpoint)
        signal_delay_s: int = 0

    class RnnexpSlurmLauncher(SlurmLauncher):
        """``SlurmLauncher`` (same options, same task run in each job) with one array per launch, a bounded
        wait, and lost jobs recorded through ``lost_recorder`` instead of raising."""

        OWN_KEYS = ("poll_s", "lost_after_s", "no_answer_s", "max_wait_min", "lost_recorder")

        def __init__(self, **params: Any) -> None:
            own = {k: params.pop(k) for k in self.OWN_KEYS if k in params}
            self.bound = WaitBound(**{k: float(v) for k, v in own.items() if k != "lost_recorder"})
            self.lost_recorder = str(own.get("lost_recorder", RnnexpSlurmConf.lost_recorder))
            super().__init__(**params)

        def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
            return self.launch_jobs(list(enumerate(job_overrides, start=initial_job_idx)))

        def launch_jobs(self, jobs: Sequence[tuple[int, Sequence[str]]]) -> Sequence[JobReturn]:
            """Run these numbered jobs as one SLURM array. Returns the JobReturns of the jobs that came back
            with a result, in job order; each lost job is recorded through ``lost_recorder`` instead."""
            assert self.config is not None and jobs
            sweep_dir = Path(str(self.config.hydra.sweep.dir))
            submitted = self._submit(sweep_dir, jobs)
            if submitted is None:
                return []
            tracked = [Tracked(num, job.job_id, lambda job=job: _outcome(job) == "success") for num, job in submitted]
            undo = _sigterm_guard()
            try:
                verdict = wait(tracked, query_states, self.bound)
            except BaseException as exc:  # Ctrl-C, SIGTERM, or the CLI stopping the sweep: leave nothing queued
                unfinished = [t.slurm_id for t in tracked if not t.has_result()]
                log.warning("interrupted: cancelling SLURM job(s) %s", " ".join(unfinished))
                cancel(unfinished)
                if isinstance(exc, _Terminated):
                    raise SystemExit(128 + signal.SIGTERM) from None
                raise
            finally:
                undo()
            cancel(t.slurm_id for t in tracked if t.num in verdict.lost and verdict.lost[t.num][0] in ACTIVE)
            returns = []
            for num, job in submitted:
                if num not in verdict.lost:
                    returns.append(_result(job)[1])
                    continue
                state, detail = verdict.lost[num]
                if _outcome(job) == "error":  # submitit's wrapper raised in the job (not the task: it keeps rows)
                    detail += f"; {_last_line(_result(job)[1])}"
                elif _telling_line(_read(job.paths.stderr)):
                    detail += f"; stderr: {_telling_line(_read(job.paths.stderr))}"
                self._lost(sweep_dir, num, state, f"slurm job {job.job_id}: {detail}")
            return returns

        def _submit(self, sweep_dir: Path, jobs: Sequence[tuple[int, Sequence[str]]]) -> list[tuple[int, Any]] | None:
            """Submit the jobs as one array: (job number, submitit job) each, or None if sbatch refused it."""
            from submitit.core.utils import FailedJobError

            sweep_dir.mkdir(parents=True, exist_ok=True)
            if "mode" in self.config.hydra.sweep:
                sweep_dir.chmod(int(str(self.config.hydra.sweep.mode), 8))
            log.info(f"Submitit 'slurm' sweep output dir : {sweep_dir}")
            for num, overrides in jobs:
                log.info(f"\t#{num} : {' '.join(filter_overrides(overrides))}")
            # The launcher is the callable: BaseSubmititLauncher.__call__ composes and runs the job on its node.
            calls = [submitit_compat.call_arguments(num, o) for num, o in jobs]
            try:
                executor = submitit_compat.make_executor(self.params)
                submitted = executor.map_array(self, *zip(*calls, strict=True))
            except FailedJobError as exc:  # sbatch refused the array (e.g. mem_gb above the node's memory)
                reason = next((ln for ln in str(exc).splitlines() if "error" in ln.lower()), str(exc))
                for num, _ in jobs:
                    self._lost(sweep_dir, num, "NOT_SUBMITTED", reason.strip())
                return None
            log.info(f"Submitted SLURM job {submitted[0].job_id.split('_')[0]}: {len(submitted)} task(s)")
            return [(num, job) for (num, _), job in zip(jobs, submitted, strict=True)]

        def _lost(self, sweep_dir: Path, num: int, state: str, detail: str) -> None:
            log.warning("job #%d lost on the cluster: %s (%s)", num, state, detail)
            _locate(self.lost_recorder)(sweep_dir, num, state, detail)

    ConfigStore.instance().store(
        group="hydra/launcher", name="rnnexp_slurm", node=RnnexpSlurmConf, provider="rnnexp_launcher"
    )
