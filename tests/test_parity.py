"""The NumPy reference and every backend against torch.nn.RNN/LSTM/GRU, the external referee."""

import itertools

import numpy as np
import pytest
import torch

from rnnexp.backends.numpy_ref import forward
from rnnexp.backends.torch_nn import build_module
from rnnexp.params import make_inputs, make_params

# Every layout a forward can take: depth, direction, batch layout, bias, batch size.
LAYOUTS = [
    dict(layers=layers, bidirectional=bi, batch_first=bf, bias=bias, batch_size=batch)
    for layers, bi, bf, bias, batch in itertools.product([1, 2, 3], [False, True], [True, False], [True, False], [1, 3])
]
CELLS = [("rnn", "tanh", 0), ("rnn", "relu", 0), ("lstm", "tanh", 0), ("lstm", "tanh", 3), ("gru", "tanh", 0)]


def overrides(layout: dict, cell: str, nonlinearity: str, proj: int, dtype: str = "float64") -> list[str]:
    items = dict(layout, cell=cell, nonlinearity=nonlinearity, proj_size=proj, dtype=dtype, hidden_size=6, timesteps=7)
    return [f"{k}={str(v).lower()}" for k, v in items.items()]


def torch_outputs(cfg, params, x):
    with torch.inference_mode():
        out, state = build_module(cfg, params, torch.device("cpu"))(torch.from_numpy(x))
    h, c = state if isinstance(state, tuple) else (state, None)
    return [t.numpy() if t is not None else None for t in (out, h, c)]


def max_err(got, want) -> float:
    return max(
        float(np.max(np.abs(np.asarray(a, np.float64) - b))) for a, b in zip(got, want, strict=False) if b is not None
    )


@pytest.mark.parametrize("cell, nonlinearity, proj", CELLS)
@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda d: "-".join(f"{k}{int(v)}" for k, v in d.items()))
def test_numpy_reference_matches_torch_float64(cfg_of, layout, cell, nonlinearity, proj):
    cfg = cfg_of(*overrides(layout, cell, nonlinearity, proj))
    params, x = make_params(cfg), make_inputs(cfg)
    want = torch_outputs(cfg, params, x)
    got = forward(cfg, params, x)
    assert max_err([got.output, got.h_n, got.c_n], want) <= 1e-12
