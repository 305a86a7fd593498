"""``torch.compile`` of the recurrence step, with the input projection hoisted out of the loop.

Why the step and not the whole forward: dynamo refuses ``nn.RNN``/``LSTM``/``GRU`` unless
``torch._dynamo.config.allow_rnn`` is set and then compiles for 40-90 s; an unrolled loop
compiles in time that grows with timesteps x layers. The step is one small graph whose
compile cost does not depend on the sequence, and it is where fusion pays: the gate
arithmetic becomes one kernel. The compile runs in ``prepare`` and is reported as ``compile_s``.
"""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F

from rnnexp.backends import Prepared
from rnnexp.backends._torch import STEPS, check, fetch_triple, resolve_device, run_layers, synchronizer, to_tensors
from rnnexp.config import Nonlinearity, RunConfig
from rnnexp.params import suffix

__all__ = ["check", "prepare"]


def _stepper(cfg: RunConfig, w: dict[str, torch.Tensor], step):
    relu = cfg.nonlinearity is Nonlinearity.relu

    def for_direction(layer: int, d: int, seq: torch.Tensor):
        s = suffix(layer, d)
        xw = F.linear(seq, w[f"weight_ih{s}"], w.get(f"bias_ih{s}"))  # all timesteps at once
        w_hh, b_hh, w_hr = w[f"weight_hh{s}"], w.get(f"bias_hh{s}"), w.get(f"weight_hr{s}")
        return lambda t, h, c: step(xw[t], h, c, w_hh, b_hh, w_hr, relu)

    return for_direction


def prepare(cfg: RunConfig, params: dict[str, np.ndarray], x: np.ndarray) -> Prepared:
    device = resolve_device(cfg)
    weights = to_tensors(params, device)
    xt = torch.from_numpy(x).to(device)
    stepper = _stepper(cfg, weights, torch.compile(STEPS[cfg.cell], dynamic=False, fullgraph=True))
    sync = synchronizer(device)
    start = time.perf_counter()
    with torch.inference_mode():
        run_layers(cfg, xt, stepper)  # compiles; later calls reuse the graph
    sync()
    return Prepared(
        call=lambda: run_layers(cfg, xt, stepper),
        fetch=fetch_triple,
        sync=sync,
        context=torch.inference_mode,
        device=device.type,
        compile_s=time.perf_counter() - start,
    )
