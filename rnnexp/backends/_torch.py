"""What the torch backends share: device choice, threads, tensors in and NumPy arrays out."""

from __future__ import annotations

import numpy as np
import torch

from rnnexp.backends import Outputs
from rnnexp.config import ConfigError, Device, RunConfig


def check(cfg: RunConfig) -> None:
    if cfg.device is Device.cuda and not torch.cuda.is_available():
        raise ConfigError("device", "cuda", "no CUDA device is available here (allowed: cpu, auto)")


def resolve_device(cfg: RunConfig) -> torch.device:
    """cuda for device=cuda, or for device=auto when a GPU is present; else cpu."""
    if cfg.device is Device.cuda or (cfg.device is Device.auto and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


def to_tensors(params: dict[str, np.ndarray], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(v).to(device) for k, v in params.items()}


def synchronizer(device: torch.device):
    """A sync for before each clock read: waits for queued kernels on a GPU, nothing on a CPU."""
    if device.type == "cuda":
        return torch.cuda.synchronize
    return lambda: None


def fetch(result) -> Outputs:
    """(output, h_n) or (output, (h_n, c_n)) as returned by nn.RNN/GRU/LSTM, to NumPy."""
    output, state = result
    h_n, c_n = state if isinstance(state, tuple) else (state, None)
    arrays = [t.detach().cpu().numpy() if t is not None else None for t in (output, h_n, c_n)]
    return Outputs(*arrays)


def fetch_triple(result) -> Outputs:
    """(output, h_n, c_n or None) from the hand-written loops, to NumPy."""
    return Outputs(*[t.cpu().numpy() if t is not None else None for t in result])
