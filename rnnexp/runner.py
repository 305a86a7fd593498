"""One job, start to finish: validate, build weights and inputs, time the forward, check it, make a row.

Plain functions on a typed RunConfig; nothing here knows about Hydra.

Outside its timed calls a job does as little as it can: its peak memory is measured on the last
warm-up call (``measure``'s probe) rather than on an extra call; the float64 reference, its
statistics and side tables come from ``rnnexp.refcache`` (computed once per distinct network, the
gates counted while the reference runs); the GEMM peak is measured once per sweep. A job expected
to run long (``expected_forward_s``) logs its estimate first and its progress while timing.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from rnnexp import backends, dynamics, refcache
from rnnexp.backends import Outputs
from rnnexp.backends.numpy_ref import PARITY_TOL, reference
from rnnexp.backends.training import run_training
from rnnexp.config import ConfigError, Mode, RunConfig, as_flat_dict
from rnnexp.envinfo import CpuMeter, load_avg_1m, row_fields, slurm_job_id
from rnnexp.envinfo import collect as collect_env
from rnnexp.flops import achieved_gflops, forward_flops, training_flops
from rnnexp.linear import is_linear
from rnnexp.linear.tolerance import relative_tol
from rnnexp.logs import FILE_ONLY
from rnnexp.measure import Measurement, Progress, measure, samples_table
from rnnexp.memory import activation_bytes, estimate_job_bytes, param_bytes, peak_forward_bytes, peak_method
from rnnexp.params import expected_c_n_shape, expected_h_n_shape, expected_output_shape, make_inputs, make_params
from rnnexp.peak import gemm_peak, is_loaded, peak_frac
from rnnexp.results import STEPS_FILE
from rnnexp.stats import output_columns
from rnnexp.threads import limited_threads, usable_cores
from rnnexp.validation import validate

log = logging.getLogger(__name__)

SAMPLES_FILE = "samples.csv"  # every timed block, long form (measure.samples_table); joins on job_num
FORWARD_PHASE = "forward"  # samples.csv's phase for an inference job's timed forward
LONG_JOB_S = 10.0  # a job whose timed calls are expected to take longer logs its estimate before timing
PROGRESS_EVERY_S = 10.0  # while timing, progress is logged at most this often
# Rule of thumb for a forward's seconds: FLOPs at PEAK_SHARE of the GEMM peak, plus a fixed cost per
# step of each layer and direction (Python and library calls: the backend's ``step_cost_s``). Good to
# a factor of about 3: large configurations run at 0.3-0.9 of the peak; small ones are dominated by
# the per-step cost.
PEAK_SHARE = 0.5


@functools.lru_cache(maxsize=1)
def environment() -> dict[str, Any]:
    """This process's environment (``envinfo.collect``), read once: rows repeat a few of its fields."""
    return collect_env()


def provenance() -> dict[str, Any]:
    """The versions and host fields every row repeats (the task's rows and the launcher's error rows).

    ``slurm_job_id`` is read afresh: one process may run several SLURM tasks' jobs in turn.
    """
    env = environment()
    versions = {k: env[k] for k in ("python_version", "torch_version", "numpy_version")}
    return versions | row_fields(env) | {"slurm_job_id": slurm_job_id()}


def shape_str(shape) -> str:
    """A shape as Python prints a tuple: ``(1, 10, 16)``; '' for none."""
    return str(tuple(int(s) for s in shape)) if shape is not None else ""


def _pairs(got: Outputs, ref: Outputs):
    pairs = [(got.output, ref.output), (got.h_n, ref.h_n), (got.c_n, ref.c_n)]
    return [(np.asarray(a), b) for a, b in pairs if a is not None and b is not None]


def max_abs_err(got: Outputs, ref: Outputs) -> float:
    return float(max(_abs_diff_max(a, b) for a, b in _pairs(got, ref)))


def _abs_diff_max(a: np.ndarray, b: np.ndarray) -> float:
    """max |a - b| in float64, in one temporary (a large output's copies are what parity costs)."""
    diff = np.subtract(a, b, dtype=np.float64)
    return float(np.max(np.abs(diff, out=diff)))


