"""The training step (forward + backward) per backend, measured the way a ``mode=training`` job measures it.

    python benchmarks/training.py                  # medium size, rnn/lstm/gru, timing=default, 1 thread
    python benchmarks/training.py --quick          # tiny sizes, timing=quick: for CI, figures meaningless

Every figure is one ``rnnexp.backends.training.run_training`` (the job's own timer, threads, phases
and gradient check), at the medium size (T=100, B=32, I=H=256, float32):

- numpy against torch: their whole steps in ``--rounds`` interleaved rounds; the ratio is the median
  over rounds of numpy's step time / torch's in the same round (target <= 1.0, as for the forward).
- the phase split of every backend that trains (numpy, torch, torch_cell, torch_compile): step,
  forward (recording), backward to the input alone, backward to the weights alone, each a median,
  with the step's GFLOP/s (forward + backward FLOP model), its gradient check and its peak memory.

Each backward phase includes the recurrent adjoint both need, so fwd + bwd_data + bwd_weights
exceeds the step. On a shared machine timings are noisy: compare figures from the same run.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from backends import paired_ratio, timing  # noqa: E402

from rnnexp.config import Cell, Dtype, Mode, RunConfig  # noqa: E402
from rnnexp.flops import achieved_gflops, training_flops  # noqa: E402

MEDIUM = (100, 32, 256)  # timesteps, batch_size, input_size = hidden_size
QUICK = (10, 4, 32)
TRAINERS = ("numpy", "torch", "torch_cell", "torch_compile")
TARGET = 1.0  # numpy's step / torch's step, at most


def config(cell: str, backend: str, args: argparse.Namespace) -> RunConfig:
    steps, batch, features = QUICK if args.quick else MEDIUM
    return RunConfig(
        cell=Cell(cell),
        input_size=features,
        hidden_size=features,
        timesteps=steps,
        batch_size=batch,
        backend=backend,
        dtype=Dtype(args.dtype),
        threads=args.threads,
        mode=Mode.training,
        timing=timing(args.timing),
    )


def run_one(cfg: RunConfig) -> dict:
    """One training job's figures, in this process."""
    from rnnexp.backends.training import run_training
    from rnnexp.params import make_inputs, make_params

    run = run_training(cfg, make_params(cfg), make_inputs(cfg))
    cols = run.columns
    keep = ["time_median_ms", "time_iqr_ms", "noisy", "grad_max_abs_err_vs_ref", "grad_parity_ok", "bwd_flops"]
    keep += [f"{p}_time_{s}_ms" for p in ("fwd", "bwd_data", "bwd_weights") for s in ("median", "iqr")]
    out = {k: cols[k] for k in keep}
    out["gflops"] = achieved_gflops(training_flops(cfg), cols["time_median_ms"] / 1e3)
    out["peak_mem_bytes"] = run.peak_mem_bytes
    out["compile_s"] = run.prepared.compile_s
    return out


def line(backend: str, fig: dict) -> str:
    compiled = f"  compile {fig['compile_s']:.1f} s" if fig.get("compile_s") else ""
    return (
        f"  {backend:13s} step {fig['time_median_ms']:9.2f} ms (IQR {fig['time_iqr_ms']:6.2f})"
        f"  fwd {fig['fwd_time_median_ms']:8.2f}  bwd_data {fig['bwd_data_time_median_ms']:8.2f}"
        f"  bwd_weights {fig['bwd_weights_time_median_ms']:8.2f} ms  {fig['gflops']:6.2f} GFLOP/s"
        f"  grad_err {fig['grad_max_abs_err_vs_ref']:.1e} {'ok' if fig['grad_parity_ok'] else 'FAIL'}"
        f"  peak_mem {fig['peak_mem_bytes'] / 2**20:6.1f} MiB{compiled}{'  (noisy)' if fig['noisy'] else ''}"
    )


def bench_cell(cell: str, args: argparse.Namespace) -> dict:
    """numpy and torch in interleaved rounds, then the other trainers once; every backend's phase split."""
    rounds: dict[str, list[dict]] = {"numpy": [], "torch": []}
    for _ in range(args.rounds):
        for backend in rounds:
            rounds[backend].append(run_one(config(cell, backend, args)))
    figures = {}
    for backend, figs in rounds.items():
        ordered = sorted(figs, key=lambda f: f["time_median_ms"])
        figures[backend] = {**ordered[(len(ordered) - 1) // 2], "rounds_ms": [f["time_median_ms"] for f in figs]}
    for backend in TRAINERS[2:]:
        figures[backend] = run_one(config(cell, backend, args))
    ratio = paired_ratio(figures["numpy"], figures["torch"])
    return {"backends": figures, "ratio_numpy_torch": ratio}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes and timing=quick (for CI)")
    p.add_argument("--timing", default=None, help="timing preset: default, quick, precise")
    p.add_argument("--cells", default="rnn,lstm,gru")
    p.add_argument("--dtype", default="float32", choices=[d.value for d in Dtype])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument(
        "--rounds", type=int, default=None, help="interleaved numpy/torch rounds (default 3, 1 with --quick)"
    )
    p.add_argument("--json", type=Path, help="also write every figure to this file")
    args = p.parse_args(argv)
    args.timing = args.timing or ("quick" if args.quick else "default")
    args.rounds = args.rounds or (1 if args.quick else 3)
    steps, batch, features = QUICK if args.quick else MEDIUM
    results: dict = {"args": {k: str(v) for k, v in vars(args).items()}, "cells": {}}
    for cell in args.cells.split(","):
        print(
            f"{cell} training step (T={steps}, B={batch}, I=H={features}, {args.dtype}, {args.threads} thread"
            f"{'s' if args.threads > 1 else ''}, timing={args.timing}, numpy/torch median of {args.rounds} "
            f"interleaved round{'s' if args.rounds > 1 else ''})",
            flush=True,
        )
        fig = bench_cell(cell, args)
        results["cells"][cell] = fig
        for backend in TRAINERS:
            print(line(backend, fig["backends"][backend]), flush=True)
        ratio = fig["ratio_numpy_torch"]
        met = "met" if ratio <= TARGET else "NOT met"
        print(f"ratio numpy/torch {cell} step: {ratio:.3f} (paired by round; target <= {TARGET:g}: {met})")
        short = [b for b in TRAINERS if fig["backends"][b]["time_median_ms"] < fig["backends"][b]["fwd_time_median_ms"]]
        print(f"step >= forward {cell}: {'every backend' if not short else 'NOT for ' + ', '.join(short)}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str) + "\n")
    return results


if __name__ == "__main__":
    main()
