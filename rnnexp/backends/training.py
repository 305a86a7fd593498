"""The training step (``mode=training``): what a backend provides, and how a job times and checks it.

A backend trains if its module defines ``prepare_training(cfg, params, x, d_output, d_h_n, d_c_n)
-> PreparedTraining`` (declared in ``rnnexp.backends``). The loss is ``L = sum(output * d_output) +
sum(h_n * d_h_n) (+ sum(c_n * d_c_n))``, so a backend never forms L: its backward is the
vector-Jacobian product of its forward with those cotangents (``cotangents(cfg)``, drawn from the
job's seed, the same for every backend).

Four things are timed, each with ``rnnexp.measure.measure`` (cold call, warm-up, blocks, median):

- ``step``: a forward that records what the backward needs, then the whole backward (input and
  every parameter). The row's ``time_*`` columns.
- ``fwd``: the recording forward alone.
- ``bwd_data``: from one recorded forward, the gradient with respect to the input alone.
- ``bwd_weights``: from the same recorded forward, the gradients with respect to the parameters alone.

Both backward phases are repeatable on one recording (torch: ``retain_graph=True``), so they are
timed in blocks like everything else. Each includes the recurrent adjoint, which both need; unlike
cuDNN's ``BackwardWeights``, which reuses what ``BackwardData`` left in its reserve space, so here
``fwd + bwd_data + bwd_weights`` exceeds ``step``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from rnnexp.backends import Outputs, PreparedTraining
from rnnexp.backends.numpy_ref import PARITY_TOL
from rnnexp.config import Cell, RunConfig
from rnnexp.measure import Measurement, Progress, measure
from rnnexp.params import (
    expected_c_n_shape,
    expected_h_n_shape,
    expected_output_shape,
)

PHASES = ("step", "fwd", "bwd_data", "bwd_weights")

# Gradient parity tolerance per dtype, relative to max(1, largest |reference gradient|): the
# forward's (numpy_ref.PARITY_TOL). Gradients sum T*B products per weight and run the chain back
# through every step, yet float32 stayed within 1.3e-6 of that scale (numpy and torch, rnn/lstm/gru,
# H=256, B=8, two bidirectional layers, T=100 and 500), about 8x inside; float64 gradients agree
# with torch.autograd to ~1e-15 of it (tests/test_gradients.py holds them to 1e-10).
GRAD_PARITY_TOL = PARITY_TOL


def cotangents(cfg: RunConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(d_output, d_h_n, d_c_n or None): N(0, 1) in the job's dtype and layout, seeded apart from weights and inputs."""
    rng = np.random.default_rng([cfg.seed, 2])
    dtype = np.dtype(cfg.dtype.value)
    d_output = rng.standard_normal(expected_output_shape(cfg)).astype(dtype)
    d_h_n = rng.standard_normal(expected_h_n_shape(cfg)).astype(dtype)
    d_c_n = rng.standard_normal(expected_c_n_shape(cfg)).astype(dtype) if cfg.cell is Cell.lstm else None
    return d_output, d_h_n, d_c_n


def grad_max_abs_err(got: dict[str, np.ndarray], ref: dict[str, np.ndarray]) -> float:
    """Largest |got - ref| over every gradient in ``got``; a missing name or a wrong shape is an error."""
    err = 0.0
    for name, value in got.items():
        if name not in ref or np.shape(value) != ref[name].shape:
            want = ref[name].shape if name in ref else "no such gradient"
            raise ValueError(f"gradient {name}: shape {np.shape(value)}, expected {want}")
        err = max(err, float(np.max(np.abs(np.asarray(value, np.float64) - ref[name]), initial=0.0)))
    return err