def parity(cfg: RunConfig, got: Outputs, ref: Outputs) -> dict[str, Any]:
    """max_abs_err_vs_ref and whether it is within the dtype's tolerance (scaled to the values' size)."""
    err = max_abs_err(got, ref)
    scale = max(1.0, *(float(np.max(np.abs(b))) for _, b in _pairs(got, ref)))
    tol = PARITY_TOL[cfg.dtype.value] * scale
    if is_linear(cfg):  # a scan's error grows with the state's memory: rnnexp.linear.tolerance
        tol = relative_tol(cfg, PARITY_TOL[cfg.dtype.value]) * scale
    return {"max_abs_err_vs_ref": err, "parity_tol": tol, "parity_ok": bool(err <= tol)}


@dataclass
class Forward:
    """One backend's timed forward: what ran, how long it took, what it returned, what it allocated."""

    prepared: Any  # backends.Prepared, or backends.training.PreparedTraining in mode=training
    measurement: Measurement  # the forward's, or in training the whole step's
    out: Outputs
    peak_mem_bytes: int


def run_forward(
    cfg: RunConfig, params: dict[str, np.ndarray], x: np.ndarray, peak_gflops: float | None = None
) -> Forward:
    """Time the backend's forward with ``cfg.threads`` threads; one call's peak memory on the last warm-up.

    Tracing allocations slows the call it watches, so it watches a warm-up call, which is discarded
    anyway (an extra untimed call when ``timing.warmup`` is 0). ``peak_gflops`` (CPU) sizes the
    job's time estimate: a job expected to take long says so before timing and how far it is while.
    """
    backend = backends.load(cfg.backend)  # imports the framework before its threads are pinned
    with limited_threads(cfg.threads):
        prepared = backend.prepare(cfg, params, x)
        peaks: list[int] = []

        def probe(call):
            peaks.append(peak_forward_bytes(call, prepared.device, cfg.backend))

        forward_s = expected_forward_s(cfg, peak_gflops) if prepared.device == "cpu" else None
        log_estimate(cfg, forward_s)
        with prepared.context():
            measurement, result = measure(
                prepared.call, cfg.timing, prepared.sync, progress=ProgressLog(job_label(cfg)), probe=probe
            )
    return Forward(prepared, measurement, prepared.fetch(result), peaks[0])


def job_label(cfg: RunConfig) -> str:
    sizes = f"H={cfg.hidden_size} B={cfg.batch_size} T={cfg.timesteps} L={cfg.layers}"
    return f"{cfg.cell.value} {sizes}{' bi' if cfg.bidirectional else ''} on {cfg.backend}"


def expected_forward_s(cfg: RunConfig, peak_gflops: float | None) -> float | None:
    """A forward's seconds by the rule of thumb (``PEAK_SHARE``, the backend's ``step_cost_s``); None without a peak."""
    if not peak_gflops or peak_gflops <= 0:
        return None
    steps = cfg.timesteps * cfg.layers * (2 if cfg.bidirectional else 1)
    per_step = backends.declared(cfg.backend).step_cost_s
    return forward_flops(cfg) / (PEAK_SHARE * peak_gflops * 1e9) + steps * per_step


def expected_timed_s(cfg: RunConfig, forward_s: float) -> float:
    """Seconds of timed calls for a forward of ``forward_s``: cold call, warm-ups, block sizing, blocks."""
    t = cfg.timing
    blocks_s = max(t.min_run_time_s, t.min_blocks * max(forward_s, t.block_min_s))
    return (1 + max(t.warmup, 1)) * forward_s + max(forward_s, t.block_min_s) + blocks_s


def log_estimate(cfg: RunConfig, forward_s: float | None) -> None:
    """Say before timing when the timed calls are expected to take over LONG_JOB_S."""
    if forward_s is None:
        return
    total = expected_timed_s(cfg, forward_s)
    if total >= LONG_JOB_S:
        log.info(
            "%s: expected to run long: a forward ~%.3g s (%.3g FLOPs at ~%.0f%% of the GEMM peak, plus %d steps), "
            "timed calls ~%.0f s; progress every %.0f s",
            job_label(cfg),
            forward_s,
            forward_flops(cfg),
            100 * PEAK_SHARE,
            cfg.timesteps * cfg.layers * (2 if cfg.bidirectional else 1),
            total,
            PROGRESS_EVERY_S,
        )


