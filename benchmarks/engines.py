"""Engines side by side: numpy, torch, torch_compile, onnxruntime and jax on the same jobs, in one run.

    python benchmarks/engines.py                  # medium, large and the DeepBench-small kernels, timing=default
    python benchmarks/engines.py --quick          # tiny sizes, timing=quick: for CI, figures meaningless

Every figure is one ``rnnexp.runner.run_job`` (validation, the timer, threads, the FLOP model and
parity are the job's own), so an engine that refuses a configuration shows its one-line error.
Configurations: ``medium`` and ``large`` of ``benchmarks/backends.py`` (``--cell``, default rnn) and
the six kernels of ``conf/experiment/deepbench_small.yaml`` (each with its own cell; ``--quick``
shrinks them to H=16, B<=4, T<=5). For each, the engines take turns for ``--rounds`` rounds, so
that a slow spell of a shared machine hits all alike; an engine's figures are from its median
round. Reported per engine: median time, its ratio to torch (median over rounds of the two times
in the same round), its share of this machine's GEMM peak (``peak_frac``), ``compile_s`` and the
parity error. The summary ranks the engines by the geometric mean of their ratio to torch over
the configurations every engine ran.

Threads: every job runs with ``--threads`` (default 1); JAX's pool is sized by the first jax job
of the process, so one run uses one thread count. Compare figures from the same run only.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from backends import QUICK_SIZES, SIZES, in_peak_dir, paired_ratio, timing  # noqa: E402

from rnnexp.config import Cell, Dtype, Nonlinearity, RunConfig  # noqa: E402
from rnnexp.peak import gemm_peak  # noqa: E402

ENGINES = ("numpy", "torch", "torch_compile", "onnxruntime", "jax")
REFERENCE = "torch"
KEEP = ("time_median_ms", "time_iqr_ms", "n_runs", "noisy", "gflops", "peak_frac", "compile_s", "max_abs_err_vs_ref")
QUICK_KERNEL = {"hidden_size": 16, "input_size": 16}


def deepbench_small(quick: bool) -> dict[str, dict]:
    """The kernels of the deepbench_small preset, by name: their config keys (shrunk with ``quick``)."""
    preset = OmegaConf.load(ROOT / "conf" / "experiment" / "deepbench_small.yaml")
    kernels = {}
    for name in str(preset.hydra.sweeper.params["+deepbench"]).split(","):
        keys = OmegaConf.to_container(OmegaConf.load(ROOT / "conf" / "deepbench" / f"{name.strip()}.yaml"))
        if quick:
            keys |= QUICK_KERNEL | {"batch_size": min(keys["batch_size"], 4), "timesteps": min(keys["timesteps"], 5)}
        kernels[name.strip()] = keys
    return kernels


def configs(args: argparse.Namespace) -> dict[str, dict]:
    """Every configuration of the run: name -> RunConfig keys (backend left out)."""
    out = {}
    for name, (steps, batch, features) in (QUICK_SIZES if args.quick else SIZES).items():
        out[name] = dict(cell=args.cell, timesteps=steps, batch_size=batch, input_size=features, hidden_size=features)
    return out | deepbench_small(args.quick)


def run_config(keys: dict, backend: str, args: argparse.Namespace) -> RunConfig:
    enums = {"cell": Cell, "nonlinearity": Nonlinearity}
    typed = {k: enums[k](v) if k in enums else v for k, v in keys.items()}
    return RunConfig(
        **typed, backend=backend, dtype=Dtype(args.dtype), threads=args.threads, timing=timing(args.timing)
    )


def run_one(cfg: RunConfig, peak_dir: Path) -> dict:
    """One job in this process: the figures kept, or its one-line error."""
    from rnnexp.runner import JobContext, run_job

    row = run_job(cfg, JobContext(peak_dir=peak_dir)).row
    if row["status"] != "ok":
        return {"error": row["error"]}
    return {k: row.get(k) for k in KEEP}


def side_by_side(keys: dict, args: argparse.Namespace, peak_dir: Path) -> dict[str, dict]:
    """Each engine's job, ``args.rounds`` times in turn; an engine's figures are from its median round."""
    runs: dict[str, list[dict]] = {engine: [] for engine in args.engines}
    for _ in range(args.rounds):
        for engine in args.engines:
            runs[engine].append(run_one(run_config(keys, engine, args), peak_dir))
    out = {}
    for engine, figs in runs.items():
        failed = [f for f in figs if "error" in f]
        if failed:
            out[engine] = failed[0]
            continue
        ordered = sorted(figs, key=lambda f: f["time_median_ms"])
        out[engine] = {**ordered[(len(ordered) - 1) // 2], "rounds_ms": [f["time_median_ms"] for f in figs]}
    if "error" not in out.get(REFERENCE, {"error": "not run"}):
        for fig in out.values():
            if "error" not in fig:
                fig["ratio_to_torch"] = paired_ratio(fig, out[REFERENCE])
    return out


def describe(name: str, keys: dict, args: argparse.Namespace) -> str:
    cell = keys["cell"] + ("-relu" if keys.get("nonlinearity") == "relu" else "")
    return (
        f"{name} ({cell}, T={keys['timesteps']}, B={keys['batch_size']}, I=H={keys['hidden_size']}, {args.dtype}, "
        f"{args.threads} thread{'s' if args.threads > 1 else ''}, timing={args.timing}, "
        f"median of {args.rounds} interleaved round{'s' if args.rounds > 1 else ''})"
    )


def line(engine: str, fig: dict) -> str:
    if "error" in fig:
        return f"  {engine:14s} {fig['error']}"
    ratio = fig.get("ratio_to_torch", float("nan"))
    compile_s = (
        "" if fig["compile_s"] is None or math.isnan(fig["compile_s"]) else f"  compile_s {fig['compile_s']:.2f}"
    )
    return (
        f"  {engine:14s} {fig['time_median_ms']:10.3f} ms  IQR {fig['time_iqr_ms']:8.3f}  x{ratio:6.3f} torch"
        f"  peak_frac {fig['peak_frac']:.3f}  max_abs_err {fig['max_abs_err_vs_ref']:.1e}{compile_s}"
        f"{'  (noisy)' if fig['noisy'] else ''}"
    )


def ranking(results: dict[str, dict[str, dict]], engines: tuple[str, ...]) -> list[tuple[str, float, int]]:
    """(engine, geometric mean of its ratio to torch, n configs), fastest first: the engines that ran every config."""
    ranked = []
    for engine in engines:
        ratios = [figs[engine].get("ratio_to_torch") for figs in results.values()]
        if ratios and None not in ratios:
            ranked.append((engine, math.exp(sum(map(math.log, ratios)) / len(ratios)), len(ratios)))
    return sorted(ranked, key=lambda r: r[1])


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes and timing=quick (for CI)")
    p.add_argument("--timing", default=None, help="timing preset: default, quick, precise")
    p.add_argument("--cell", default="rnn", choices=[c.value for c in Cell], help="cell of medium and large")
    p.add_argument("--dtype", default="float32", choices=[d.value for d in Dtype])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=None, help="interleaved rounds per config (default 3, 1 with --quick)")
    p.add_argument("--engines", default=",".join(ENGINES), help=f"comma-separated (default {','.join(ENGINES)})")
    p.add_argument("--json", type=Path, help="also write every figure to this file")
    p.add_argument("--peak-dir", type=Path, help="GEMM peak cache (default: a temporary dir, measured afresh)")
    args = p.parse_args(argv)
    args.engines = tuple(args.engines.split(","))
    if REFERENCE not in args.engines:
        p.error(f"--engines must include {REFERENCE}: every ratio is to it")
    return in_peak_dir(args, run)


def run(args: argparse.Namespace, peak_dir: Path) -> dict:
    args.timing = args.timing or ("quick" if args.quick else "default")
    args.rounds = args.rounds or (1 if args.quick else 3)
    peak = gemm_peak(args.dtype, args.threads, peak_dir, size=128 if args.quick else None)
    print(f"gemm_peak {args.dtype} {args.threads}t: {peak['gflops']:.1f} GFLOP/s (n={peak['size']})", flush=True)
    results: dict[str, dict[str, dict]] = {}
    for name, keys in configs(args).items():
        results[name] = side_by_side(keys, args, peak_dir)
        print(describe(name, keys, args))
        for engine, fig in results[name].items():
            print(line(engine, fig), flush=True)
    ranked = ranking(results, args.engines)
    shown = "  ".join(f"{i}. {engine} x{ratio:.3f}" for i, (engine, ratio, _) in enumerate(ranked, 1))
    left_out = [e for e in args.engines if e not in {r[0] for r in ranked}]
    shown += f"  (not ranked, an error in some config: {', '.join(left_out)})" if left_out else ""
    print(f"ranking (geometric mean of time / torch over the {len(results)} configs): {shown}")
    figures = {
        "args": {k: str(v) for k, v in vars(args).items()},
        "gemm_peak": peak,
        "configs": configs(args),
        "results": results,
        "ranking": [{"engine": e, "ratio_to_torch_geomean": r, "n_configs": n} for e, r, n in ranked],
    }
    if args.json:
        from rnnexp.fileio import write_json_atomic

        write_json_atomic(args.json, figures)
    return figures


if __name__ == "__main__":
    main()
