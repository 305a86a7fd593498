"""The tutorial's memory-cell loop in torch: a Python loop over ``nn.RNNCell``/``LSTMCell``/``GRUCell``.

One cell module per layer and direction, stepped one timestep at a time. ``nn.LSTMCell`` has no
``proj_size`` (it takes its hidden size from h, which a projection shrinks), so a projected LSTM
steps with the same recurrence written in torch ops (``_torch.STEPS``), as ``nn.LSTM`` computes it.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from rnnexp.backends import Prepared
from rnnexp.backends._torch import STEPS, check, fetch_triple, resolve_device, run_layers, synchronizer, to_tensors
from rnnexp.config import Cell, RunConfig
from rnnexp.params import directions, suffix

__all__ = ["check", "prepare"]

_CLASSES = {Cell.rnn: torch.nn.RNNCell, Cell.lstm: torch.nn.LSTMCell, Cell.gru: torch.nn.GRUCell}


def _cells(cfg: RunConfig, params: dict[str, np.ndarray], device: torch.device) -> list[list[tuple]]:
    """cells[layer][direction] = (cell module, projection weight or None)."""
    tensors = to_tensors(params, device)
    dtype = getattr(torch, cfg.dtype.value)
    grid = []
    for layer in range(cfg.layers):
        row = []
        for d in range(directions(cfg)):
            s = suffix(layer, d)
            in_size = tensors[f"weight_ih{s}"].shape[1]
            kwargs = dict(bias=cfg.bias, device=device, dtype=dtype)
            if cfg.cell is Cell.rnn:
                kwargs["nonlinearity"] = cfg.nonlinearity.value
            cell = _CLASSES[cfg.cell](in_size, cfg.hidden_size, **kwargs)
            names = ["weight_ih", "weight_hh"] + (["bias_ih", "bias_hh"] if cfg.bias else [])
            with torch.no_grad():
                for n in names:
                    setattr(cell, n, torch.nn.Parameter(tensors[n + s], requires_grad=False))
            row.append((cell.eval(), tensors.get(f"weight_hr{s}")))
        grid.append(row)
    return grid


def _stepper(cfg: RunConfig, grid):
    def for_direction(layer: int, d: int, seq: torch.Tensor):
        cell, w_hr = grid[layer][d]
        if w_hr is not None:  # projected LSTM: the same recurrence in torch ops

            def step(t, h, c):
                xi = F.linear(seq[t], cell.weight_ih, cell.bias_ih)
                return STEPS[Cell.lstm](xi, h, c, cell.weight_hh, cell.bias_hh, w_hr, False)
        elif cfg.cell is Cell.lstm:

            def step(t, h, c):
                return cell(seq[t], (h, c))
        else:

            def step(t, h, c):
                return cell(seq[t], h), c

        return step

    return for_direction


def prepare(cfg: RunConfig, params: dict[str, np.ndarray], x: np.ndarray) -> Prepared:
    device = resolve_device(cfg)
    stepper = _stepper(cfg, _cells(cfg, params, device))
    xt = torch.from_numpy(x).to(device)
    return Prepared(
        call=lambda: run_layers(cfg, xt, stepper),
        fetch=fetch_triple,
        sync=synchronizer(device),
        context=torch.inference_mode,
        device=device.type,
    )
