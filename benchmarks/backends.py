"""Backends against each other and against this machine's GEMM peak, measured the way rnnexp measures a job.

    python benchmarks/backends.py                  # the issue's configs, timing=default, 1 thread
    python benchmarks/backends.py --timing precise # adaptive: on until IQR/median < 5% (slower)
    python benchmarks/backends.py --quick          # tiny sizes, timing=quick: for CI, figures meaningless

Every figure is one ``rnnexp.runner.execute`` (so the timer, threads and FLOP model are the job's own):

- GEMM peak: ``rnnexp.peak`` for the dtype and thread count (the faster of NumPy's BLAS and torch).
- medium (rnn, T=100, B=32, I=H=256, float32): numpy, numpy_naive and torch medians;
  ratio numpy/torch (target <= 1.0) and numpy_naive/numpy. Backends take turns for ``--rounds``
  rounds; a ratio is the median over rounds of the two times in the same round.
- large (T=100, B=64, I=H=1024): numpy and torch as a fraction of the peak (target for numpy >= 0.70).
- repeatability: the medium config on ``--repeat-backend`` measured in two separate processes,
  like two sweeps; their medians' difference relative to their mean (target <= 10%).

On a shared machine timings are noisy: compare figures from the same run, and rerun on a quiet one.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rnnexp.config import Cell, Device, Dtype, Init, InputDist, Nonlinearity, RunConfig, TimingConfig  # noqa: E402
from rnnexp.flops import achieved_gflops, forward_flops  # noqa: E402
from rnnexp.peak import gemm_peak, peak_frac  # noqa: E402

SIZES = {  # name: (timesteps, batch_size, input_size = hidden_size)
    "medium": (100, 32, 256),
    "large": (100, 64, 1024),
}
QUICK_SIZES = {"medium": (10, 4, 32), "large": (10, 8, 64)}
TARGETS = {"numpy/torch": 1.0, "large_peak_frac": 0.70, "repeat_diff": 0.10}


def timing(name: str) -> TimingConfig:
    return TimingConfig(**OmegaConf.to_container(OmegaConf.load(ROOT / "conf" / "timing" / f"{name}.yaml")))


def config(size: tuple[int, int, int], backend: str, args: argparse.Namespace) -> RunConfig:
    steps, batch, features = size
    return RunConfig(
        cell=Cell(args.cell),
        input_size=features,
        hidden_size=features,
        timesteps=steps,
        batch_size=batch,
        backend=backend,
        dtype=Dtype(args.dtype),
        threads=args.threads,
        timing=timing(args.timing),
    )


def run_job(cfg: RunConfig, peak_dir: Path) -> dict:
    """One job, in this process: its row's timing, work and memory columns."""
    from rnnexp.runner import JobContext, execute

    # the GEMM peak is measured once, in main(), and read from peak_dir
    row = execute(cfg, JobContext(peak_dir=peak_dir)).row
    keep = ("time_median_ms", "time_iqr_ms", "time_min_ms", "n_runs", "noisy", "gflops", "peak_frac")
    out = {k: row[k] for k in (*keep, "peak_mem_bytes", "max_abs_err_vs_ref") if k in row}
    out.setdefault("gflops", achieved_gflops(forward_flops(cfg), row["time_median_ms"] / 1e3))
    return out


