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
GRU ``gates`` holds every gate's activation, (B, G*H) in ``PACKED_GATES`` order; for an rnn it
holds an intermediate (sigmoid(2a) for tanh, a for relu) and ``h`` is the activation; ``c`` is an
LSTM's cell state after the step (else None); ``h`` the state just written. The buffers are
reused at the next step: a hook reads them, never keeps or writes them. Without an observer the
loop pays one ``is None`` test per step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from rnnexp.backends import Outputs, Prepared
from rnnexp.config import Cell, ConfigError, Device, Nonlinearity, RunConfig
from rnnexp.linear import is_linear
from rnnexp.linear import numpy_backend as linear_numpy
from rnnexp.params import directions, out_size, suffix

StepHook = Callable[[np.ndarray, "np.ndarray | None", np.ndarray], None]  # (gates, c, h) after each step
Observer = Callable[[int, int], "StepHook | None"]  # (layer, direction) -> that part's hook, or None
PACKED_GATES = {Cell.rnn: ("h",), Cell.lstm: ("i", "f", "o", "g"), Cell.gru: ("r", "z", "n")}  # the loop's order


def check(cfg: RunConfig) -> None:
    if cfg.device is Device.cuda:
        raise ConfigError("device", "cuda", f"backend={cfg.backend} runs on cpu only (allowed: cpu, auto)")


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
        from rnnexp.linear import grad

        return grad.gradients(cfg, params, x, d_output, d_h_n)
    from rnnexp.backends import numpy_grad  # it builds on this module: imported here, not at the top

    return numpy_grad.gradients(cfg, params, x, d_output, d_h_n, d_c_n)


def prepare_training(*args, **kwargs):
    """The numpy backend in mode=training: the hand-written BPTT timed as a contender (``numpy_grad``)."""
    if is_linear(args[0]):
        from rnnexp.linear import grad

        return grad.prepare_training(*args, **kwargs)
    from rnnexp.backends import numpy_grad

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


@dataclass(frozen=True)
class Weights:
    """One layer and direction, packed for the loop (gate columns in ``gate_order``'s order)."""

    w_ih_t: np.ndarray  # (in_features, G*H)
    w_hh_t: np.ndarray  # (H_out, G*H)
    bias_x: np.ndarray | None  # (G*H,): b_ih + b_hh, except GRU's n block (b_in only); None without bias
    b_hn: np.ndarray | None  # GRU's recurrent n bias, added before the reset product
    w_hr_t: np.ndarray | None  # (H, proj_size) for a projecting LSTM


def gate_order(cfg: RunConfig) -> tuple[np.ndarray, np.ndarray]:
    """Row order of the packed gates (LSTM: i, f, o, g) and each row's scale: -1 sigmoid, -2 tanh, 1 relu."""
    h = cfg.hidden_size
    blocks = {Cell.rnn: (0,), Cell.lstm: (0, 1, 3, 2), Cell.gru: (0, 1, 2)}[cfg.cell]
    relu = cfg.nonlinearity is Nonlinearity.relu
    scales = {Cell.rnn: (1.0 if relu else -2.0,), Cell.lstm: (-1.0, -1.0, -1.0, -2.0), Cell.gru: (-1.0, -1.0, -2.0)}
    rows = np.concatenate([np.arange(b * h, (b + 1) * h) for b in blocks])
    return rows, np.repeat(scales[cfg.cell], h)


