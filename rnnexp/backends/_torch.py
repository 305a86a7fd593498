"""What the torch backends share: device choice, threads, tensors in and NumPy arrays out, the training step,
the peak memory of a call."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from rnnexp import torch_compat
from rnnexp.backends import Outputs, PreparedTraining
from rnnexp.config import Cell, ConfigError, Device, RunConfig
from rnnexp.memory import peak_of_events
from rnnexp.params import directions, out_size, param_shapes


def check(cfg: RunConfig) -> None:
    if cfg.device is Device.cuda and not torch.cuda.is_available():
        raise ConfigError("device", "cuda", "no CUDA device is available here (allowed: cpu, auto)")


@contextlib.contextmanager
def limit_threads(n: int) -> Iterator[None]:
    """torch's intra-op pool at ``n`` threads while held (threadpoolctl pins BLAS/OpenMP, not this pool)."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def peak_bytes(call: Callable[[], Any], device: str) -> int:
    """Peak bytes allocated during one ``call()`` (rnnexp.memory): the autograd profiler's allocator
    events on a CPU (``torch_profiler``), the caching allocator's peak on a GPU (``cuda_max_memory_allocated``)."""
    if device != "cuda":
        return peak_of_events(torch_compat.cpu_allocation_events(call))
    torch.cuda.synchronize()
    start = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    result = call()
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated()
    del result
    return max(0, peak - start)


def resolve_device(cfg: RunConfig) -> torch.device:
    """cuda for device=cuda, or for device=auto when a GPU is present; else cpu."""
    if cfg.device is Device.cuda or (cfg.device is Device.auto and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


def to_tensors(params: dict[str, np.ndarray], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(v).to(device) for k, v in params.items()}


def synchronizer(device: torch.device):
    """A sync for before each clock read: waits for queued kernels on a GPU, nothing on a CPU."""
    if device.type == "cuda":
        return torch.cuda.synchronize
    return lambda: None


def fetch(result) -> Outputs:
    """(output, h_n) or (output, (h_n, c_n)) as returned by nn.RNN/GRU/LSTM, to NumPy."""
    output, state = result
    h_n, c_n = state if isinstance(state, tuple) else (state, None)
    arrays = [t.detach().cpu().numpy() if t is not None else None for t in (output, h_n, c_n)]
    return Outputs(*arrays)


def fetch_triple(result) -> Outputs:
    """(output, h_n, c_n or None) from the hand-written loops, to NumPy."""
    return Outputs(*[t.cpu().numpy() if t is not None else None for t in result])


# One recurrence step of each cell in plain torch ops, PyTorch's gate order and semantics.
# ``xi`` is the input projection x_t W_ih^T + b_ih, computed for all timesteps beforehand.


def _rnn_step(xi, h, c, w_hh, b_hh, w_hr, relu: bool):
    a = xi + F.linear(h, w_hh, b_hh)
    return (torch.relu(a) if relu else torch.tanh(a)), c


def _lstm_step(xi, h, c, w_hh, b_hh, w_hr, relu: bool):
    i, f, g, o = (xi + F.linear(h, w_hh, b_hh)).chunk(4, dim=1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    h = torch.sigmoid(o) * torch.tanh(c)
    return (h if w_hr is None else F.linear(h, w_hr)), c


def _gru_step(xi, h, c, w_hh, b_hh, w_hr, relu: bool):
    x_r, x_z, x_n = xi.chunk(3, dim=1)
    h_r, h_z, h_n = F.linear(h, w_hh, b_hh).chunk(3, dim=1)
    r = torch.sigmoid(x_r + h_r)
    z = torch.sigmoid(x_z + h_z)
    n = torch.tanh(x_n + r * h_n)
    return n + z * (h - n), c


STEPS = {Cell.rnn: _rnn_step, Cell.lstm: _lstm_step, Cell.gru: _gru_step}


def run_layers(cfg: RunConfig, x: torch.Tensor, stepper):
    """The stacked, bidirectional recurrence around a per-direction step, with nn.RNN's layout.

    ``stepper(layer, direction, seq)`` returns ``step(t, h, c) -> (h, c)`` for that direction, given
    the layer's time-major input ``seq``; layer l>0 reads the concatenated outputs of layer l-1.
    Returns (output, h_n, c_n or None) as nn.RNN/LSTM/GRU lay them out.
    """
    seq = x.transpose(0, 1) if cfg.batch_first else x  # (T, B, features)
    steps, batch = seq.shape[0], seq.shape[1]
    h_n, c_n = [], []
    for layer in range(cfg.layers):
        outs = []
        for d in range(directions(cfg)):
            step = stepper(layer, d, seq)
            h = seq.new_zeros(batch, out_size(cfg))
            c = seq.new_zeros(batch, cfg.hidden_size)
            out = [None] * steps
            for t in reversed(range(steps)) if d else range(steps):
                h, c = step(t, h, c)
                out[t] = h
            outs.append(torch.stack(out))
            h_n.append(h)
            c_n.append(c)
        seq = torch.cat(outs, dim=-1)
    output = seq.transpose(0, 1) if cfg.batch_first else seq
    return output, torch.stack(h_n), torch.stack(c_n) if cfg.cell is Cell.lstm else None


def _numpy(t: torch.Tensor | None) -> np.ndarray | None:
    return None if t is None else t.detach().cpu().numpy()


def prepare_autograd(
    cfg: RunConfig,
    forward,
    x: torch.Tensor,
    leaves: dict[str, torch.Tensor],
    cotangents: tuple[np.ndarray | None, ...],
    device: torch.device,
    compile_s: float | None = None,
) -> PreparedTraining:
    """The training step around ``forward() -> (output, h_n, c_n or None)`` by ``torch.autograd.grad``.

    ``x`` and ``leaves`` (every parameter, by PyTorch's name) require grad. The backward is the
    vector-Jacobian product with the cotangents (``grad_outputs``), so no loss is formed; the two
    phases keep the graph (``retain_graph=True``) so they can run again on one recorded forward.
    """
    names = list(param_shapes(cfg))
    params = [leaves[n] for n in names]
    grad_outputs = [torch.from_numpy(a).to(device) for a in cotangents if a is not None]

    def grad(recorded, inputs, retain: bool):
        outputs = [t for t in recorded if t is not None]
        return torch.autograd.grad(outputs, inputs, grad_outputs=grad_outputs, retain_graph=retain)

    def step():
        recorded = forward()
        return recorded, grad(recorded, [x, *params], False)

    def fetch(result) -> tuple[Outputs, dict[str, np.ndarray]]:
        recorded, grads = result
        return Outputs(*[_numpy(t) for t in recorded]), dict(
            zip(["x", *names], [_numpy(g) for g in grads], strict=True)
        )

    return PreparedTraining(
        step=step,
        forward=forward,
        backward_data=lambda recorded: {"x": grad(recorded, [x], True)[0]},
        backward_weights=lambda recorded: dict(zip(names, grad(recorded, params, True), strict=True)),
        fetch=fetch,
        fetch_grads=lambda grads: {k: _numpy(v) for k, v in grads.items()},
        sync=synchronizer(device),
        context=torch.enable_grad,
        device=device.type,
        compile_s=compile_s,
    )


def as_triple(result) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """nn.RNN/GRU's (output, h_n) or nn.LSTM's (output, (h_n, c_n)) as (output, h_n, c_n or None)."""
    output, state = result
    h_n, c_n = state if isinstance(state, tuple) else (state, None)
    return output, h_n, c_n
