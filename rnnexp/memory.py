"""Memory of a job: sizes from the configuration, an upper-bound estimate, and the measured peak of one forward.

``peak_forward_bytes`` answers one question the same way on every path: the most bytes held at
once by allocations made *during* the call, above what was allocated when it started (weights and
inputs prepared before are not counted; a block freed during the call that was allocated before
it does not lower the figure). Each backend declares its method per device (``Backend.peak_mem``);
``tracemalloc`` is measured here, any other by the backend's module (``peak_bytes``). How each path
sees allocations:

- ``tracemalloc`` (NumPy backends): NumPy reports its array buffers to tracemalloc, and Python
  objects are counted too. Not seen: memory a BLAS library allocates for itself (OpenBLAS keeps
  fixed per-thread buffers allocated once, so a forward adds none). If tracemalloc is already
  tracing, it is left on but its peak is reset (Python offers no other way to take a sub-peak).
- ``torch_profiler`` (torch on CPU): ``torch.autograd.profiler.profile`` (what ``torch.profiler``
  wraps, without its ~1.5 s import of torch's compiler) with ``profile_memory=True`` records every
  allocation and free of c10's CPU allocator (every tensor, and oneDNN's workspace, which torch
  routes through it); the peak is taken over the running sum of those events, matched by address.
  Not seen: MKL's own GEMM buffers and Python objects. Costs a few ms per call (more for a forward
  of many small ops); kineto's start/stop lines on stderr are dropped. The profiler's internals are
  read in ``rnnexp.torch_compat.cpu_allocation_events``; the peak is ``peak_of_events``.
- ``cuda_max_memory_allocated`` (torch on CUDA): ``torch.cuda.max_memory_allocated`` after
  ``reset_peak_memory_stats``, minus what was allocated at the start; the caching allocator's
  reserved-but-free memory and cuDNN/cuBLAS workspaces outside it are not counted.
- ``xla_memory_analysis`` (jax, any device): XLA assigns every buffer of a compiled program ahead
  of time, and a call allocates exactly its temporaries and its outputs; the figure is
  ``temp_size_in_bytes + output_size_in_bytes - alias_size_in_bytes`` of the executable's
  ``memory_analysis()`` (the jax backend hangs that method on its call), read, not traced:
  tracemalloc sees none of XLA's buffers and JAX's CPU client keeps no allocator statistics.
  Not seen: scratch that a library kernel (XNNPACK, oneDNN, cuBLAS) allocates for itself.
- ``unmeasured_onnxruntime_arena`` (onnxruntime): ONNX Runtime serves a run from its own arena,
  invisible to tracemalloc, and exposes neither its size nor its peak; ``peak_mem_bytes`` is left
  empty rather than reported as 0. (Resident memory would not answer either: a warm arena adds
  no pages to a call that reuses it.)

Bytes allocated is not resident memory (RSS): untouched pages of ``np.empty`` count here but not
in RSS, and a freed block the allocator keeps counts in RSS but not here.
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable
from math import prod
from typing import Any

from rnnexp import backends
from rnnexp.backends.numpy_grad import saved_bytes
from rnnexp.config import Cell, RunConfig
from rnnexp.layout import itemsize
from rnnexp.params import (
    GATES,
    directions,
    expected_c_n_shape,
    expected_h_n_shape,
    expected_output_shape,
    input_shape,
    out_size,
    param_shapes,
)

F64 = 8  # bytes per float64: the reference's dtype
FIXED_BYTES = 16 * 1024 * 1024  # Python objects, row dicts and small tables a job makes whatever its size
KIB = 1024
# What a job holds per layer beyond its arrays, whatever the backend: the Python objects of each
# layer's weights, reference outputs and statistics (dicts, array headers, side-table rows), torch's
# per-module and per-parameter objects. Measured (peak RSS of a job, I=5 H=8 T=10 B=1 rnn, above a
# first such job in the same process): numpy grows ~10 KiB per layer (+20 MiB from 1 to 2,000
# layers; the same 2,000 at T=10 as 200 at T=100, so per layer, not per step).
PER_LAYER_BYTES = 16 * KIB
# What the peak measurement itself holds per step of each layer and direction of the call it watches is
# the backend's ``measure_bytes_per_step`` (torch's autograd profiler keeps an event per op; tracemalloc
# keeps only live blocks: nothing per step). A training step (the forward, then autograd's backward)
# records ~4.6x a forward's ops: +612 MiB against +133 MiB for the forward alone at 500 layers x 10 steps.
TRAINING_STEP_FACTOR = 5


def n_params(cfg: RunConfig) -> int:
    return sum(prod(shape) for shape in param_shapes(cfg).values())


def param_bytes(cfg: RunConfig) -> int:
    """Bytes of the parameters in the job's dtype (what ``make_params(cfg)`` holds)."""
    return n_params(cfg) * itemsize(cfg)