def run_job_elsewhere(cfg: RunConfig, peak_dir: Path) -> dict:
    """One job in a fresh Python process (a separate run, as a second sweep would be)."""
    spec = json.dumps(dataclasses.asdict(cfg), default=lambda v: v.value)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run(
        [sys.executable, __file__, "--one-job", spec, "--peak-dir", str(peak_dir)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if done.returncode != 0:
        sys.exit(f"the separate job failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.splitlines()[-1])


ENUMS = {
    "cell": Cell,
    "nonlinearity": Nonlinearity,
    "device": Device,
    "dtype": Dtype,
    "init": Init,
    "input_dist": InputDist,
}


def from_spec(spec: str) -> RunConfig:
    """The RunConfig that ``run_job_elsewhere`` sent as JSON."""
    d = json.loads(spec)
    d["timing"] = TimingConfig(**d["timing"])
    return RunConfig(**{k: ENUMS[k](v) if k in ENUMS else v for k, v in d.items()})


def interleaved(size: tuple[int, int, int], names: tuple[str, ...], args: argparse.Namespace, peak_dir: Path) -> dict:
    """Each backend's job, ``args.rounds`` times in turn (so slow spells of a shared machine hit all alike).

    A backend's figures are from its round with the median time; ``rounds_ms`` keeps every round's median.
    """
    runs: dict[str, list[dict]] = {name: [] for name in names}
    for _ in range(args.rounds):
        for name in names:
            runs[name].append(run_job(config(size, name, args), peak_dir))
    out = {}
    for name, figs in runs.items():
        ordered = sorted(figs, key=lambda f: f["time_median_ms"])
        out[name] = {**ordered[(len(ordered) - 1) // 2], "rounds_ms": [f["time_median_ms"] for f in figs]}
    return out


def paired_ratio(a: dict, b: dict) -> float:
    """Median over rounds of a's time / b's time in the same round."""
    ratios = sorted(x / y for x, y in zip(a["rounds_ms"], b["rounds_ms"], strict=True))
    mid = len(ratios) // 2
    return ratios[mid] if len(ratios) % 2 else (ratios[mid - 1] + ratios[mid]) / 2


def describe(name: str, cfg: RunConfig, timing_name: str, rounds: int) -> str:
    return (
        f"{name} ({cfg.cell.value}, T={cfg.timesteps}, B={cfg.batch_size}, I=H={cfg.hidden_size}, "
        f"{cfg.dtype.value}, {cfg.threads} thread{'s' if cfg.threads > 1 else ''}, timing={timing_name}, "
        f"median of {rounds} interleaved round{'s' if rounds > 1 else ''})"
    )


def line(backend: str, fig: dict, peak: float) -> str:
    return (
        f"  {backend:12s} {fig['time_median_ms']:9.3f} ms  IQR {fig['time_iqr_ms']:7.3f}  n_runs {fig['n_runs']:5d}"
        f"  {fig['gflops']:7.2f} GFLOP/s  peak_frac {peak_frac(fig['gflops'], peak):.2f}"
        f"  peak_mem {fig.get('peak_mem_bytes', float('nan')) / 2**20:7.1f} MiB"
        f"{'  (noisy)' if fig['noisy'] else ''}"
    )


def verdict(value: float, target: float, at_most: bool, percent: bool = False) -> str:
    met = value <= target if at_most else value >= target
    shown = f"{100 * target:g}%" if percent else f"{target:g}"
    return f"target {'<=' if at_most else '>='} {shown}: {'met' if met else 'NOT met'}"


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes and timing=quick (for CI)")
    p.add_argument("--timing", default=None, help="timing preset: default, quick, precise")
    p.add_argument("--cell", default="rnn", choices=[c.value for c in Cell])
    p.add_argument("--dtype", default="float32", choices=[d.value for d in Dtype])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=None, help="interleaved rounds per config (default 3, 1 with --quick)")
    p.add_argument("--repeat-backend", default="torch", help="backend of the repeatability check")
    p.add_argument("--json", type=Path, help="also write every figure to this file")
    p.add_argument("--peak-dir", type=Path, help="GEMM peak cache (default: a temporary dir, measured afresh)")
    p.add_argument("--one-job", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.one_job:
        print(json.dumps(run_job(from_spec(args.one_job), args.peak_dir)))
        return {}
    return in_peak_dir(args, run)


def in_peak_dir(args: argparse.Namespace, run) -> dict:
    """``run(args, peak_dir)`` with ``--peak-dir``, or with a temporary dir (the peak measured afresh)."""
    if args.peak_dir is None:
        with tempfile.TemporaryDirectory() as tmp:
            return run(args, Path(tmp))
    return run(args, args.peak_dir)


def run(args: argparse.Namespace, peak_dir: Path) -> dict:
    args.timing = args.timing or ("quick" if args.quick else "default")
    args.rounds = args.rounds or (1 if args.quick else 3)
    sizes = QUICK_SIZES if args.quick else SIZES
    results: dict = {"args": {k: str(v) for k, v in vars(args).items() if k != "one_job"}}

    peak = gemm_peak(args.dtype, args.threads, peak_dir, size=128 if args.quick else None)
    results["gemm_peak"] = peak
    libs = ", ".join(f"{lib} {v['gflops']:.1f}" for lib, v in peak["libraries"].items())
    print(
        f"gemm_peak {args.dtype} {args.threads}t: {peak['gflops']:.1f} GFLOP/s ({libs}; n={peak['size']})", flush=True
    )

    medium = interleaved(sizes["medium"], ("numpy", "numpy_naive", "torch"), args, peak_dir)
    results["medium"] = medium
    print(describe("medium", config(sizes["medium"], "numpy", args), args.timing, args.rounds))
    for backend, fig in medium.items():
        print(line(backend, fig, peak["gflops"]))
    ratio = paired_ratio(medium["numpy"], medium["torch"])
    naive = paired_ratio(medium["numpy_naive"], medium["numpy"])
    results["ratio_numpy_torch"], results["ratio_naive_numpy"] = ratio, naive
    print(f"ratio numpy/torch: {ratio:.3f} (paired by round; {verdict(ratio, TARGETS['numpy/torch'], True)})")
    print(f"ratio numpy_naive/numpy: {naive:.3f}", flush=True)

    large = interleaved(sizes["large"], ("numpy", "torch"), args, peak_dir)
    results["large"] = large
    print(describe("large", config(sizes["large"], "numpy", args), args.timing, args.rounds))
    for backend, fig in large.items():
        print(line(backend, fig, peak["gflops"]))
    frac = peak_frac(large["numpy"]["gflops"], peak["gflops"])
    results["large_numpy_peak_frac"] = frac
    print(f"large numpy peak_frac: {frac:.3f} ({verdict(frac, TARGETS['large_peak_frac'], False)})", flush=True)

    cfg = config(sizes["medium"], args.repeat_backend, args)
    first, second = run_job_elsewhere(cfg, peak_dir), run_job_elsewhere(cfg, peak_dir)
    a, b = first["time_median_ms"], second["time_median_ms"]
    diff = abs(a - b) / ((a + b) / 2)
    results["repeatability"] = {"first": first, "second": second, "diff": diff}
    print(
        f"repeatability medium {args.repeat_backend}: {a:.3f} ms then {b:.3f} ms in separate processes, "
        f"difference {100 * diff:.1f}% ({verdict(diff, TARGETS['repeat_diff'], True, percent=True)})"
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str) + "\n")
    return results


if __name__ == "__main__":
    main()
