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

Backward (``mode=training``): every matrix product of the forward, (m x k)(k x n) = C, has two in
the backward, each of the same size: dA = dC B^T towards the data (the layer input, h_{t-1}, the
pre-projection h) and dB = A^T dC towards the weights. So

    bwd_flops = 2 * matmul_flops                                      half data, half weights
              + sum over layers and directions:  T * B * ( E_bwd*H    elementwise adjoint, per cell
                                                         + 2*G*H*bias )  the two bias gradients (column sums)

- rnn  E_bwd = 4:  dh = dy + carried (1), f'(a): 1 - h^2 (2; relu's mask counted alike), dA = dh * f' (1).
- lstm E_bwd = 23: dh = dy + carried (1), do = dh * tanh(c) (1), dc = dh * o * (1 - tanh(c)^2) + dc_next (5),
  di, df, dg and dc_prev = dc * f (4), sigmoid' = s(1 - s) and its product for i, f, o (9), tanh' = 1 - g^2
  and its product (3).
- gru  E_bwd = 18: dh = dy + carried (1), dn = dh * (1 - z) (2), dz = dh * (h - n) (2), dA_n = dn * (1 - n^2) (3),
  dr = dA_n * (W_hn h + b_hn) (1), d(W_hn h) = dA_n * r (1), dA_r = dr * r(1 - r) (3), dA_z = dz * z(1 - z) (3),
  dh_prev = dh * z + the recurrent product (2).

As in the forward, the recurrent products are counted at every step (the first step's dh_0 and
its zero dW_hh term included) and the model counts the maths, not an implementation. Summing the
two directions' input gradients is the accumulate of their products (cuDNN's beta = 1), not counted.

The peers' conventions, from the same configuration:

- DeepBench (``deepbench_phase_flops``): recurrent GEMMs only, 2*G*H*H_out per step-row, layer and
  direction, and each of forward, backward-data and backward-weights is charged that same figure.
- benchdnn (``benchdnn_flops``): every GEMM (input, recurrent, projection: our ``matmul_flops``),
  backward (data + weights) twice the forward; no elementwise work ("no theoretical number of ops
  for the post-gemm operations", its count_ops).

>>> from rnnexp.config import RunConfig
>>> forward_flops(RunConfig())  # the tutorial's cell: T=10, B=1, I=5, H=8
2400
>>> backward_flops(RunConfig())  # 10 * (2*(80 + 128) + 4*8 + 2*8)
4640
"""

from __future__ import annotations

from rnnexp.config import Cell, RunConfig
from rnnexp.params import GATES, directions, out_size

# The linear cells (mingru, minlstm, lru, s6) have their own work model, with their scans: rnnexp.linear.work.
LINEAR_CELLS = (Cell.mingru, Cell.minlstm, Cell.lru, Cell.s6)


def linear_work():
    from rnnexp.linear import work

    return work


# Elementwise FLOPs per hidden unit per step, biases excluded (see the module docstring).
ELEMENTWISE = {Cell.rnn: 2, Cell.lstm: 13, Cell.gru: 10}


def layer_input_size(cfg: RunConfig, layer: int) -> int:
    """Features into ``layer``: input_size for the first, the previous layer's D * H_out after."""
    return cfg.input_size if layer == 0 else directions(cfg) * out_size(cfg)


def matmul_flops(cfg: RunConfig) -> int:
    """FLOPs of the matrix products: input projection, recurrent product and LSTM projection."""
    if cfg.cell in LINEAR_CELLS:
        return linear_work().matmul_flops(cfg)
    t_b, gh, ho = cfg.timesteps * cfg.batch_size, GATES[cfg.cell] * cfg.hidden_size, out_size(cfg)
    per_direction = [
        2 * gh * (layer_input_size(cfg, k) + ho) + 2 * cfg.hidden_size * cfg.proj_size for k in range(cfg.layers)
    ]
    return t_b * directions(cfg) * sum(per_direction)


def elementwise_flops(cfg: RunConfig) -> int:
    """FLOPs of the elementwise work: bias adds, combining the two products, activations, state updates."""
    if cfg.cell in LINEAR_CELLS:
        return linear_work().elementwise_flops(cfg)
    h = cfg.hidden_size
    per_step = ELEMENTWISE[cfg.cell] * h + (2 * GATES[cfg.cell] * h if cfg.bias else 0)
    return cfg.timesteps * cfg.batch_size * cfg.layers * directions(cfg) * per_step


def forward_flops(cfg: RunConfig) -> int:
    """FLOPs of one forward pass (formula in the module docstring)."""
    return matmul_flops(cfg) + elementwise_flops(cfg)


# Elementwise FLOPs per hidden unit per step of the backward, biases excluded (see the module docstring).
ELEMENTWISE_BWD = {Cell.rnn: 4, Cell.lstm: 23, Cell.gru: 18}


def backward_elementwise_flops(cfg: RunConfig) -> int:
    """FLOPs of the backward's elementwise work: the adjoint of each cell's arithmetic and the bias gradients."""
    h = cfg.hidden_size
    per_step = ELEMENTWISE_BWD[cfg.cell] * h + (2 * GATES[cfg.cell] * h if cfg.bias else 0)
    return cfg.timesteps * cfg.batch_size * cfg.layers * directions(cfg) * per_step


def backward_flops(cfg: RunConfig) -> int:
    """FLOPs of one full backward, data and weights (formula in the module docstring): the ``bwd_flops`` column."""
    if cfg.cell in LINEAR_CELLS:
        return linear_work().backward_flops(cfg)
    return 2 * matmul_flops(cfg) + backward_elementwise_flops(cfg)


def training_flops(cfg: RunConfig) -> int:
    """FLOPs of one training step: forward plus full backward (what a training row's GFLOP/s divides)."""
    return forward_flops(cfg) + backward_flops(cfg)


def backward_phase_matmul_flops(cfg: RunConfig) -> tuple[int, int]:
    """Matrix-product FLOPs of (bwd_data, bwd_weights) when each phase runs alone, as the phase columns time them.

    Towards the input: every data product (``matmul_flops``). Towards the parameters: every weight
    product (``matmul_flops``) plus the data products the recurrent adjoint and the lower layers still
    need, i.e. all but layer 0's input projection. Their sum exceeds the full backward's share by those.
    """
    layer0_input = cfg.timesteps * cfg.batch_size * directions(cfg) * 2 * GATES[cfg.cell] * cfg.hidden_size
    layer0_input *= cfg.input_size
    return matmul_flops(cfg), 2 * matmul_flops(cfg) - layer0_input


def recurrent_matmul_flops(cfg: RunConfig) -> int:
    """FLOPs of the recurrent products h_{t-1} W_hh^T alone, every step, layer and direction."""
    gh = GATES[cfg.cell] * cfg.hidden_size
    return cfg.timesteps * cfg.batch_size * cfg.layers * directions(cfg) * 2 * gh * out_size(cfg)


def deepbench_phase_flops(cfg: RunConfig) -> int:
    """DeepBench's convention: recurrent GEMMs only, the same figure for forward, backward-data and backward-weights."""
    return recurrent_matmul_flops(cfg)


def benchdnn_flops(cfg: RunConfig) -> tuple[int, int]:
    """benchdnn's convention (its rnn ``count_ops``): (forward, backward) = every GEMM, and twice that backward."""
    return matmul_flops(cfg), 2 * matmul_flops(cfg)


def achieved_gflops(flops: int, seconds: float) -> float:
    """GFLOP/s for ``flops`` done in ``seconds`` (NaN when the time is not positive)."""
    return flops / seconds / 1e9 if seconds > 0 else float("nan")