class ProgressLog:
    """``measure``'s progress hook: one log line at most every ``every_s`` of the measurement's clock."""

    def __init__(self, label: str, every_s: float = PROGRESS_EVERY_S):
        self.label, self.every_s, self.last_s = label, every_s, 0.0

    def __call__(self, p: Progress) -> None:
        if p.elapsed_s - self.last_s < self.every_s:
            return
        self.last_s = p.elapsed_s
        where = {"cold": "cold call done", "warmup": "warming up", "sizing": "block size set"}.get(p.stage)
        if where is None:
            where = f"block {p.blocks_done}/{p.blocks_expected} done ({p.block_size} calls each)"
        log.info("%s: %s, %.0f s elapsed", self.label, where, p.elapsed_s)


def shape_columns(cfg: RunConfig, out: Outputs) -> dict[str, Any]:
    """Shapes as printed tuples, the documented formulas' shapes, and whether they agree."""
    got = {"output_shape": out.output.shape, "h_n_shape": out.h_n.shape, "c_n_shape": getattr(out.c_n, "shape", None)}
    want = {"output_shape": expected_output_shape(cfg), "h_n_shape": expected_h_n_shape(cfg)}
    want["c_n_shape"] = expected_c_n_shape(cfg)
    cols = {k: shape_str(v) for k, v in got.items()} | {f"expected_{k}": shape_str(v) for k, v in want.items()}
    cols["shape_ok"] = all(cols[k] == cols[f"expected_{k}"] for k in got)
    return cols


def cpu_peak(cfg: RunConfig, peak_dir: Path | None) -> dict[str, Any] | None:
    """This machine's GEMM peak record for the job's dtype and threads (cached in ``peak_dir``); None on a GPU."""
    if cfg.device.value == "cuda":
        return None
    return gemm_peak(cfg.dtype.value, cfg.threads, peak_dir)


def work_columns(cfg: RunConfig, fwd: Forward, peak: dict[str, Any] | None) -> dict[str, Any]:
    """FLOPs, achieved GFLOP/s, its share of this machine's GEMM peak (and whether that was loaded), memory."""
    flops = forward_flops(cfg)
    # A training row's time is the whole step: its rate counts the forward and the backward.
    done = training_flops(cfg) if cfg.mode is Mode.training else flops
    achieved = achieved_gflops(done, fwd.measurement.median_s)
    # The yardstick is a CPU GEMM; a GPU row has none here.
    peak = peak if fwd.prepared.device == "cpu" else None
    peak_gflops = float(peak["gflops"]) if peak else None
    return {
        "flops": flops,
        "gflops": achieved,
        "peak_gflops": peak_gflops,
        "peak_frac": peak_frac(achieved, peak_gflops) if peak_gflops else None,
        "peak_loaded": peak.get("loaded") if peak else None,
        "param_bytes": param_bytes(cfg),
        "activation_bytes": activation_bytes(cfg),
        "peak_mem_bytes": fwd.peak_mem_bytes,
        "peak_mem_method": peak_method(fwd.prepared.device, cfg.backend),
    }


def timing_columns(cfg: RunConfig, measurements: dict[str, Measurement]) -> dict[str, Any]:
    """The main measurement's statistics (the forward, or the training step), the wall seconds of every timed
    call of every phase, and CPU per wall second over the main measurement's blocks."""
    main = measurements.get(FORWARD_PHASE) or measurements["step"]
    timed_s = sum(m.timed_s for m in measurements.values())
    return main.columns(cfg.timing.noisy_frac) | {"timed_s": timed_s, "cpu_util": main.cpu_util}