def grad_parity(cfg: RunConfig, got: list[dict[str, np.ndarray]], ref: dict[str, np.ndarray]) -> dict[str, Any]:
    """grad_max_abs_err_vs_ref over every gradient set in ``got``, the tolerance, and whether it holds.

    The first set (the step's) must hold every name the reference has; the others (the phases') a subset.
    """
    if set(got[0]) != set(ref):
        missing, extra = sorted(set(ref) - set(got[0])), sorted(set(got[0]) - set(ref))
        raise ValueError(f"the step's gradients lack {missing} and have unexpected {extra}")
    err = max(grad_max_abs_err(g, ref) for g in got)
    scale = max(1.0, *(float(np.max(np.abs(v), initial=0.0)) for v in ref.values()))
    tol = GRAD_PARITY_TOL[cfg.dtype.value] * scale
    if cfg.cell.value in ("mingru", "minlstm", "lru", "s6"):  # the adjoint is a scan too: rnnexp.linear.tolerance
        from rnnexp.linear.tolerance import relative_tol

        tol = relative_tol(cfg, GRAD_PARITY_TOL[cfg.dtype.value]) * scale
    return {"grad_max_abs_err_vs_ref": err, "grad_parity_tol": tol, "grad_parity_ok": bool(err <= tol)}


@dataclass
class TrainingRun:
    """One backend's timed training step: what ran, each phase's measurement, outputs, gradients, columns."""

    prepared: PreparedTraining
    measurements: dict[str, Measurement]  # by phase: step, fwd, bwd_data, bwd_weights
    out: Outputs  # the step's forward outputs (for the forward parity and shape checks)
    grads: dict[str, np.ndarray]  # the step's gradients: "x" and every parameter
    peak_mem_bytes: int  # one step's peak (rnnexp.memory.peak_forward_bytes on the step's last warm-up call)
    columns: dict[str, Any]


def phase_columns(measurements: dict[str, Measurement], noisy_frac: float) -> dict[str, Any]:
    """The step's ``time_*`` columns, then median and IQR of each phase (``fwd_time_median_ms``, ...)."""
    cols = measurements["step"].columns(noisy_frac)
    for phase in PHASES[1:]:
        m = measurements[phase]
        cols[f"{phase}_time_median_ms"] = 1e3 * m.median_s
        cols[f"{phase}_time_iqr_ms"] = 1e3 * m.iqr_s
    return cols


def run_training(
    cfg: RunConfig,
    params: dict[str, np.ndarray],
    x: np.ndarray,
    progress: Callable[[str], Callable[[Progress], None] | None] | None = None,
) -> TrainingRun:
    """Time the step and its three phases with ``cfg.threads`` threads, measure one step's memory, check gradients.

    ``progress(phase)`` may give each phase's ``measure`` a progress hook (the runner's ProgressLog).
    """
    from rnnexp import backends
    from rnnexp.backends.numpy_grad import saved_bytes
    from rnnexp.backends.numpy_ref import gradients
    from rnnexp.flops import backward_flops
    from rnnexp.memory import peak_forward_bytes
    from rnnexp.threads import limited_threads

    d_output, d_h_n, d_c_n = cotangents(cfg)
    backend = backends.load(cfg.backend)  # imports the framework before its threads are pinned
    with limited_threads(cfg.threads):
        prepared = backend.prepare_training(cfg, params, x, d_output, d_h_n, d_c_n)
        peaks: list[int] = []

        def probe(call):  # the step's last warm-up call: tracing allocations slows the call it watches
            peaks.append(peak_forward_bytes(call, prepared.device, cfg.backend))

        def timed(phase: str, fn: Callable[[], Any], **kw) -> tuple[Measurement, Any]:
            hook = progress(phase) if progress is not None else None
            return measure(fn, cfg.timing, prepared.sync, progress=hook, **kw)

        with prepared.context():
            m_step, result = timed("step", prepared.step, probe=probe)
            m_fwd, recording = timed("fwd", prepared.forward)
            m_data, data = timed("bwd_data", lambda: prepared.backward_data(recording))
            m_weights, weights = timed("bwd_weights", lambda: prepared.backward_weights(recording))
    out, grads = prepared.fetch(result)
    ref = gradients(cfg, params, x, d_output, d_h_n, d_c_n)
    checked = [grads, prepared.fetch_grads(data), prepared.fetch_grads(weights)]
    measurements = {"step": m_step, "fwd": m_fwd, "bwd_data": m_data, "bwd_weights": m_weights}
    columns = {
        **phase_columns(measurements, cfg.timing.noisy_frac),
        **grad_parity(cfg, checked, ref),
        "bwd_flops": backward_flops(cfg),
        "saved_activation_bytes": saved_bytes(cfg),
    }
    return TrainingRun(prepared, measurements, out, grads, peaks[0], columns)
