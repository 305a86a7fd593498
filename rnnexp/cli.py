"""The command line: the only module that touches Hydra.

``python -m rnnexp [overrides]`` runs one job; ``-m`` runs a sweep. Each job's config is
turned into a typed RunConfig once, run by plain functions, and its row written to the job's
dir; a callback gathers a sweep's rows into one table and sets the exit code.
"""

from __future__ import annotations

import importlib
import os
import shlex
import sys
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import hydra
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from rnnexp import preflight, results, summary
from rnnexp.config import ConfigError, RunConfig
from rnnexp.runner import JobContext, run_job, usable_cores

_PKG = Path(__file__).resolve().parent

# `rnnexp report ...` and `rnnexp compare ...` are plain argparse programs; they never compose configs.
SUBCOMMANDS = {"report": "rnnexp.report", "compare": "rnnexp.compare"}
RESUME_ENV = "RNNEXP_RESUME"  # set by `rnnexp resume`: jobs whose ok row exists are kept, not re-run


def conf_dir() -> Path:
    """The configs: shipped inside the package when installed, the repo's conf/ in a checkout."""
    installed = _PKG / "conf"
    return installed if installed.is_dir() else _PKG.parent / "conf"


def _register() -> None:
    ConfigStore.instance().store(name="rnnexp_schema", node=RunConfig)
    if not OmegaConf.has_resolver("rnnexp_uid"):
        # A per-process token in dir names, so two sweeps started in the same second never share one.
        OmegaConf.register_new_resolver("rnnexp_uid", lambda: uuid.uuid4().hex[:6], use_cache=True)


_register()


def rerun_command(overrides: list[str]) -> str:
    return " ".join(["python -m rnnexp", *(shlex.quote(o) for o in overrides)])


def _progress(row: dict[str, Any], num: int) -> str:
    total = int(os.environ.get("RNNEXP_SWEEP_TOTAL", "0"))
    start = float(os.environ.get("RNNEXP_SWEEP_START", "0"))
    if not total or not start:
        return ""
    done, elapsed = num + 1, time.time() - start
    eta = elapsed / done * (total - done)
    return f"[{done}/{total}] elapsed {elapsed:.1f}s, ETA {eta:.1f}s: "


@hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name="config")
def _task(dcfg: DictConfig) -> dict[str, Any]:
    hc = HydraConfig.get()
    num = hc.job.get("num", 0) or 0
    out_dir = Path(hc.runtime.output_dir)
    if os.environ.get(RESUME_ENV):
        done = results.ok_row(out_dir)
        if done is not None:
            print(f"{_progress(done, num)}kept the finished row in {out_dir}", flush=True)
            return done
    cfg: RunConfig = OmegaConf.to_object(dcfg)
    # A sweep measures the machine's GEMM peak once, in its root dir; a single run in its own.
    peak_dir = Path(hc.sweep.dir) if hc.mode == RunMode.MULTIRUN else out_dir
    done = run_job(cfg, JobContext(concurrent_jobs=concurrent_jobs(hc.launcher), peak_dir=peak_dir))
    row = done.row
    row["job_num"] = num
    overrides = list(hc.overrides.task)
    row["overrides"] = " ".join(overrides)
    row["command"] = rerun_command(overrides)
    for name, table in done.tables.items():
        table.insert(0, "job_num", num)
        results.write_csv_atomic(table, out_dir / name)
    results.write_row(row, out_dir)  # last: a row on disk means the job's files are complete
    print(_progress(row, num) + summary.one_line(row), flush=True)
    return row


