"""The torch backend of the linear cells: the shared equations in torch ops, every scan, autograd for training."""

from __future__ import annotations

import numpy as np
import torch

from rnnexp.backends import Prepared
from rnnexp.backends._torch import fetch_triple, prepare_autograd, resolve_device, synchronizer, to_tensors
from rnnexp.config import RunConfig
from rnnexp.linear import network, ops

TORCH = ops.for_torch()


def forward(cfg: RunConfig, params: dict[str, torch.Tensor], x: torch.Tensor):
    """(output, h_n, None) in nn.RNN's layout: differentiable in ``params`` and ``x``."""
    output, h_n, _, _ = network.forward(cfg, params, x, TORCH)
    return output, h_n, None


def prepare(cfg: RunConfig, params: dict[str, np.ndarray], x: np.ndarray) -> Prepared:
    device = resolve_device(cfg)
    w, xt = to_tensors(params, device), torch.from_numpy(x).to(device)
    return Prepared(
        call=lambda: forward(cfg, w, xt),
        fetch=fetch_triple,
        sync=synchronizer(device),
        context=torch.inference_mode,
        device=device.type,
    )


def prepare_training(cfg: RunConfig, params, x, d_output, d_h_n, d_c_n=None):
    """The forward with autograd recording, then ``torch.autograd.grad`` (``_torch.prepare_autograd``)."""
    device = resolve_device(cfg)
    leaves = {k: v.requires_grad_(True) for k, v in to_tensors(params, device).items()}
    xt = torch.from_numpy(x).to(device).requires_grad_(True)
    return prepare_autograd(cfg, lambda: forward(cfg, leaves, xt), xt, leaves, (d_output, d_h_n, None), device)
