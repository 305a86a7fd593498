"""One job, start to finish: validate, build weights and inputs, time the forward, check it, make a row.

Plain functions on a typed RunConfig; nothing here knows about Hydra.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from rnnexp import backends
from rnnexp.backends import Outputs
from rnnexp.backends.numpy_ref import reference
from rnnexp.config import ConfigError, Mode, RunConfig, as_flat_dict, validate
from rnnexp.envinfo import collect as collect_env
from rnnexp.envinfo import row_fields
from rnnexp.flops import achieved_gflops, forward_flops
from rnnexp.measure import Measurement, measure
from rnnexp.memory import (
    activation_bytes,
    estimate_job_bytes,
    framework_of,
    param_bytes,
    peak_forward_bytes,
    peak_method,
)
from rnnexp.params import expected_c_n_shape, expected_h_n_shape, expected_output_shape, make_inputs, make_params
from rnnexp.peak import gemm_peak_gflops, peak_frac
from rnnexp.results import STEPS_FILE
from rnnexp.stats import state_stats, step_table


@functools.lru_cache(maxsize=1)
def environment() -> dict[str, Any]:
    """This process's environment (``envinfo.collect``), read once: rows repeat a few of its fields."""
    return collect_env()


def provenance() -> dict[str, Any]:
    """The versions and host fields every row repeats (the task's rows and the launcher's error rows)."""
    env = environment()
    return {k: env[k] for k in ("python_version", "torch_version", "numpy_version")} | row_fields(env)


@contextlib.contextmanager
def limited_threads(n: int):
    """Pin BLAS/OpenMP pools (threadpoolctl) and torch's intra-op pool to ``n`` threads."""
    torch = sys.modules.get("torch")
    before = torch.get_num_threads() if torch else None
    with threadpool_limits(limits=n):
        if torch:
            torch.set_num_threads(n)
        try:
            yield
        finally:
            if torch:
                torch.set_num_threads(before)


def shape_str(shape) -> str:
    """A shape as Python prints a tuple: ``(1, 10, 16)``; '' for none."""
    return str(tuple(int(s) for s in shape)) if shape is not None else ""


# Parity tolerance per dtype, relative to max(1, largest |value| in the reference): float64 keeps
# ~1e5 ulps of headroom for error accumulated over layers and timesteps; float32's 1e-5 is ~80 ulps
# at 1.0 and 10x the worst error seen over rnn/lstm/gru at H=256-1024, T=100-200 (about 1e-6).
PARITY_TOL = {"float32": 1e-5, "float64": 1e-10}


def _pairs(got: Outputs, ref: Outputs):
    pairs = [(got.output, ref.output), (got.h_n, ref.h_n), (got.c_n, ref.c_n)]
    return [(np.asarray(a, np.float64), b) for a, b in pairs if a is not None and b is not None]


def max_abs_err(got: Outputs, ref: Outputs) -> float:
    return float(max(np.max(np.abs(a - b)) for a, b in _pairs(got, ref)))


def parity(cfg: RunConfig, got: Outputs, ref: Outputs) -> dict[str, Any]:
    """max_abs_err_vs_ref and whether it is within the dtype's tolerance (scaled to the values' size)."""
    err = max_abs_err(got, ref)
    scale = max(1.0, *(float(np.max(np.abs(b))) for _, b in _pairs(got, ref)))
    tol = PARITY_TOL[cfg.dtype.value] * scale
    return {"max_abs_err_vs_ref": err, "parity_tol": tol, "parity_ok": bool(err <= tol)}


@dataclass
class Forward:
    """One backend's timed forward: what ran, how long it took, what it returned, what it allocated."""

    prepared: backends.Prepared
    measurement: Measurement
    out: Outputs
    peak_mem_bytes: int


def run_forward(cfg: RunConfig, params: dict[str, np.ndarray], x: np.ndarray) -> Forward:
    """Time the backend's forward with ``cfg.threads`` threads, then measure one call's peak memory."""
    backend = backends.load(cfg.backend)  # imports the framework before its threads are pinned
    with limited_threads(cfg.threads):
        prepared = backend.prepare(cfg, params, x)
        with prepared.context():
            measurement, result = measure(prepared.call, cfg.timing, prepared.sync)
            # After timing, never inside it: tracing allocations slows the call it watches.
            peak = peak_forward_bytes(prepared.call, prepared.device, framework_of(cfg.backend))
    return Forward(prepared, measurement, prepared.fetch(result), peak)