def pack(cfg: RunConfig, params: dict[str, np.ndarray]) -> list[list[Weights]]:
    """packed[layer][direction]: the weights in the loop's layout (see the module docstring)."""
    rows, scale = gate_order(cfg)
    h = cfg.hidden_size
    scale = scale.astype(next(iter(params.values())).dtype)

    def get(name: str, s: str) -> np.ndarray | None:
        p = params.get(name + s)
        return None if p is None else p[rows] * (scale if p.ndim == 1 else scale[:, None])

    grid = []
    for layer in range(cfg.layers):
        row = []
        for d in range(directions(cfg)):
            s = suffix(layer, d)
            b_ih, b_hh = get("bias_ih", s), get("bias_hh", s)
            bias_x, b_hn = None, None
            if b_ih is not None:
                bias_x = b_ih + b_hh
                if cfg.cell is Cell.gru:
                    bias_x[2 * h :] = b_ih[2 * h :]
                    b_hn = np.ascontiguousarray(b_hh[2 * h :])
            w_hr = params.get("weight_hr" + s)
            row.append(
                Weights(
                    w_ih_t=np.ascontiguousarray(get("weight_ih", s).T),
                    w_hh_t=np.ascontiguousarray(get("weight_hh", s).T),
                    bias_x=bias_x,
                    b_hn=b_hn,
                    w_hr_t=None if w_hr is None else np.ascontiguousarray(w_hr.T),
                )
            )
        grid.append(row)
    return grid


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
    step = _STEPS[cfg.cell]
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


def _sigmoid_of_negated(a: np.ndarray) -> np.ndarray:
    """In place: a = 1 / (1 + exp(a)), the sigmoid of -a (exp may overflow to inf: 1/inf = 0 is right)."""
    np.exp(a, out=a)
    a += 1
    return np.reciprocal(a, out=a)


def _tanh_from_sigmoid(s: np.ndarray, out: np.ndarray | None = None) -> None:
    """out = 2 * s - 1 (into s itself without ``out``): tanh(a) from s = sigmoid(2a)."""
    out = s if out is None else out
    np.multiply(s, 2, out=out)
    out -= 1


def _rnn_step(cfg, w, xt, h, c, gates, tmp, dest):
    np.matmul(h, w.w_hh_t, out=gates)  # a contiguous buffer: faster to write than the strided dest
    gates += xt
    if cfg.nonlinearity is Nonlinearity.tanh:
        _tanh_from_sigmoid(_sigmoid_of_negated(gates), out=dest)  # gates held -2a
    else:
        np.maximum(gates, 0, out=dest)


def _lstm_step(cfg, w, xt, h, c, gates, tmp, dest):
    hs = cfg.hidden_size
    np.matmul(h, w.w_hh_t, out=gates)
    gates += xt
    _sigmoid_of_negated(gates)  # held -a_i, -a_f, -a_o, -2a_g: now sigmoid(a_i), ..., sigmoid(2a_g)
    i, f, o, g = (gates[:, k * hs : (k + 1) * hs] for k in range(4))
    _tanh_from_sigmoid(g)
    c *= f  # c = f*c + i*g
    np.multiply(i, g, out=tmp)
    c += tmp
    hidden = tmp if w.w_hr_t is not None else dest
    np.tanh(c, out=hidden)
    hidden *= o  # h = o * tanh(c)
    if w.w_hr_t is not None:
        np.matmul(hidden, w.w_hr_t, out=dest)


def _gru_step(cfg, w, xt, h, c, gates, tmp, dest):
    hs = cfg.hidden_size
    np.matmul(h, w.w_hh_t, out=gates)
    rz, n = gates[:, : 2 * hs], gates[:, 2 * hs :]
    rz += xt[:, : 2 * hs]
    _sigmoid_of_negated(rz)
    r, z = rz[:, :hs], rz[:, hs:]
    if w.b_hn is not None:
        n += w.b_hn  # b_hn stays inside the reset product, as in nn.GRU
    n *= r
    n += xt[:, 2 * hs :]
    _tanh_from_sigmoid(_sigmoid_of_negated(n))  # n held -2 * (x_n + r * h_n)
    np.subtract(h, n, out=dest)  # h' = n + z * (h - n) = (1 - z) * n + z * h
    dest *= z
    dest += n


_STEPS = {Cell.rnn: _rnn_step, Cell.lstm: _lstm_step, Cell.gru: _gru_step}