class ResultsCallback(Callback):
    """Prints the summary and sets the exit code; in a sweep, gathers every job's row first."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from rnnexp.sweep import count_jobs

        if "rnnexp_launcher" not in str(config.hydra.sweeper.get("_target_", "")):
            os.environ["RNNEXP_SWEEP_TOTAL"] = str(count_jobs(config))  # the rnnexp sweeper sets it itself
        os.environ["RNNEXP_SWEEP_START"] = str(time.time())

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        os.environ["RNNEXP_SWEEP_START"] = str(time.time())

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        table = results.collect(sweep_dir)
        steps = results.collect(sweep_dir, results.STEPS_FILE)
        if not steps.empty:
            results.write_csv_atomic(steps, sweep_dir / results.STEPS_FILE)
        path = results.write_csv_atomic(table, sweep_dir / results.ROW_FILE)
        _write_env(sweep_dir)
        _finish(table, path)

    def on_run_end(self, config: DictConfig, **kwargs: Any) -> None:
        job_return = kwargs.get("job_return")
        out_dir = Path(job_return.hydra_cfg.hydra.runtime.output_dir)
        path = out_dir / results.ROW_FILE
        if path.exists():  # absent only when the task itself crashed; Hydra reports that
            _write_env(out_dir)
            _finish(results.read_table(path), path)


def _write_env(out_dir: Path) -> None:
    """env.json: versions, libraries, CPU, cores, host, git state, and the GEMM peaks measured here."""
    from rnnexp import envinfo, peak
    from rnnexp.runner import environment

    start = datetime.fromtimestamp(float(os.environ.get("RNNEXP_SWEEP_START", time.time())), timezone.utc)
    extra = {"start_time_utc": start.isoformat(timespec="seconds"), "gemm_peaks": peak.cached_peaks(out_dir)}
    envinfo.write_env(out_dir / "env.json", extra, env=environment())


def _finish(table, path: Path) -> None:
    print(summary.table(table), flush=True)
    print(f"results: {path}", flush=True)
    failed = summary.count_failed(table)
    if failed:
        print(
            f"{failed} of {len(table)} jobs failed (an error, or parity/shape disagreeing)", file=sys.stderr, flush=True
        )
        sys.exit(1)


def resume_argv(sweep_dir: Path, extra: list[str]) -> list[str]:
    """The command line that re-runs the sweep saved in ``sweep_dir``/multirun.yaml into the same dir."""
    saved = sweep_dir / "multirun.yaml"
    if not saved.is_file():
        raise ConfigError("resume", sweep_dir, "not a sweep dir (it has no multirun.yaml)")
    hydra_cfg = OmegaConf.load(saved).hydra
    keep = [o for o in hydra_cfg.overrides.hydra if not o.startswith(("hydra.mode=", "hydra.sweep.dir="))]
    return ["-m", *hydra_cfg.overrides.task, *keep, f"hydra.sweep.dir={sweep_dir}", *extra]


def concurrent_jobs(launcher: DictConfig) -> int:
    """How many jobs of this sweep share this machine's cores at once.

    Hydra's basic launcher runs one at a time; joblib runs ``n_jobs``; submitit's local launcher
    runs every job of the sweep at once; on SLURM each job owns the CPUs it was allocated, so 1.
    """
    target = str(launcher.get("_target_", ""))
    total = int(os.environ.get("RNNEXP_SWEEP_TOTAL", "1"))
    if "joblib" in target:
        n = int(launcher.get("n_jobs", -1))
        n = usable_cores() + 1 + n if n < 0 else n  # joblib: -1 = every core, -2 = all but one, ...
        return min(total, max(n, 1))
    if target.endswith("submitit_launcher.LocalLauncher"):
        return total
    return 1


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in SUBCOMMANDS:
        sys.exit(importlib.import_module(SUBCOMMANDS[argv[0]]).main(argv[1:]))
    if argv and argv[0] == "resume":
        if len(argv) < 2:
            print("rnnexp: error: usage: rnnexp resume SWEEP_DIR [overrides]", file=sys.stderr)
            sys.exit(2)
        try:
            argv = resume_argv(Path(argv[1]).resolve(), argv[2:])
        except ConfigError as exc:
            print(f"rnnexp: error: {exc}", file=sys.stderr)
            sys.exit(2)
        os.environ[RESUME_ENV] = "1"
    try:
        preflight.check_argv(argv)
    except ConfigError as exc:
        print(f"rnnexp: error: {exc}", file=sys.stderr)
        sys.exit(2)
    if "--dry-run" in argv:
        sys.exit(_dry_run([a for a in argv if a != "--dry-run"]))
    sys.argv = [sys.argv[0], *argv]
    _task()


def _dry_run(argv: list[str]) -> int:
    """Print the jobs a command would run, one re-runnable line each, and their count."""
    from rnnexp.sweep import planned_jobs

    multirun = "-m" in argv or "--multirun" in argv
    jobs = planned_jobs(argv, str(conf_dir())) if multirun else [[a for a in argv if not a.startswith("-")]]
    for num, job in enumerate(jobs):
        print(f"#{num}: {rerun_command(job)}")
    print(f"{len(jobs)} job{'s' if len(jobs) != 1 else ''} (dry run: nothing was run)")
    return 0


if __name__ == "__main__":
    main()
