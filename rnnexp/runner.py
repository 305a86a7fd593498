"""One job, start to finish: validate, build weights and inputs, time the forward, check it, make a row.

Plain functions on a typed RunConfig; nothing here knows about Hydra.
"""

from __future__ import annotations

import contextlib
import os
import platform
import sys
from importlib import metadata
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from rnnexp import backends
from rnnexp.backends import Outputs
from rnnexp.backends.numpy_ref import reference
from rnnexp.config import ConfigError, RunConfig, as_flat_dict, validate
from rnnexp.measure import measure
from rnnexp.params import expected_c_n_shape, expected_h_n_shape, expected_output_shape, make_inputs, make_params
from rnnexp.stats import state_stats, step_table


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return ""


def versions() -> dict[str, str]:
    return {
        "python_version": platform.python_version(),
        "torch_version": _version("torch"),
        "numpy_version": np.__version__,
    }


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


def execute(cfg: RunConfig, steps: list | None = None) -> dict[str, Any]:
    """Run the job's forward on its backend and return the measured columns.

    ``steps``, when given, receives the job's per-timestep table (``stats.step_table``).
    """
    params, x = make_params(cfg), make_inputs(cfg)
    backend = backends.load(cfg.backend)  # imports the framework before its threads are pinned
    with limited_threads(cfg.threads):
        prepared = backend.prepare(cfg, params, x)
        with prepared.context():
            measurement, result = measure(prepared.call, cfg.timing, prepared.sync)
    out = prepared.fetch(result)
    ref = reference(cfg, params, x)
    if steps is not None:
        steps.append(step_table(cfg, ref))
    shapes = {
        "output_shape": shape_str(out.output.shape),
        "h_n_shape": shape_str(out.h_n.shape),
        "c_n_shape": shape_str(out.c_n.shape if out.c_n is not None else None),
        "expected_output_shape": shape_str(expected_output_shape(cfg)),
        "expected_h_n_shape": shape_str(expected_h_n_shape(cfg)),
        "expected_c_n_shape": shape_str(expected_c_n_shape(cfg)),
    }
    shapes["shape_ok"] = all(shapes[k] == shapes[f"expected_{k}"] for k in ("output_shape", "h_n_shape", "c_n_shape"))
    return {
        "device_used": prepared.device,
        **shapes,
        **measurement.columns(cfg.timing.noisy_frac),
        "compile_s": prepared.compile_s,
        **state_stats(cfg, out, ref, params, x),
        **parity(cfg, out, ref),
        **prepared.extra,
    }


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def usable_cores() -> int:
    """Cores this process may run on (its affinity), which can be fewer than the machine has."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def check_cores(cfg: RunConfig, concurrent_jobs: int) -> None:
    """Refuse a job whose threads, times the jobs running beside it, would oversubscribe the cores."""
    cores = usable_cores()
    if cfg.threads * concurrent_jobs > cores:
        allowed = f"threads x {concurrent_jobs} concurrent jobs must not exceed this machine's {cores} cores"
        raise ConfigError("threads", cfg.threads, allowed)


def run_job(cfg: RunConfig, concurrent_jobs: int = 1, steps: list | None = None) -> dict[str, Any]:
    """The job's row; a failure is recorded in it (status=error), never raised."""
    row: dict[str, Any] = as_flat_dict(cfg)
    row["concurrent_jobs"] = concurrent_jobs
    try:
        validate(cfg)
        check_cores(cfg, concurrent_jobs)
        row.update(execute(cfg, steps))
        row.update(status="ok", error="")
    except Exception as exc:  # a failed job is a row, so the sweep and its table survive
        row.update(status="error", error=one_line(exc))
    row.update(versions())
    return row
