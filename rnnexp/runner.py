"""One job, start to finish: validate, build weights and inputs, time the forward, check it, make a row.

Plain functions on a typed RunConfig; nothing here knows about Hydra.
"""

from __future__ import annotations

import contextlib
import platform
import sys
from importlib import metadata
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from rnnexp import backends
from rnnexp.backends import Outputs
from rnnexp.backends.numpy_ref import reference
from rnnexp.config import RunConfig, as_flat_dict, validate
from rnnexp.measure import measure
from rnnexp.params import expected_c_n_shape, expected_h_n_shape, expected_output_shape, make_inputs, make_params
from rnnexp.stats import state_stats


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


def max_abs_err(got: Outputs, ref: Outputs) -> float:
    pairs = [(got.output, ref.output), (got.h_n, ref.h_n), (got.c_n, ref.c_n)]
    errs = [np.max(np.abs(a.astype(np.float64) - b)) for a, b in pairs if a is not None and b is not None]
    return float(max(errs))


def execute(cfg: RunConfig) -> dict[str, Any]:
    """Run the job's forward on its backend and return the measured columns."""
    params, x = make_params(cfg), make_inputs(cfg)
    backend = backends.load(cfg.backend)  # imports the framework before its threads are pinned
    with limited_threads(cfg.threads):
        prepared = backend.prepare(cfg, params, x)
        with prepared.context():
            measurement, result = measure(prepared.call, cfg.timing, prepared.sync)
    out = prepared.fetch(result)
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
        **state_stats(out),
        "max_abs_err_vs_ref": max_abs_err(out, reference(cfg, params, x)),
        **prepared.extra,
    }


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def run_job(cfg: RunConfig) -> dict[str, Any]:
    """The job's row; a failure is recorded in it (status=error), never raised."""
    row: dict[str, Any] = as_flat_dict(cfg)
    try:
        validate(cfg)
        row.update(execute(cfg))
        row.update(status="ok", error="")
    except Exception as exc:  # a failed job is a row, so the sweep and its table survive
        row.update(status="error", error=one_line(exc))
    row.update(versions())
    return row
