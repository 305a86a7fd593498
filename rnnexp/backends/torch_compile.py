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
from rnnexp.backends._torch import STEPS, check, fetch_triple, resolve_device, synchronizer, to_tensors
from rnnexp.config import Cell, Nonlinearity, RunConfig
from rnnexp.params import directions, out_size, suffix

__all__ = ["check", "prepare"]


def _forward(cfg: RunConfig, w: dict[str, torch.Tensor], x: torch.Tensor, step):
    seq = x.transpose(0, 1) if cfg.batch_first else x
    steps, batch = seq.shape[0], seq.shape[1]
    relu = cfg.nonlinearity is Nonlinearity.relu
    h_n, c_n = [], []
    for layer in range(cfg.layers):
        outs = []
        for d in range(directions(cfg)):
            s = suffix(layer, d)
            xw = F.linear(seq, w[f"weight_ih{s}"], w.get(f"bias_ih{s}"))  # all timesteps at once
            h = seq.new_zeros(batch, out_size(cfg))
            c = seq.new_zeros(batch, cfg.hidden_size)
            out = [None] * steps
            for t in reversed(range(steps)) if d else range(steps):
                h, c = step(xw[t], h, c, w[f"weight_hh{s}"], w.get(f"bias_hh{s}"), w.get(f"weight_hr{s}"), relu)
                out[t] = h
            outs.append(torch.stack(out))
            h_n.append(h)
            c_n.append(c)
        seq = torch.cat(outs, dim=-1)
    output = seq.transpose(0, 1) if cfg.batch_first else seq
    return output, torch.stack(h_n), torch.stack(c_n) if cfg.cell is Cell.lstm else None


def prepare(cfg: RunConfig, params: dict[str, np.ndarray], x: np.ndarray) -> Prepared:
    device = resolve_device(cfg)
    weights = to_tensors(params, device)
    xt = torch.from_numpy(x).to(device)
    step = torch.compile(STEPS[cfg.cell], dynamic=False, fullgraph=True)
    sync = synchronizer(device)
    start = time.perf_counter()
    with torch.inference_mode():
        _forward(cfg, weights, xt, step)  # compiles; later calls reuse the graph
    sync()
    return Prepared(
        call=lambda: _forward(cfg, weights, xt, step),
        fetch=fetch_triple,
        sync=sync,
        context=torch.inference_mode,
        device=device.type,
        compile_s=time.perf_counter() - start,
    )