@dataclass
class Timed:
    """The timed part of a job: the forward (inference) or the step and its phases (training)."""

    fwd: Forward
    measurements: dict[str, Measurement]  # by samples.csv phase: forward; or step, fwd, bwd_data, bwd_weights
    columns: dict[str, Any] = field(default_factory=dict)  # training: phase times, gradient parity, bwd_flops


def run_timed(cfg: RunConfig, params: dict[str, np.ndarray], x: np.ndarray, peak_gflops: float | None) -> Timed:
    """Time the job's calls on its backend, in its mode."""
    if cfg.mode is Mode.training:
        label = job_label(cfg)
        train = run_training(cfg, params, x, progress=lambda name: ProgressLog(f"{label} {name}"))
        fwd = Forward(train.prepared, train.measurements["step"], train.out, train.peak_mem_bytes)
        return Timed(fwd, train.measurements, train.columns)
    fwd = run_forward(cfg, params, x, peak_gflops)
    return Timed(fwd, {FORWARD_PHASE: fwd.measurement})


@dataclass
class JobContext:
    """Where a job runs, passed explicitly by whoever launches it (the CLI, a test)."""

    concurrent_jobs: int = 1  # jobs sharing this machine's cores while this one runs
    peak_dir: Path | None = None  # caches this machine's GEMM peak (a sweep's root: measured once)
    cache_dir: Path | None = None  # content-keyed cache shared by a sweep's jobs (e.g. the float64 reference)


@dataclass
class JobResult:
    """A job's row and its long-form side tables by file name (``steps.csv``, ...), without ``job_num``.

    ``phases``: wall seconds per part of the job (``timed``, ``reference``, ...), for profiling; not written.
    """

    row: dict[str, Any]
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    phases: dict[str, float] = field(default_factory=dict)


class _Phases:
    """Wall seconds per named part of a job, in order."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, name: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start


def reference_threads(cfg: RunConfig, ctx: JobContext, meter: CpuMeter, elapsed_s: float) -> int:
    """BLAS threads for the untimed float64 reference: every usable core when this job is alone and the
    machine stayed idle while it ran so far, else the job's own ``threads``.

    On an idle 2-core machine a second thread made the reference 1.3-1.9x faster (gru H=1536: 4.2 s
    -> 2.3 s); with another process busy it made it 2-10x slower (threads waiting for time slices),
    and beside other jobs it would take their cores. Idle: other processes used under
    ``peak.LOADED_OTHER_CPU`` cores on average, the GEMM peak's own rule.
    """
    if ctx.concurrent_jobs > 1 or elapsed_s <= 0 or is_loaded(meter.other_cpu_s(), elapsed_s):
        return cfg.threads
    return max(cfg.threads, usable_cores())


def execute(cfg: RunConfig, ctx: JobContext | None = None) -> JobResult:
    """Run the job's forward on its backend; the measured columns and the side tables."""
    ctx = ctx or JobContext()
    meter, start = CpuMeter(), time.perf_counter()
    phase = _Phases()
    with phase("inputs"):
        params, x = make_params(cfg), make_inputs(cfg)
    with phase("gemm_peak"):
        peak = cpu_peak(cfg, ctx.peak_dir)
    with phase("forward"):
        timed = run_timed(cfg, params, x, peak["gflops"] if peak else None)
        fwd = timed.fwd
    with phase("reference"):
        threads = reference_threads(cfg, ctx, meter, time.perf_counter() - start)
        ref = refcache.reference_result(cfg, params, x, ctx.cache_dir, threads=threads)
    with phase("statistics"):
        row = {
            "device_used": fwd.prepared.device,
            **shape_columns(cfg, fwd.out),
            **timing_columns(cfg, timed.measurements),
            "compile_s": fwd.prepared.compile_s,
            **work_columns(cfg, fwd, peak),
            **output_columns(cfg, fwd.out),
            **ref.stats,
            **parity(cfg, fwd.out, ref.outputs),
            **timed.columns,
            **fwd.prepared.extra,
        }
        if is_linear(cfg):  # memory-bound: bytes moved against this machine's bandwidth (rnnexp.linear.bandwidth)
            from rnnexp.linear import bandwidth

            row |= bandwidth.columns(cfg, fwd.measurement.median_s, fwd.prepared.device, ctx.peak_dir)
        tables = {**ref.tables, SAMPLES_FILE: samples_table(timed.measurements)}
    if cfg.lyapunov_k or cfg.grad_flow:
        with phase("dynamics"), threadpool_limits(limits=cfg.threads):  # small products: more threads only spin
            dyn_row, lyapunov, grads = dynamics.dynamics_columns(cfg, params, x, reference(cfg, params, x))
        row.update(dyn_row)
        if not lyapunov.empty:
            tables[dynamics.LYAPUNOV_FILE] = lyapunov
        if not grads.empty:  # steps.csv's kept timesteps get their grad_log_norm
            tables[STEPS_FILE] = tables[STEPS_FILE].merge(grads, on=["layer", "direction", "timestep"], how="left")
    timed_s = sum(m.timed_s for m in timed.measurements.values())
    phase.seconds["timed"] = timed_s
    phase.seconds["forward_untimed"] = phase.seconds.pop("forward") - timed_s
    parts = ", ".join(f"{k} {v:.3f} s" for k, v in phase.seconds.items())
    log.debug("%s: %s (reference: %s)", job_label(cfg), parts, ref.source)
    return JobResult(row, tables, phase.seconds)


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


