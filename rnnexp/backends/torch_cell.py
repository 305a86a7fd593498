"""The tutorial's memory-cell loop in torch: a Python loop over ``nn.RNNCell``/``LSTMCell``/``GRUCell``.

One cell module per layer and direction, stepped one timestep at a time. ``nn.LSTMCell`` has no
``proj_size`` (it takes its hidden size from h, which a projection shrinks), so a projected LSTM
steps with the same recurrence written in torch ops (``_torch.STEPS``), as ``nn.LSTM`` computes it.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from rnnexp.backends import Backend, Prepared
from rnnexp.backends._torch import (
    STEPS,
    check,
    fetch_triple,
    limit_threads,
    peak_bytes,
    prepare_autograd,
    resolve_device,
    run_layers,
    synchronizer,
    to_tensors,
)
from rnnexp.config import Cell, RunConfig
from rnnexp.params import directions, suffix

__all__ = ["check", "limit_threads", "peak_bytes", "prepare", "prepare_training"]

BACKEND = Backend(
    name="torch_cell",
    packages=("torch",),
    devices=("cpu", "cuda"),
    trains=True,
    peak_mem={"cpu": "torch_profiler", "cuda": "cuda_max_memory_allocated"},
    # A Python loop of torch ops: ~1.6x nn.RNN's profiler events (+1,038 MiB at 2,000 layers x 10 steps).
    measure_bytes_per_step=57344,
    step_cost_s=4e-5,  # 30-40 us per step of each layer and direction on this machine: Python calls each step
    pins_threads=True,
)

_CLASSES = {Cell.rnn: torch.nn.RNNCell, Cell.lstm: torch.nn.LSTMCell, Cell.gru: torch.nn.GRUCell}


def _cells(
    cfg: RunConfig, params: dict[str, np.ndarray], device: torch.device, requires_grad: bool = False
) -> list[list[tuple]]:
    """cells[layer][direction] = (cell module, projection weight or None)."""
    tensors = to_tensors(params, device)
    if requires_grad:  # the cells' own weights become Parameters below; the projection stays a plain leaf
        tensors = {k: v.requires_grad_(True) if k.startswith("weight_hr") else v for k, v in tensors.items()}
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
                    setattr(cell, n, torch.nn.Parameter(tensors[n + s], requires_grad=requires_grad))
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


def _leaves(cfg: RunConfig, grid) -> dict[str, torch.Tensor]:
    """Every parameter the cells hold, by PyTorch's name (``weight_ih_l0``, ``weight_hr_l1_reverse``, ...)."""
    leaves = {}
    for layer, row in enumerate(grid):
        for d, (cell, w_hr) in enumerate(row):
            s = suffix(layer, d)
            leaves.update({f"{name}{s}": p for name, p in cell.named_parameters()})
            if w_hr is not None:
                leaves[f"weight_hr{s}"] = w_hr
    return leaves


def prepare_training(
    cfg: RunConfig, params: dict[str, np.ndarray], x: np.ndarray, d_output: np.ndarray, d_h_n: np.ndarray, d_c_n=None
):
    """The cell loop with autograd recording, then ``torch.autograd.grad`` (``_torch.prepare_autograd``)."""
    device = resolve_device(cfg)
    grid = _cells(cfg, params, device, requires_grad=True)
    stepper = _stepper(cfg, grid)
    xt = torch.from_numpy(x).to(device).requires_grad_(True)
    forward = lambda: run_layers(cfg, xt, stepper)  # noqa: E731
    return prepare_autograd(cfg, forward, xt, _leaves(cfg, grid), (d_output, d_h_n, d_c_n), device)