def input_bytes(cfg: RunConfig) -> int:
    return prod(input_shape(cfg)) * itemsize(cfg)


def _n_activations(cfg: RunConfig) -> int:
    shapes = [expected_output_shape(cfg), expected_h_n_shape(cfg), expected_c_n_shape(cfg)]
    return sum(prod(s) for s in shapes if s is not None)


def activation_bytes(cfg: RunConfig) -> int:
    """Bytes of what a forward returns: output + h_n (+ c_n for an LSTM), in the job's dtype."""
    return _n_activations(cfg) * itemsize(cfg)


def _stats_chunk(cfg: RunConfig) -> int:
    """Gate pre-activation elements the statistics recompute at once (rnnexp.stats works in chunks of steps)."""
    from rnnexp import stats

    per_step = cfg.batch_size * GATES[cfg.cell] * cfg.hidden_size
    chunk = getattr(stats, "CHUNK_ELEMENTS", None) or cfg.timesteps * per_step
    return min(cfg.timesteps * per_step, max(chunk, per_step))


def job_bytes_breakdown(cfg: RunConfig) -> dict[str, int]:
    """The parts of ``estimate_job_bytes``: what a job holds throughout, and the peak of each phase.

    A job's phases run one after another (backend forward, float64 reference, statistics, parity
    check), so the estimate is ``held`` plus the largest phase. Each figure is generous: every
    temporary a phase may hold at once is counted. Sizes: P parameters, X inputs, A outputs and
    states, L one layer's output (T*B*D*H_out), W one layer's input projection for all its
    directions (T*B*D*G*H: the hoisted loop's and oneDNN/cuDNN's workspace), s the job's itemsize.
    """
    s = itemsize(cfg)
    t_b, n_dir = cfg.timesteps * cfg.batch_size, directions(cfg)
    big_p, big_x, big_a = n_params(cfg), prod(input_shape(cfg)), _n_activations(cfg)
    big_l = t_b * n_dir * out_size(cfg)
    big_w = n_dir * t_b * GATES[cfg.cell] * cfg.hidden_size
    return {
        # params and inputs as made, the backend's weight copy (packed, or the nn module's),
        # its result and a host copy of it, the reference's every layer output and states
        "held": (2 * big_p + big_x + 2 * big_a) * s + (cfg.layers * big_l + big_a) * F64,
        # backend forward: the input projection (x2 for the unhoisted/oneDNN variants), layer outputs,
        # and the weight copies an engine makes while it prepares (``Backend.weight_copies``)
        "backend_phase": (2 * big_w + 3 * big_l + backends.declared(cfg.backend).weight_copies * big_p) * s,
        # reference: float64 params (upcast, packing temporaries, packed), inputs, its projection, two layer outputs
        "reference_phase": (3 * big_p + big_x + big_w + 2 * big_l) * F64,
        # statistics: float64 params and inputs, ~5 gate-sized arrays per chunk of steps, the shifted
        # states, float64 copies of the outputs
        "stats_phase": (big_p + big_x + 5 * _stats_chunk(cfg) + big_l + 4 * big_a) * F64,
        # parity: upcast, difference, absolute value
        "parity_phase": 3 * big_a * F64,
    }


def overhead_bytes(cfg: RunConfig) -> int:
    """What a job holds beside its arrays, growing with depth and length: PER_LAYER_BYTES per layer, and the
    backend's ``measure_bytes_per_step`` per step of each layer and direction while the peak of a CPU forward
    (or, times TRAINING_STEP_FACTOR, of the training step) is measured."""
    per_layer = cfg.layers * PER_LAYER_BYTES
    if cfg.device.value == "cuda":  # a GPU's peak is the allocator's own statistic: nothing recorded per step
        return per_layer
    per_step = backends.declared(cfg.backend).measure_bytes_per_step
    factor = TRAINING_STEP_FACTOR if cfg.mode.value == "training" else 1
    return per_layer + factor * per_step * cfg.layers * directions(cfg) * cfg.timesteps