MEMORY_HEADROOM = 0.9  # leave a tenth of the available memory to the rest of the machine


def check_cores(cfg: RunConfig, concurrent_jobs: int) -> None:
    """Refuse a job whose threads, times the jobs running beside it, would oversubscribe the cores."""
    cores = usable_cores()
    if cfg.threads * concurrent_jobs > cores:
        allowed = f"threads x {concurrent_jobs} concurrent jobs must not exceed this machine's {cores} cores"
        raise ConfigError("threads", cfg.threads, allowed)


def check_memory(cfg: RunConfig) -> None:
    """Refuse a job whose estimated memory would not fit in what is available now (not be OOM-killed)."""
    import psutil

    need, free = estimate_job_bytes(cfg), psutil.virtual_memory().available
    if need > MEMORY_HEADROOM * free:
        sizes = ", ".join(f"{k}={getattr(cfg, k)}" for k in ("hidden_size", "batch_size", "timesteps", "layers"))
        allowed = f"needs about {need / 2**30:.1f} GiB ({sizes}), only {free / 2**30:.1f} GiB is available"
        raise ConfigError("memory", f"{need / 2**30:.1f}GiB", allowed)


def run_job(cfg: RunConfig, ctx: JobContext | None = None) -> JobResult:
    """The job's row and side tables; a failure is recorded in the row (status=error), never raised.

    Every row, an error row too, says how busy the machine was (``load_avg_1m`` at the start,
    ``other_cpu_s`` during the job), how long the job took (``job_wall_s``) and where it ran.
    """
    ctx = ctx or JobContext()
    start, meter, load = time.perf_counter(), CpuMeter(), load_avg_1m()
    row: dict[str, Any] = as_flat_dict(cfg)
    row["concurrent_jobs"] = ctx.concurrent_jobs
    tables: dict[str, pd.DataFrame] = {}
    phases: dict[str, float] = {}
    try:
        validate(cfg)
        check_cores(cfg, ctx.concurrent_jobs)
        refcache.release_unless(cfg)  # before measuring what memory is free
        check_memory(cfg)
        done = execute(cfg, ctx)
        row.update(done.row)
        tables, phases = done.tables, done.phases
        row.update(status="ok", error="")
    except Exception as exc:  # a failed job is a row, so the sweep and its table survive
        row.update(status="error", error=one_line(exc))
        if not isinstance(exc, ConfigError):  # unexpected: the job's log keeps the whole traceback
            log.error("job failed: %s", one_line(exc), exc_info=True, extra=FILE_ONLY)
    row.update(load_avg_1m=load, other_cpu_s=meter.other_cpu_s(), job_wall_s=time.perf_counter() - start)
    row.update(provenance())
    return JobResult(row, tables, phases)
