"""The work of one forward pass, counted from the configuration alone (no run needed).

FLOPs per forward. With T = timesteps, B = batch_size, H = hidden_size, P = proj_size,
H_out = P or H, D = 2 if bidirectional else 1, G = gates (rnn 1, lstm 4, gru 3), and the
input width of layer l  I_0 = input_size, I_l = D * H_out (l > 0):

    flops = sum over layers l and directions:  T * B * ( 2*G*H*I_l          input projection
                                                        + 2*G*H*H_out       recurrent product
                                                        + 2*H*P             LSTM projection (P > 0 only)
                                                        + E*H               elementwise, per cell
                                                        + 2*G*H*bias )      two bias vectors (bias = 0 or 1)

A matrix product (m x k) @ (k x n) counts 2*m*n*k (one multiply and one add per term). Every
elementwise add, subtract, multiply and every activation value (tanh, sigmoid, relu) counts as 1
FLOP, per element. E counts one hidden unit's elementwise work per step, biases excluded:

- rnn  E = 2:  x-part + h-part, activation.
- lstm E = 13: x-part + h-part for 4 gates (4), 3 sigmoids + 1 tanh (4), c = f*c + i*g (3),
  tanh(c) (1), h = o * tanh(c) (1).
- gru  E = 10: x-part + h-part for r, z, n (3), r * (h-part of n) (1), 2 sigmoids + 1 tanh (3),
  h = n + z*(h - n) (3).

The recurrent product is counted at every step, the first (on h_0 = 0) included, as backends
do that work. Reversing, concatenating and copying move data and count 0. The model counts the
maths of the definition, not an implementation: a backend that folds b_hh into the input
projection still gets credit for both bias adds.

>>> from rnnexp.config import RunConfig
>>> forward_flops(RunConfig())  # the tutorial's cell: T=10, B=1, I=5, H=8
2400
"""

from __future__ import annotations

from rnnexp.config import Cell, RunConfig
from rnnexp.params import GATES, directions, out_size

# Elementwise FLOPs per hidden unit per step, biases excluded (see the module docstring).
ELEMENTWISE = {Cell.rnn: 2, Cell.lstm: 13, Cell.gru: 10}


def layer_input_size(cfg: RunConfig, layer: int) -> int:
    """Features into ``layer``: input_size for the first, the previous layer's D * H_out after."""
    return cfg.input_size if layer == 0 else directions(cfg) * out_size(cfg)


def matmul_flops(cfg: RunConfig) -> int:
    """FLOPs of the matrix products: input projection, recurrent product and LSTM projection."""
    t_b, gh, ho = cfg.timesteps * cfg.batch_size, GATES[cfg.cell] * cfg.hidden_size, out_size(cfg)
    per_direction = [
        2 * gh * (layer_input_size(cfg, k) + ho) + 2 * cfg.hidden_size * cfg.proj_size for k in range(cfg.layers)
    ]
    return t_b * directions(cfg) * sum(per_direction)


def elementwise_flops(cfg: RunConfig) -> int:
    """FLOPs of the elementwise work: bias adds, combining the two products, activations, state updates."""
    h = cfg.hidden_size
    per_step = ELEMENTWISE[cfg.cell] * h + (2 * GATES[cfg.cell] * h if cfg.bias else 0)
    return cfg.timesteps * cfg.batch_size * cfg.layers * directions(cfg) * per_step


def forward_flops(cfg: RunConfig) -> int:
    """FLOPs of one forward pass (formula in the module docstring)."""
    return matmul_flops(cfg) + elementwise_flops(cfg)


def achieved_gflops(flops: int, seconds: float) -> float:
    """GFLOP/s for ``flops`` done in ``seconds`` (NaN when the time is not positive)."""
    return flops / seconds / 1e9 if seconds > 0 else float("nan")