def estimate_job_bytes(cfg: RunConfig) -> int:
    """An upper-bound estimate of the memory one job adds to its process: FIXED_BYTES + held + the largest phase
    (+ ``overhead_bytes``, held throughout).

    It leaves out the process's fixed cost (Python, NumPy, torch and their libraries), so compare it
    with the memory still available, not with the machine's total; and the one-off GEMM peak
    measurement (``rnnexp.peak``: about 5 * 1024^2 * 8 bytes = 40 MiB, once per sweep).
    """
    parts = job_bytes_breakdown(cfg)
    held = parts.pop("held")
    if cfg.mode.value == "training":  # the recording for the backward, the gradients, their float64 reference
        training = training_bytes_breakdown(cfg)
        held += training.pop("held")
        parts.update(training)
    return FIXED_BYTES + held + overhead_bytes(cfg) + max(parts.values())


# A training step's peak over its recording (numpy_grad.saved_bytes): measured 1.3-3.3x across
# numpy, torch (oneDNN's LSTM workspace is the largest), torch_cell and torch_compile at H=64, T=50,
# two bidirectional layers; the estimate allows 4x, plus the backward's own temporaries.
SAVED_FACTOR = 4


def training_bytes_breakdown(cfg: RunConfig) -> dict[str, int]:
    """What mode=training adds to ``job_bytes_breakdown``: more held, and two more phases.

    Sizes as there: P parameters, X inputs, A outputs and states, S = ``numpy_grad.saved_bytes`` (the
    recording), W = T*B*D*G*H (a layer's gate gradients or input projection, all directions),
    I = T*B*max(input_size, D*H_out) (a layer's input gradient), s the job's itemsize, 8 float64's.

    - held (added): the recording the backward phases reuse, the step's outputs and gradients, both
      phases' gradients, and the float64 reference gradients: S + (A + 2P + 2X) s + (P + X) 8.
    - training_phase: one step, SAVED_FACTOR x S for what an engine keeps (autograd's saved tensors,
      oneDNN's workspace), plus gate gradients (x2 for GRU's two), input projection, input gradient
      and a product's temporary, gradients: (4 S / s + 2 k W + W + 2 I + 2P + X) s, k = 2 for GRU.
    - grad_reference_phase: the float64 reference gradient: its recording, the same temporaries,
      float64 parameters, inputs and cotangents: (S / s + 2 k W + W + 2 I + 3P + 2X + A) 8.
    """
    s, saved = itemsize(cfg), saved_bytes(cfg)
    t_b, n_dir = cfg.timesteps * cfg.batch_size, directions(cfg)
    big_p, big_a = n_params(cfg), _n_activations(cfg)
    big_x = prod(input_shape(cfg))
    big_w = t_b * n_dir * GATES[cfg.cell] * cfg.hidden_size
    big_i = t_b * max(cfg.input_size, n_dir * out_size(cfg))
    k = 2 if cfg.cell is Cell.gru else 1
    temporaries = 2 * k * big_w + big_w + 2 * big_i
    return {
        "held": saved + (big_a + 2 * big_p + 2 * big_x) * s + (big_p + big_x) * F64,
        "training_phase": SAVED_FACTOR * saved + (temporaries + 2 * big_p + big_x) * s,
        "grad_reference_phase": (saved // s + temporaries + 3 * big_p + 2 * big_x + big_a) * F64,
    }


def framework_of(backend: str) -> str:
    """The framework a backend runs on: the first package it declares (``Backend.packages``)."""
    return backends.declared(backend).packages[0]


def peak_method(device: str, backend: str) -> str:
    """How ``peak_forward_bytes`` measures a forward of ``backend`` on ``device`` (module docstring): as it declares."""
    return backends.declared(backend).peak_mem_method(device)


def peak_forward_bytes(call: Callable[[], Any], device: str = "cpu", backend: str | None = None) -> int | None:
    """Peak bytes allocated during one ``call()`` (module docstring) on ``backend`` (default: the reference's,
    tracemalloc); run it inside the backend's context.

    None where the framework hides its allocations (``unmeasured_*``): an empty figure, never a 0.
    """
    backend = backend or backends.reference()
    method = peak_method(device, backend)
    if method == "tracemalloc":
        return _peak_tracemalloc(call)
    if method.startswith("unmeasured"):
        return None
    return backends.load(backend).peak_bytes(call, device)


def _peak_tracemalloc(call: Callable[[], Any]) -> int:
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start()
    try:
        start, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        result = call()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        if not was_tracing:
            tracemalloc.stop()
    del result
    return max(0, peak - start)


def peak_of_events(events: list[tuple[int, int, int]]) -> int:
    """Peak of the running sum of (time, address, +size alloc / -size free) events; frees of unseen blocks ignored."""
    live: dict[int, int] = {}
    current = peak = 0
    for _, ptr, size in sorted(events):
        if size > 0:
            live[ptr] = size
            current += size
        elif ptr in live:
            current -= live.pop(ptr)
        peak = max(peak, current)
    return peak
