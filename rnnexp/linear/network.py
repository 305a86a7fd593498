"""Stacked, bidirectional layers of a linear cell, as nn.RNN lays them out, over any array library.

Layer l > 0 reads the concatenated outputs of layer l - 1 (directions side by side); the reverse
direction reads the sequence backwards. ``h_n`` holds each layer and direction's output after its
last step (t = T-1 forward, t = 0 reverse), (layers * D, B, H) as nn.RNN's: for mingru/minlstm that
is the state itself; lru's complex state and s6's (H, N) state per channel are not returned.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rnnexp.config import RunConfig, Scan
from rnnexp.linear import cells, scans
from rnnexp.params import directions


@dataclass
class Part:
    """One layer and direction's forward, time-major in its processing order (what the backward needs)."""

    u: Any  # (T, B, I) input
    a: Any
    b: Any
    states: Any  # h_t
    aux: dict
    y: Any  # (T, B, H) output


def run_part(cfg: RunConfig, p: dict, u, ops, kind, chunk: int, scan=scans.scan) -> Part:
    a, b, aux = cells.coefficients(cfg, p, u, ops)
    if "log_a" in aux and kind is not Scan.sequential:  # the log-space form: the parallel scans on logarithms
        states = ops.exp(scan(aux["log_a"], aux["log_b"], ops, kind, chunk, log=True))
    else:
        states = scan(a, b, ops, kind, chunk)
    return Part(u, a, b, states, aux, cells.readout(cfg, p, u, states, aux, ops))


def forward(cfg: RunConfig, params: dict, x, ops, kind=None, chunk: int | None = None, keep: bool = False, scan=None):
    """(output, h_n, layers, parts): output in the job's layout; ``layers`` every layer's time-major output;
    ``parts[layer][direction]`` each part's ``Part`` when ``keep`` (else None). ``scan(a, b, ops, kind, chunk)``
    computes the states (default ``scans.scan``; jax passes its own)."""
    kind = cfg.scan if kind is None else kind
    chunk = cfg.scan_chunk if chunk is None else chunk
    seq = _batch_layout(cfg, x)
    h_n, layers, parts = [], [], []
    for layer in range(cfg.layers):
        outs, row = [], []
        for d in range(directions(cfg)):
            p = cells.part_params(cfg, params, layer, d)
            u = ops.flip(seq) if d else seq
            part = run_part(cfg, p, u, ops, kind, chunk, scan or scans.scan)
            outs.append(ops.flip(part.y) if d else part.y)
            h_n.append(part.y[-1])
            row.append(part if keep else None)
        seq = ops.cat(outs, axis=-1) if len(outs) > 1 else outs[0]
        layers.append(seq)
        parts.append(row)
    return _batch_layout(cfg, seq), ops.stack(h_n), layers, parts


def _batch_layout(cfg: RunConfig, seq):
    """A time-major (T, B, F) sequence in the job's layout, or the job's input in time-major (the same swap)."""
    if not cfg.batch_first:
        return seq
    return seq.swapaxes(0, 1)  # numpy's, torch's and jax's arrays alike
