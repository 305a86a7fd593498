"""One job as Hydra runs it: typed config in, row and side tables written to the job's dir, a line logged.

``run_task(session, cfg)`` is the task function Hydra calls for every job (in this process, or in
a joblib worker or a SLURM job: the session is plain data). It keeps a finished ok row that is
already this job's (a resume under a launcher that re-runs everything), runs the job through
``rnnexp.runner.run_job``, writes the side tables and then the row (atomically), writes the job's
``.hydra/config.yaml`` and ``overrides.yaml``, and logs one line. Warnings raised inside the job and
the traceback of an unexpected exception go to the job's log file only; a failure to write the
job's files ends the sweep (``session.Fatal``), since no later job could write either.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from rnnexp import logs, manifest, results, schema
from rnnexp.config import RunConfig, as_flat_dict
from rnnexp.fileio import write_text_atomic

if TYPE_CHECKING:
    from rnnexp.session import Session

log = logging.getLogger("rnnexp.job")


def run_task(session: Session, dcfg: DictConfig) -> None:
    """Hydra's task function for every rnnexp job (see the module docstring).

    The job's own failures are its row (``runner.run_job``); anything failing around it here is a bug
    of rnnexp's: one line on the terminal, its traceback in the job's log, and it is raised so that
    Hydra records the job as failed (it has no row, and the sweep ends saying so).
    """
    try:
        _run_task(session, dcfg)
    except Exception as exc:
        log.error("job failed outside its own run", exc_info=True, extra=logs.FILE_ONLY)
        overrides, where = _which()
        text = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
        log.error("job %s failed outside its own run: %s (traceback in %s)", overrides, text, where)
        raise


def _which() -> tuple[str, str]:
    """The failed job's overrides and log file, for a message about another failure."""
    try:
        hc = HydraConfig.get()  # the log file is the one conf/hydra/job_logging/rnnexp.yaml names
        return " ".join(hc.overrides.task) or "(no overrides)", str(Path(hc.runtime.output_dir) / f"{hc.job.name}.log")
    except Exception:  # noqa: BLE001 - only a hint
        return "?", "the job's log"


def _run_task(session: Session, dcfg: DictConfig) -> None:
    from rnnexp.runner import JobContext

    hc = HydraConfig.get()
    num = int(hc.job.get("num", 0) or 0) if session.multirun else 0
    job_dir = Path(hc.runtime.output_dir)
    overrides = [str(o) for o in hc.overrides.task]
    cfg: RunConfig = OmegaConf.to_object(dcfg)
    if _kept(job_dir, num, cfg, session):
        return
    # Only a reference another job needs goes to disk; adjacent jobs share one in memory anyway.
    cache_dir = session.cache_dir if num in session.shared else None
    ctx = JobContext(concurrent_jobs=session.concurrent_jobs, peak_dir=session.root, cache_dir=cache_dir)
    row = run_into(job_dir, dcfg, num, overrides, ctx, typed=cfg)
    session.ran += 1
    log.info("%s%s", _progress(session, num), _one_line(row))


def run_into(
    job_dir: Path, dcfg: DictConfig, num: int, overrides: list[str], ctx, typed: RunConfig | None = None
) -> dict[str, Any]:
    """Run one composed job and write its row, side tables and ``.hydra/`` files into ``job_dir``; its row.

    The one way a job becomes files: Hydra's task (``run_task``) and the Python API (``rnnexp.run``).
    ``typed``: ``dcfg`` as a RunConfig when the caller has it already (``OmegaConf.to_object``, ~1 ms).
    """
    from rnnexp.runner import run_job
    from rnnexp.session import Fatal

    cfg: RunConfig = typed if typed is not None else OmegaConf.to_object(dcfg)
    with logs.captured_warnings() as caught:
        result = run_job(cfg, ctx)
    row: dict[str, Any] = result.row
    row.update(job_num=num, overrides=" ".join(overrides), command=results.rerun_command(overrides))
    row = schema.conform(row)  # every declared column, in order, in every row
    try:
        _save_config(job_dir, dcfg, overrides)
        results.write_job(row, result.tables, job_dir, num)
    except OSError as exc:
        raise Fatal(f"cannot write job #{num}'s files in {job_dir}: {exc.strerror or exc}") from exc
    logs.log_warnings(log, caught)
    return row


def _kept(job_dir: Path, num: int, cfg: RunConfig, session: Session) -> bool:
    """Keep the job's finished ok row when there is one of its own (config and number match)."""
    row = results.ok_row(job_dir)
    if row is None or not manifest.belongs(row, manifest.Job(num, [], as_flat_dict(cfg), ".")):
        return False
    log.info("%skept the finished row in %s", _progress(session, num), job_dir)
    return True


def _save_config(job_dir: Path, dcfg: DictConfig, overrides: list[str]) -> None:
    """The job's config and overrides, as Hydra would keep them in .hydra/, but written atomically (not
    fsync'd, as the job's other files: ``rnnexp.results``)."""
    write_text_atomic(job_dir / ".hydra" / "config.yaml", OmegaConf.to_yaml(dcfg), durable=False)
    overrides_yaml = OmegaConf.to_yaml(OmegaConf.create(overrides))
    write_text_atomic(job_dir / ".hydra" / "overrides.yaml", overrides_yaml, durable=False)


def _progress(session: Session, num: int) -> str:
    if not session.multirun:
        return ""
    elapsed = time.time() - session.started
    remaining = max(0, session.total - num - 1)
    # Only the driver sees every job it ran; a worker process's copy of the session does not.
    in_driver = os.getpid() == session.driver_pid and session.ran
    eta = f", ETA {elapsed / session.ran * remaining:.1f}s" if in_driver else ""
    return f"[{num + 1}/{session.total}] elapsed {elapsed:.1f}s{eta}: "


def _one_line(row: dict[str, Any]) -> str:
    from rnnexp.review import summary

    return summary.one_line(row)
