"""The NumPy reference: PyTorch's recurrences written out by hand, float32 or float64.

The input projection of every layer and direction is hoisted out of the time loop (one
matrix product over all timesteps, as cuDNN does); the recurrence itself is the tutorial's
loop ``h_t = f(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)``. ``numpy_naive`` keeps the
per-step projection of the tutorial for comparison.

Speed comes from layout, not from different maths. The weights are packed once: transposed,
an LSTM's gates reordered to i, f, o, g, and each gate's rows (weights and biases) scaled by a
power of two, which is exact: by -1 for a sigmoid gate and by -2 for a tanh one, so the step
holds ``-a`` or ``-2a`` and every gate activation is the same three passes over one contiguous
buffer, ``s = 1 / (1 + exp(-a))``, with ``tanh(a) = 2 * sigmoid(2a) - 1`` (NumPy's exp is faster
than its tanh, ~1.7x in float64; the identity costs at most ~1e-16 absolute; an LSTM's tanh(c)
keeps ``np.tanh``). ``b_hh`` is
folded into the hoisted projection (except GRU's ``b_hn``, which stays inside the reset
product). Each step works in preallocated buffers and writes h_t straight into the layer's
output, in the job's batch layout, so the loop allocates nothing.

An optional observer sees every step from inside the loop (``reference(..., observe=...)``), so
statistics of the gates need no second pass: ``observe(layer, direction)`` returns a hook (or
None) called after each step, in processing order, as ``hook(gates, c, h)``: for an LSTM and a
GRU ``gates`` holds every gate's activation, (B, G*H) in ``_numpy.PACKED_GATES`` order; for an rnn it
holds an intermediate (sigmoid(2a) for tanh, a for relu) and ``h`` is the activation; ``c`` is an
LSTM's cell state after the step (else None); ``h`` the state just written. The buffers are
reused at the next step: a hook reads them, never keeps or writes them. Without an observer the
loop pays one ``is None`` test per step.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from rnnexp.backends import Backend, Outputs, Prepared, numpy_grad
from rnnexp.backends._numpy import STEPS, StepHook, Weights, pack
from rnnexp.config import Cell, RunConfig
from rnnexp.linear import grad as linear_grad
from rnnexp.linear import is_linear
from rnnexp.linear import numpy_backend as linear_numpy
from rnnexp.params import directions, out_size

# Parity tolerance per dtype, relative to max(1, largest |value| in the reference): float64 keeps
# ~1e5 ulps of headroom for error accumulated over layers and timesteps; float32's 1e-5 is ~80 ulps
# at 1.0 and 10x the worst error seen over rnn/lstm/gru at H=256-1024, T=100-200 (about 1e-6). The
# forward's parity (rnnexp.runner.parity) and the gradients' (rnnexp.backends.training.grad_parity).
PARITY_TOL = {"float32": 1e-5, "float64": 1e-10}
Observer = Callable[[int, int], "StepHook | None"]  # (layer, direction) -> that part's hook, or None


BACKEND = Backend(
    name="numpy",
    packages=("numpy",),
    trains=True,
    linear_cells=True,
    gemm=True,  # NumPy's BLAS, which the NumPy backends use
    reference=True,  # the float64 reference's own code, in the job's dtype
)


def gemm_call(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> Callable[[], object]:
    """One product ``a @ b`` into ``out`` (rnnexp.peak's yardstick)."""
    return lambda: np.matmul(a, b, out=out)


def prepare(cfg: RunConfig, params: dict[str, np.ndarray], x: np.ndarray) -> Prepared:
    if is_linear(cfg):
        return linear_numpy.prepare(cfg, params, x)
    packed = pack(cfg, params)  # once, like nn.RNN's own weight layout: not part of the timed forward
    return Prepared(call=lambda: run(cfg, packed, x), fetch=lambda out: out)


def gradients(
    cfg: RunConfig,
    params: dict[str, np.ndarray],
    x: np.ndarray,
    d_output: np.ndarray,
    d_h_n: np.ndarray,
    d_c_n: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """The float64 reference gradient by backpropagation through time (``rnnexp.backends.numpy_grad``)."""
    if is_linear(cfg):
        return linear_grad.gradients(cfg, params, x, d_output, d_h_n)
    return numpy_grad.gradients(cfg, params, x, d_output, d_h_n, d_c_n)


def prepare_training(*args, **kwargs):
    """The numpy backend in mode=training: the hand-written BPTT timed as a contender (``numpy_grad``)."""
    if is_linear(args[0]):
        return linear_grad.prepare_training(*args, **kwargs)
    return numpy_grad.prepare_training(*args, **kwargs)


def reference(cfg: RunConfig, params: dict[str, np.ndarray], x: np.ndarray, observe: Observer | None = None) -> Outputs:
    """The float64 forward on exactly the numbers a backend was given (its dtype, upcast), every layer kept.

    ``observe`` (module docstring) watches every step of every layer and direction.
    """
    if is_linear(cfg):  # the sequential loop in float64; a linear cell has no gates to observe
        return linear_numpy.reference(cfg, params, x)
    p64 = {k: v.astype(np.float64) for k, v in params.items()}
    return forward(cfg, p64, x.astype(np.float64), keep_layers=True, observe=observe)


def forward(
    cfg: RunConfig,
    params: dict[str, np.ndarray],
    x: np.ndarray,
    hoist: bool = True,
    keep_layers: bool = False,
    observe: Observer | None = None,
) -> Outputs:
    """Run every layer and direction; layer l>0 reads the concatenated outputs of layer l-1."""
    return run(cfg, pack(cfg, params), x, hoist, keep_layers, observe)


def run(
    cfg: RunConfig,
    packed: list[list[Weights]],
    x: np.ndarray,
    hoist: bool = True,
    keep_layers: bool = False,
    observe: Observer | None = None,
) -> Outputs:
    """The forward on packed weights. Layer outputs are kept in the job's layout; ``layers`` holds time-major views."""
    with np.errstate(over="ignore"):
        inp, ho, n_dir = x, out_size(cfg), directions(cfg)
        h_n, c_n, layers = [], [], []
        for k, row in enumerate(packed):
            out = np.empty(inp.shape[:2] + (n_dir * ho,), x.dtype)
            for d, w in enumerate(row):
                dest = _time_major(cfg, out)[:, :, d * ho : (d + 1) * ho]
                hook = observe(k, d) if observe is not None else None
                h, c = _run_direction(cfg, w, inp, dest, d == 1, hoist, hook)
                h_n.append(h)
                c_n.append(c)
            layers.append(_time_major(cfg, out))
            inp = out
    c_n = np.stack(c_n) if cfg.cell is Cell.lstm else None
    return Outputs(inp, np.stack(h_n), c_n, layers if keep_layers else None)


def _time_major(cfg: RunConfig, a: np.ndarray) -> np.ndarray:
    return a.swapaxes(0, 1) if cfg.batch_first else a


def _project(cfg: RunConfig, w: Weights, inp: np.ndarray) -> np.ndarray:
    """x W_ih^T + bias for every timestep in one product, computed in ``inp``'s own layout; returns (T, B, G*H)."""
    xw = inp.reshape(-1, inp.shape[-1]) @ w.w_ih_t
    if w.bias_x is not None:
        xw += w.bias_x
    return _time_major(cfg, xw.reshape(inp.shape[:2] + (-1,)))


def _run_direction(
    cfg: RunConfig,
    w: Weights,
    inp: np.ndarray,
    dest: np.ndarray,
    reverse: bool,
    hoist: bool,
    hook: StepHook | None = None,
):
    """Step through time (backwards for the reverse direction), writing h_t to dest[t]; return (h_T, c_T)."""
    seq = _time_major(cfg, inp)
    steps, batch = seq.shape[:2]
    dt = seq.dtype
    xw = _project(cfg, w, inp) if hoist else None
    gates = np.empty((batch, w.w_hh_t.shape[1]), dt)
    xi = None if hoist else np.empty_like(gates)
    tmp = np.empty((batch, cfg.hidden_size), dt)  # LSTM's i*g and o*tanh(c)
    h = np.zeros((batch, out_size(cfg)), dt)
    c = np.zeros((batch, cfg.hidden_size), dt) if cfg.cell is Cell.lstm else None
    step = STEPS[cfg.cell]
    for t in range(steps - 1, -1, -1) if reverse else range(steps):
        if hoist:
            xt = xw[t]
        else:
            xt = np.matmul(seq[t], w.w_ih_t, out=xi)
            if w.bias_x is not None:
                xt += w.bias_x
        step(cfg, w, xt, h, c, gates, tmp, dest[t])
        h = dest[t]
        if hook is not None:
            hook(gates, c, h)
    return h, c