def shape_columns(cfg: RunConfig, out: Outputs) -> dict[str, Any]:
    """Shapes as printed tuples, the documented formulas' shapes, and whether they agree."""
    got = {"output_shape": out.output.shape, "h_n_shape": out.h_n.shape, "c_n_shape": getattr(out.c_n, "shape", None)}
    want = {"output_shape": expected_output_shape(cfg), "h_n_shape": expected_h_n_shape(cfg)}
    want["c_n_shape"] = expected_c_n_shape(cfg)
    cols = {k: shape_str(v) for k, v in got.items()} | {f"expected_{k}": shape_str(v) for k, v in want.items()}
    cols["shape_ok"] = all(cols[k] == cols[f"expected_{k}"] for k in got)
    return cols


def work_columns(cfg: RunConfig, fwd: Forward, peak_dir: Path | None) -> dict[str, Any]:
    """FLOPs, achieved GFLOP/s, its share of this machine's GEMM peak, and memory figures."""
    flops = forward_flops(cfg)
    achieved = achieved_gflops(flops, fwd.measurement.median_s)
    # The yardstick is a CPU GEMM; a GPU row has none here.
    peak = gemm_peak_gflops(cfg.dtype.value, cfg.threads, peak_dir) if fwd.prepared.device == "cpu" else None
    return {
        "flops": flops,
        "gflops": achieved,
        "peak_gflops": peak,
        "peak_frac": peak_frac(achieved, peak) if peak else None,
        "param_bytes": param_bytes(cfg),
        "activation_bytes": activation_bytes(cfg),
        "peak_mem_bytes": fwd.peak_mem_bytes,
        "peak_mem_method": peak_method(fwd.prepared.device, framework_of(cfg.backend)),
    }


@dataclass
class JobContext:
    """Where a job runs, passed explicitly by whoever launches it (the CLI, a test)."""

    concurrent_jobs: int = 1  # jobs sharing this machine's cores while this one runs
    peak_dir: Path | None = None  # caches this machine's GEMM peak (a sweep's root: measured once)
    cache_dir: Path | None = None  # content-keyed cache shared by a sweep's jobs (e.g. the float64 reference)


@dataclass
class JobResult:
    """A job's row and its long-form side tables by file name (``steps.csv``, ...), without ``job_num``."""

    row: dict[str, Any]
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)


def execute(cfg: RunConfig, ctx: JobContext | None = None) -> JobResult:
    """Run the job's forward on its backend; the measured columns and the side tables."""
    ctx = ctx or JobContext()
    params, x = make_params(cfg), make_inputs(cfg)
    fwd = run_forward(cfg, params, x)
    ref = reference(cfg, params, x)
    row = {
        "device_used": fwd.prepared.device,
        **shape_columns(cfg, fwd.out),
        **fwd.measurement.columns(cfg.timing.noisy_frac),
        "compile_s": fwd.prepared.compile_s,
        **work_columns(cfg, fwd, ctx.peak_dir),
        **state_stats(cfg, fwd.out, ref, params, x),
        **parity(cfg, fwd.out, ref),
        **fwd.prepared.extra,
    }
    return JobResult(row, {STEPS_FILE: step_table(cfg, ref)})


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


MEMORY_HEADROOM = 0.9  # leave a tenth of the available memory to the rest of the machine


def usable_cores() -> int:
    """Cores this process may run on (its affinity), which can be fewer than the machine has."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


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


def check_implemented(cfg: RunConfig) -> None:
    """Keys whose work is not built yet refuse a job with one line rather than being ignored."""
    if cfg.mode is not Mode.inference:
        raise ConfigError("mode", cfg.mode.value, "only inference is available in this build")
    if cfg.lyapunov_k:
        raise ConfigError("lyapunov_k", cfg.lyapunov_k, "Lyapunov exponents are not available in this build (use 0)")
    if cfg.grad_flow:
        raise ConfigError("grad_flow", cfg.grad_flow, "gradient flow is not available in this build (use false)")


def run_job(cfg: RunConfig, ctx: JobContext | None = None) -> JobResult:
    """The job's row and side tables; a failure is recorded in the row (status=error), never raised."""
    ctx = ctx or JobContext()
    row: dict[str, Any] = as_flat_dict(cfg)
    row["concurrent_jobs"] = ctx.concurrent_jobs
    tables: dict[str, pd.DataFrame] = {}
    try:
        validate(cfg)
        check_implemented(cfg)
        check_cores(cfg, ctx.concurrent_jobs)
        check_memory(cfg)
        done = execute(cfg, ctx)
        row.update(done.row)
        tables = done.tables
        row.update(status="ok", error="")
    except Exception as exc:  # a failed job is a row, so the sweep and its table survive
        row.update(status="error", error=one_line(exc))
    row.update(provenance())
    return JobResult(row, tables)
