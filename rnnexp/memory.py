"""Memory of a job: sizes from the configuration, an upper-bound estimate, and the measured peak of one forward.

``peak_forward_bytes`` answers one question the same way on every path: the most bytes held at
once by allocations made *during* the call, above what was allocated when it started (weights and
inputs prepared before are not counted; a block freed during the call that was allocated before
it does not lower the figure). How each path sees allocations:

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
  read in ``rnnexp.torch_compat.cpu_allocation_events``.
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

import sys
import tracemalloc
from collections.abc import Callable
from math import prod
from typing import Any

from rnnexp import torch_compat
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
# What the peak measurement itself holds per step of each layer and direction of the call it
# watches. torch on CPU: the autograd profiler (``_peak_torch_profiler``) records every op of the call
# as a kineto event, ~1.5 KiB each, ~20 ops per layer-step for nn.RNN's CPU kernel: +612 MiB at 2,000
# layers x 10 steps, +543 MiB at 200 x 100, +296 MiB at 500 x 10 bidirectional; a Python loop of
# torch ops (torch_cell) ~1.6x that (+1,038 MiB at 2,000 x 10). tracemalloc (NumPy) keeps only live
# blocks: nothing per step. Other torch backends (torch_compile) get the largest figure.
MEASURE_BYTES_PER_STEP = {"torch": 32 * KIB, "torch_cell": 56 * KIB}
# A training step (the forward, then autograd's backward) records ~4.6x a forward's ops: +612 MiB
# against +133 MiB for the forward alone at 500 layers x 10 steps.
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


# Weight copies an engine holds while it prepares, beyond the backend copy counted in ``held``. ONNX
# Runtime: the model proto, its serialised bytes, the session's initialisers (its LSTM/GRU kernels
# prepack them). XLA: compilation's own peak, about one more copy. Measured on H=1024, B=64, T=100,
# 2 bidirectional layers, LSTM, float32: the peak resident growth of prepare plus two calls was 843 MiB
# (ORT) and 763 MiB (jax), against 1190 and 870 MiB here for the backend's share (its copy + phase).
ENGINE_WEIGHT_COPIES = {"onnxruntime": 3, "jax": 1}


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
        # and the weight copies an engine makes while it prepares (ENGINE_WEIGHT_COPIES)
        "backend_phase": (2 * big_w + 3 * big_l + ENGINE_WEIGHT_COPIES.get(framework_of(cfg.backend), 0) * big_p) * s,
        # reference: float64 params (upcast, packing temporaries, packed), inputs, its projection, two layer outputs
        "reference_phase": (3 * big_p + big_x + big_w + 2 * big_l) * F64,
        # statistics: float64 params and inputs, ~5 gate-sized arrays per chunk of steps, the shifted
        # states, float64 copies of the outputs
        "stats_phase": (big_p + big_x + 5 * _stats_chunk(cfg) + big_l + 4 * big_a) * F64,
        # parity: upcast, difference, absolute value
        "parity_phase": 3 * big_a * F64,
    }


def overhead_bytes(cfg: RunConfig) -> int:
    """What a job holds beside its arrays, growing with depth and length: PER_LAYER_BYTES per layer, and
    MEASURE_BYTES_PER_STEP per step of each layer and direction while the peak of the forward (or, times
    TRAINING_STEP_FACTOR, of the training step) is measured."""
    per_layer = cfg.layers * PER_LAYER_BYTES
    if peak_method("cuda" if cfg.device.value == "cuda" else "cpu", framework_of(cfg.backend)) != "torch_profiler":
        return per_layer
    per_step = MEASURE_BYTES_PER_STEP.get(cfg.backend, max(MEASURE_BYTES_PER_STEP.values()))
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


ENGINES = ("onnxruntime", "jax")  # backends whose framework is their own name


def framework_of(backend: str) -> str:
    """'numpy' for the NumPy backends, the engine's name for onnxruntime and jax, 'torch' for the rest."""
    if backend.startswith("numpy"):
        return "numpy"
    return backend if backend in ENGINES else "torch"


PEAK_METHODS = {"jax": "xla_memory_analysis", "onnxruntime": "unmeasured_onnxruntime_arena"}


def peak_method(device: str, framework: str) -> str:
    """How ``peak_forward_bytes`` measures (module docstring): the engine's own method, else by device and framework."""
    if framework in PEAK_METHODS:
        return PEAK_METHODS[framework]
    if device == "cuda":
        return "cuda_max_memory_allocated"
    return "torch_profiler" if framework == "torch" else "tracemalloc"


def peak_forward_bytes(call: Callable[[], Any], device: str = "cpu", framework: str = "numpy") -> int | None:
    """Peak bytes allocated during one ``call()`` (module docstring); run it inside the backend's context.

    None where the framework hides its allocations (``unmeasured_*``): an empty figure, never a 0.
    """
    method = peak_method(device, framework)
    if method == "tracemalloc":
        return _peak_tracemalloc(call)
    if method == "torch_profiler":
        return _peak_torch_profiler(call)
    if method == "xla_memory_analysis":
        return _peak_xla(call)
    if method.startswith("unmeasured"):
        return None
    return _peak_cuda(call)


def _peak_xla(call: Callable[[], Any]) -> int | None:
    """Temporaries plus outputs of one execution, from the compiled executable's own buffer assignment."""
    analysis = getattr(call, "memory_analysis", None)
    stats = analysis() if analysis is not None else None
    if stats is None:  # a backend that gives no executable, or a jaxlib that cannot analyse it
        return None
    return max(0, stats.temp_size_in_bytes + stats.output_size_in_bytes - stats.alias_size_in_bytes)


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


def _peak_torch_profiler(call: Callable[[], Any]) -> int:
    return peak_of_events(torch_compat.cpu_allocation_events(call))


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


def _peak_cuda(call: Callable[[], Any]) -> int:
    torch = sys.modules["torch"]
    torch.cuda.synchronize()
    start = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    result = call()
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated()
    del result
    return max(0, peak - start)
