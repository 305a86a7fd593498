"""The FLOP model (forward and backward) against hand counts, its matrix-product part against torch's own FLOP
counter, and the peers' conventions."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from rnnexp import backends
from rnnexp.backends.training import cotangents
from rnnexp.config import Cell, RunConfig
from rnnexp.flops import (
    achieved_gflops,
    backward_elementwise_flops,
    backward_flops,
    backward_phase_matmul_flops,
    benchdnn_flops,
    deepbench_phase_flops,
    elementwise_flops,
    forward_flops,
    matmul_flops,
    training_flops,
)
from rnnexp.params import GATES, directions, make_inputs, make_params, out_size


def tiny(cell: str, **kw) -> RunConfig:
    base = dict(input_size=2, hidden_size=3, timesteps=1, batch_size=1, layers=1, bidirectional=False, bias=True)
    return RunConfig(cell=Cell(cell), **{**base, **kw})


# Each case: the configuration, then the hand count written out term by term, with
# I = input features of the layer, H = 3, G = gates; "x-proj" = 2*G*H*I, "rec" = 2*G*H*H_out,
# "elem" = the cell's elementwise ops per unit * H, "bias" = 2 * G*H.
HAND_COUNTS = {
    # rnn, 1 layer, 1 direction, T=B=1: x-proj 2*3*2=12, rec 2*3*3=18, elem (add, tanh) 2*3=6, bias 3+3=6
    "rnn": (tiny("rnn"), 12 + 18 + 6 + 6),
    # rnn, no bias: 12 + 18 + 6
    "rnn_nobias": (tiny("rnn", bias=False), 12 + 18 + 6),
    # rnn, T=4, B=5 (20 step-rows), 2 layers, 2 directions, no bias:
    #   layer 0, each direction: 12 + 18 + 6 = 36 per step-row
    #   layer 1 reads 2*3 = 6 features: x-proj 2*3*6=36, rec 18, elem 6 = 60 per step-row
    "rnn_2l_bi": (tiny("rnn", timesteps=4, batch_size=5, layers=2, bidirectional=True, bias=False), 20 * 2 * (36 + 60)),
    # lstm, 1 layer, T=B=1: x-proj 2*12*2=48, rec 2*12*3=72,
    #   elem 3*(4 adds + 3 sigmoid + 1 tanh + 3 for c + tanh(c) + o*) = 3*13 = 39, bias 12+12=24
    "lstm": (tiny("lstm"), 48 + 72 + 39 + 24),
    # lstm, 3 layers, 2 directions, T=2, B=3 (6 step-rows), bias:
    #   layer 0: 48 + 72 + 39 + 24 = 183; layers 1, 2 read 6 features: x-proj 2*12*6=144 -> 144+72+39+24 = 279
    "lstm_3l_bi": (tiny("lstm", timesteps=2, batch_size=3, layers=3, bidirectional=True), 6 * 2 * (183 + 279 + 279)),
    # lstm, proj_size=2 (H_out = 2), 2 layers, 1 direction, T=2, B=1, bias:
    #   x-proj 2*12*2=48 (layer 1 reads H_out=2 too), rec 2*12*2=48, projection 2*3*2=12, elem 39, bias 24 = 171
    "lstm_proj": (tiny("lstm", proj_size=2, timesteps=2, layers=2), 2 * (171 + 171)),
    # lstm, proj_size=1, 2 directions, 2 layers, T=1, B=1, no bias:
    #   layer 0: x-proj 48, rec 2*12*1=24, projection 2*3*1=6, elem 39 = 117
    #   layer 1 reads 2*1 = 2 features: the same 117
    "lstm_proj_bi": (tiny("lstm", proj_size=1, layers=2, bidirectional=True, bias=False), 2 * (117 + 117)),
    # gru, 1 layer, T=B=1: x-proj 2*9*2=36, rec 2*9*3=54,
    #   elem 3*(3 adds + r*h_n + 2 sigmoid + tanh + 3 for n + z*(h-n)) = 3*10 = 30, bias 9+9 = 18
    "gru": (tiny("gru"), 36 + 54 + 30 + 18),
    # gru, 2 layers, 2 directions, T=2, B=2 (4 step-rows), no bias:
    #   layer 0: 36 + 54 + 30 = 120; layer 1 reads 6: x-proj 2*9*6=108 -> 108 + 54 + 30 = 192
    "gru_2l_bi": (
        tiny("gru", timesteps=2, batch_size=2, layers=2, bidirectional=True, bias=False),
        4 * 2 * (120 + 192),
    ),
    # gru, 3 layers, 1 direction, T=3, B=1, bias: every layer reads 3 features after the first:
    #   layer 0: 36 + 54 + 30 + 18 = 138; layers 1, 2: x-proj 2*9*3=54 -> 54 + 54 + 30 + 18 = 156
    "gru_3l": (tiny("gru", timesteps=3, layers=3), 3 * (138 + 156 + 156)),
}


@pytest.mark.parametrize("case", HAND_COUNTS)
def test_forward_flops_matches_hand_count(case):
    cfg, expected = HAND_COUNTS[case]
    assert forward_flops(cfg) == expected


def test_the_tutorial_cell():
    # T=10, B=1, I=5, H=8: 10 * (2*8*5 + 2*8*8 + 2*8 + 2*8) = 10 * 240
    assert forward_flops(RunConfig()) == 2400


def test_medium_and_large_rnn():
    # The benchmark configs: T=100, B=32 / 64, I=H=256 / 1024, rnn, bias.
    medium = RunConfig(input_size=256, hidden_size=256, timesteps=100, batch_size=32)
    large = RunConfig(input_size=1024, hidden_size=1024, timesteps=100, batch_size=64)
    assert matmul_flops(medium) == 100 * 32 * 2 * 256 * (256 + 256) == 838_860_800
    assert elementwise_flops(medium) == 100 * 32 * 4 * 256
    assert matmul_flops(large) == 100 * 64 * 2 * 1024 * 2048 == 26_843_545_600


def test_parts_add_up():
    cfg = tiny("lstm", proj_size=2, layers=2, bidirectional=True)
    assert forward_flops(cfg) == matmul_flops(cfg) + elementwise_flops(cfg)


CONFIGS = [
    tiny(cell, proj_size=proj, input_size=4, hidden_size=5, timesteps=6, batch_size=3, layers=layers, bidirectional=bi)
    for cell, proj in [("rnn", 0), ("lstm", 0), ("lstm", 2), ("gru", 0)]
    for layers in (1, 2)
    for bi in (False, True)
]


@pytest.mark.parametrize(
    "cfg", CONFIGS, ids=lambda c: f"{c.cell.value}-p{c.proj_size}-L{c.layers}-bi{int(c.bidirectional)}"
)
def test_matmul_flops_match_torch_flop_counter(cfg):
    # torch counts 2*m*n*k per addmm/mm; the cell loop runs one product per gate block, step and direction.
    prepared = backends.load("torch_cell").prepare(cfg, make_params(cfg), make_inputs(cfg))
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        prepared.call()
    assert counter.get_total_flops() == matmul_flops(cfg)


def test_achieved_gflops():
    assert achieved_gflops(2_000_000_000, 0.5) == 4.0
    assert achieved_gflops(1, 0.0) != achieved_gflops(1, 0.0)  # NaN


# ---- the backward (mode=training) ----

# Each case: the configuration, then the backward by hand: every forward product twice, plus
# E_bwd * H per step-row, layer and direction (rnn 4, lstm 23, gru 18), plus 2*G*H for the bias sums.
BACKWARD_HAND_COUNTS = {
    # rnn, T=B=1, I=2, H=3: products 2 * (12 + 18) = 60, elem 4*3 = 12, bias 3 + 3 = 6
    "rnn": (tiny("rnn"), 60 + 12 + 6),
    # rnn, T=4, B=5, 2 layers, 2 directions, no bias: products 2 * 20 * 2 * (30 + 54) = 6720, elem 20*2*2*12 = 960
    "rnn_2l_bi": (tiny("rnn", timesteps=4, batch_size=5, layers=2, bidirectional=True, bias=False), 6720 + 960),
    # lstm, T=B=1: products 2 * (48 + 72) = 240, elem 23*3 = 69, bias 12 + 12 = 24
    "lstm": (tiny("lstm"), 240 + 69 + 24),
    # lstm, proj_size=2, 2 layers, T=2: products 2 * 2 * 2 * (48 + 48 + 12) = 864, elem 2*2*69 = 276, bias 2*2*24 = 96
    "lstm_proj": (tiny("lstm", proj_size=2, timesteps=2, layers=2), 864 + 276 + 96),
    # gru, T=B=1: products 2 * (36 + 54) = 180, elem 18*3 = 54, bias 9 + 9 = 18
    "gru": (tiny("gru"), 180 + 54 + 18),
}


@pytest.mark.parametrize("case", BACKWARD_HAND_COUNTS)
def test_backward_flops_match_hand_count(case):
    cfg, expected = BACKWARD_HAND_COUNTS[case]
    assert backward_flops(cfg) == expected
    assert backward_flops(cfg) == 2 * matmul_flops(cfg) + backward_elementwise_flops(cfg)
    assert training_flops(cfg) == forward_flops(cfg) + expected


def test_the_peers_conventions():
    # DeepBench's LSTM H=512, N=16, T=25 and benchdnn's with input size 512, from our model.
    lstm = RunConfig(cell=Cell.lstm, hidden_size=512, input_size=512, batch_size=16, timesteps=25)
    assert deepbench_phase_flops(lstm) == 838_860_800  # 2 * 4*512 * 512 * 16 * 25, per phase
    assert benchdnn_flops(lstm) == (1_677_721_600, 3_355_443_200)
    assert matmul_flops(lstm) == 1_677_721_600 and 2 * matmul_flops(lstm) == 3_355_443_200
    # benchdnn's count_ops adds the projection product: 2 * dhc * mb * dic per cell.
    proj = RunConfig(cell=Cell.lstm, hidden_size=8, proj_size=3, input_size=5, batch_size=2, timesteps=4)
    assert benchdnn_flops(proj)[0] == 4 * 2 * (2 * 32 * (5 + 3) + 2 * 8 * 3)


def _first_step_data_products(cfg: RunConfig) -> int:
    """What torch skips: dL/dh_0 at each layer and direction's first step (h_0 is a constant, it wants no gradient)."""
    return cfg.layers * directions(cfg) * cfg.batch_size * 2 * GATES[cfg.cell] * cfg.hidden_size * out_size(cfg)


@pytest.mark.parametrize(
    "cfg", CONFIGS, ids=lambda c: f"{c.cell.value}-p{c.proj_size}-L{c.layers}-bi{int(c.bidirectional)}"
)
def test_backward_matmul_flops_match_torch_flop_counter(cfg):
    # torch's counter over autograd through the cell loop: the step and each phase alone, products only.
    prepared = backends.load("torch_cell").prepare_training(cfg, make_params(cfg), make_inputs(cfg), *cotangents(cfg))
    skipped = _first_step_data_products(cfg)
    with FlopCounterMode(display=False) as counter:
        prepared.step()
    assert counter.get_total_flops() == matmul_flops(cfg) + 2 * matmul_flops(cfg) - skipped
    recorded = prepared.forward()
    data, weights = backward_phase_matmul_flops(cfg)
    with FlopCounterMode(display=False) as counter:
        prepared.backward_data(recorded)
    assert counter.get_total_flops() == data - skipped
    with FlopCounterMode(display=False) as counter:
        prepared.backward_weights(recorded)
    assert counter.get_total_flops() == weights - skipped
