"""``torch.compile`` of the recurrence step, with the input projection hoisted out of the loop.

Why the step and not the whole forward: dynamo refuses ``nn.RNN``/``LSTM``/``GRU`` unless
``torch._dynamo.config.allow_rnn`` is set and then compiles for 40-90 s; an unrolled loop
compiles in time that grows with timesteps x layers. The step is one small graph whose
compile cost does not depend on the sequence, and it is where fusion pays: the gate
arithmetic becomes one kernel. The compile runs in ``prepare`` and is reported as ``compile_s``.

In training (``prepare_training``) the same compiled step runs on tensors that require grad, so
AOTAutograd traces its backward too and inductor compiles both (the backward on its first use);
one whole step runs in ``prepare_training`` and ``compile_s`` is its time, both graphs included.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from rnnexp import torch_compat
from rnnexp.backends import Backend, Prepared
from rnnexp.backends._torch import (
    STEPS,
    check,
    fetch_triple,
    limit_threads,
    peak_bytes,
    prepare_autograd,
    resolve_device,
    run_layers,
    synchronizer,
    to_tensors,
)
from rnnexp.config import Nonlinearity, RunConfig
from rnnexp.params import suffix

__all__ = ["check", "limit_threads", "peak_bytes", "prepare", "prepare_training"]

BACKEND = Backend(
    name="torch_compile",
    packages=("torch",),
    devices=("cpu", "cuda"),
    trains=True,
    peak_mem={"cpu": "torch_profiler", "cuda": "cuda_max_memory_allocated"},
    measure_bytes_per_step=57344,  # not measured: torch_cell's figure, the largest
    step_cost_s=4e-5,  # a per-step Python loop around the compiled step, as torch_cell's
    pins_threads=True,
)


def _stepper(cfg: RunConfig, w: dict[str, torch.Tensor], step):
    relu = cfg.nonlinearity is Nonlinearity.relu

    def for_direction(layer: int, d: int, seq: torch.Tensor):
        s = suffix(layer, d)
        xw = F.linear(seq, w[f"weight_ih{s}"], w.get(f"bias_ih{s}"))  # all timesteps at once
        w_hh, b_hh, w_hr = w[f"weight_hh{s}"], w.get(f"bias_hh{s}"), w.get(f"weight_hr{s}")
        return lambda t, h, c: step(xw[t], h, c, w_hh, b_hh, w_hr, relu)

    return for_direction


def compiled_step(cfg: RunConfig):
    """The cell's step, compiled afresh for this job.

    Dynamo keeps one cache per code object and, with ``fullgraph=True``, fails a compile once a
    step has been compiled for ``recompile_limit`` (8) shapes and dtypes: a sweep's ninth
    configuration in one process would become an error row. Resetting first gives every job its
    own compile, so its ``compile_s`` does not depend on which jobs ran before it in the process.
    """
    torch.compiler.reset()
    return torch.compile(STEPS[cfg.cell], dynamic=False, fullgraph=True)


def prepare(cfg: RunConfig, params: dict[str, np.ndarray], x: np.ndarray) -> Prepared:
    device = resolve_device(cfg)
    weights = to_tensors(params, device)
    xt = torch.from_numpy(x).to(device)
    stepper = _stepper(cfg, weights, compiled_step(cfg))
    sync = synchronizer(device)
    start = time.perf_counter()
    with torch.inference_mode():
        run_layers(cfg, xt, stepper)  # compiles; later calls reuse the graph
    sync()
    return Prepared(
        call=lambda: run_layers(cfg, xt, stepper),
        fetch=fetch_triple,
        sync=sync,
        context=torch.inference_mode,
        device=device.type,
        compile_s=time.perf_counter() - start,
    )


@contextlib.contextmanager
def _training_context() -> Iterator[None]:
    """Autograd on, and no donated buffers: AOTAutograd's default refuses a second backward (retain_graph=True)
    on one recorded forward, which the timed backward phases need; inductor reads this while compiling."""
    with torch.enable_grad(), torch_compat.no_donated_buffers():
        yield


def prepare_training(
    cfg: RunConfig, params: dict[str, np.ndarray], x: np.ndarray, d_output: np.ndarray, d_h_n: np.ndarray, d_c_n=None
):
    """The compiled step with its compiled backward, driven by ``torch.autograd.grad`` (``_torch.prepare_autograd``)."""
    device = resolve_device(cfg)
    weights = {k: v.requires_grad_(True) for k, v in to_tensors(params, device).items()}
    xt = torch.from_numpy(x).to(device).requires_grad_(True)
    stepper = _stepper(cfg, weights, compiled_step(cfg))
    prepared = prepare_autograd(
        cfg, lambda: run_layers(cfg, xt, stepper), xt, weights, (d_output, d_h_n, d_c_n), device
    )
    prepared.context = _training_context
    start = time.perf_counter()
    with prepared.context():
        prepared.step()  # compiles the forward graphs, then (on their first backward) the backward graphs
    prepared.sync()
    prepared.compile_s = time.perf_counter() - start
    return prepared
