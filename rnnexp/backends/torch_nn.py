"""``torch.nn.RNN``/``LSTM``/``GRU`` (MKL/oneDNN on CPU, cuDNN on CUDA) under inference_mode."""

from __future__ import annotations

import numpy as np
import torch

from rnnexp.backends import Backend, Prepared
from rnnexp.backends._torch import (
    as_triple,
    check,
    fetch,
    limit_threads,
    peak_bytes,
    prepare_autograd,
    resolve_device,
    synchronizer,
    to_tensors,
)
from rnnexp.config import Cell, RunConfig
from rnnexp.linear import is_linear

__all__ = ["build_module", "check", "gemm_call", "limit_threads", "peak_bytes", "prepare", "prepare_training"]

BACKEND = Backend(
    name="torch",
    packages=("torch",),
    devices=("cpu", "cuda"),
    trains=True,
    linear_cells=True,
    peak_mem={"cpu": "torch_profiler", "cuda": "cuda_max_memory_allocated"},
    # The autograd profiler records every op of the call it watches as a kineto event, ~1.5 KiB each,
    # ~20 ops per layer-step for nn.RNN's CPU kernel: +612 MiB at 2,000 layers x 10 steps, +543 MiB at
    # 200 x 100, +296 MiB at 500 x 10 bidirectional (peak RSS of a job): 32 KiB per step.
    measure_bytes_per_step=32768,
    gemm=True,  # MKL/oneDNN, which the torch backends use
    pins_threads=True,
)

_CLASSES = {Cell.rnn: torch.nn.RNN, Cell.lstm: torch.nn.LSTM, Cell.gru: torch.nn.GRU}


def gemm_call(a: np.ndarray, b: np.ndarray, out: np.ndarray):
    """One product ``a @ b`` into ``out`` in torch (rnnexp.peak's yardstick), sharing the arrays' memory."""
    ta, tb, tout = (torch.from_numpy(m) for m in (a, b, out))
    return lambda: torch.mm(ta, tb, out=tout)


def build_module(cfg: RunConfig, params: dict[str, np.ndarray], device: torch.device) -> torch.nn.Module:
    """The nn module for ``cfg`` with ``params`` loaded (strictly: every name must match)."""
    kwargs = dict(
        input_size=cfg.input_size,
        hidden_size=cfg.hidden_size,
        num_layers=cfg.layers,
        bias=cfg.bias,
        batch_first=cfg.batch_first,
        bidirectional=cfg.bidirectional,
        device=device,
        dtype=getattr(torch, cfg.dtype.value),
    )
    if cfg.cell is Cell.rnn:
        kwargs["nonlinearity"] = cfg.nonlinearity.value
    if cfg.proj_size:
        kwargs["proj_size"] = cfg.proj_size
    module = _CLASSES[cfg.cell](**kwargs)
    module.load_state_dict(to_tensors(params, device), strict=True)
    return module.eval()


def prepare(cfg: RunConfig, params: dict[str, np.ndarray], x: np.ndarray) -> Prepared:
    if is_linear(cfg):
        from rnnexp.linear import torch_backend

        return torch_backend.prepare(cfg, params, x)
    device = resolve_device(cfg)
    module = build_module(cfg, params, device)
    xt = torch.from_numpy(x).to(device)
    return Prepared(
        call=lambda: module(xt),
        fetch=fetch,
        sync=synchronizer(device),
        context=torch.inference_mode,
        device=device.type,
    )


def prepare_training(
    cfg: RunConfig, params: dict[str, np.ndarray], x: np.ndarray, d_output: np.ndarray, d_h_n: np.ndarray, d_c_n=None
):
    """The module's forward with autograd recording, then ``torch.autograd.grad`` (``_torch.prepare_autograd``)."""
    if is_linear(cfg):
        from rnnexp.linear import torch_backend

        return torch_backend.prepare_training(cfg, params, x, d_output, d_h_n)
    device = resolve_device(cfg)
    module = build_module(cfg, params, device)
    xt = torch.from_numpy(x).to(device).requires_grad_(True)
    leaves = dict(module.named_parameters())
    return prepare_autograd(cfg, lambda: as_triple(module(xt)), xt, leaves, (d_output, d_h_n, d_c_n), device)
