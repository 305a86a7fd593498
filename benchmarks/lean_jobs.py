"""Lean large jobs: a sweep's wall time against the time its jobs spent in timed calls.

    python benchmarks/lean_jobs.py            # +experiment=deepbench_small: target wall / timed <= 1.3
    python benchmarks/lean_jobs.py --quick    # two small DeepBench kernels, timing=quick: for CI, figures meaningless

1. The sweep runs as a user runs it, ``python -m rnnexp -m +experiment=deepbench_small
   hydra.sweep.dir=TMP``, in a fresh process timed from outside (so Python, torch, Hydra, the GEMM
   peak, every job's inputs, reference, statistics and written files are all in the wall time).
   Its rows' ``timed_s`` (cold call, warm-ups, block sizing and blocks) are summed: the figure is
   wall / timed (target <= 1.3). Per job: ``job_wall_s`` against ``timed_s``, and the share of the
   job outside its timed calls (target <= 25% at DeepBench sizes).
2. The per-phase breakdown of one job: the sweep's largest kernel (by FLOPs) run again in this
   process on each of the sweep's backends in turn, sharing one reference cache as the sweep's jobs
   do (the second job reads the first's reference): seconds in inputs, GEMM peak, timed calls,
   the untimed rest of the forward (prepare, fetch), reference, statistics.

Run it on a quiet machine: timings from a shared machine say little (compare ratios within one run).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TARGET_RATIO = 1.3
TARGET_OUTSIDE = 0.25
FULL = ["+experiment=deepbench_small"]
QUICK = ["+deepbench=lstm_h256_n16_t150,gru_h512_n32_t1", "backend=numpy,torch", "timing=quick"]


def run_sweep(args: list[str], sweep_dir: Path) -> float:
    """Wall seconds of the sweep, run as a fresh ``python -m rnnexp -m`` process."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    cmd = [sys.executable, "-m", "rnnexp", "-m", *args, f"hydra.sweep.dir={sweep_dir}"]
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=sweep_dir.parent, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"sweep failed ({done.returncode}): {' '.join(cmd)}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return wall


def per_job(table: pd.DataFrame) -> pd.DataFrame:
    out = table[["cell", "hidden_size", "batch_size", "timesteps", "backend", "timed_s", "job_wall_s"]].copy()
    out["outside_frac"] = 1 - out.timed_s / out.job_wall_s
    return out


def config_of(row: pd.Series, timing: str):
    """The RunConfig of one sweep row (a DeepBench kernel: one unidirectional layer, float32)."""
    from rnnexp.config import Cell, RunConfig, TimingConfig

    t = OmegaConf.to_container(OmegaConf.load(ROOT / "conf" / "timing" / f"{timing}.yaml"))
    sizes = {k: int(row[k]) for k in ("input_size", "hidden_size", "batch_size", "timesteps")}
    return RunConfig(cell=Cell(row["cell"]), backend=str(row["backend"]), timing=TimingConfig(**t), **sizes)


def breakdown(table: pd.DataFrame, timing: str, work: Path) -> list[dict]:
    """The largest kernel's jobs run again here, one per backend, sharing one reference cache."""
    from rnnexp import refcache, runner

    big = table.loc[table.flops.idxmax()]
    same = table[(table.cell == big.cell) & (table.hidden_size == big.hidden_size) & (table.timesteps == big.timesteps)]
    same = same[same.batch_size == big.batch_size]
    refcache.forget()
    ctx = runner.JobContext(peak_dir=work, cache_dir=work / "cache")
    found = []
    for _, row in same.iterrows():
        cfg = config_of(row, timing)
        start = time.perf_counter()
        done = runner.run_job(cfg, ctx)
        wall = time.perf_counter() - start
        phases = {k: round(v, 3) for k, v in done.phases.items()}
        found.append({"job": runner.job_label(cfg), "wall_s": wall, "phases": phases, "status": done.row["status"]})
    return found


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="two small kernels, timing=quick (for CI)")
    p.add_argument("--no-breakdown", action="store_true", help="skip the per-phase breakdown of one job")
    p.add_argument("--json", type=Path, help="also write the figures to this file")
    args = p.parse_args(argv)
    sweep_args = QUICK if args.quick else FULL
    timing = "quick" if args.quick else "default"
    with tempfile.TemporaryDirectory(prefix="lean_jobs_") as tmp:
        work = Path(tmp)
        wall = run_sweep(sweep_args, work / "sweep")
        table = pd.read_csv(work / "sweep" / "results.csv")
        timed = float(table.timed_s.sum())
        jobs = per_job(table)
        verdict = "meets" if wall / timed <= TARGET_RATIO else "misses"
        print(f"sweep: {' '.join(sweep_args)}: {len(table)} jobs", flush=True)
        ratio, own = wall / timed, float((jobs.job_wall_s - jobs.timed_s).sum())
        print(f"wall {wall:.1f} s, timed calls {timed:.1f} s: wall / timed {ratio:.2f} ({verdict} <= {TARGET_RATIO})")
        print(f"outside the timed calls: {wall - timed:.1f} s, of which inside the jobs: {own:.1f} s")
        print(jobs.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
        figures = {
            "args": sweep_args,
            "wall_s": wall,
            "timed_s": timed,
            "ratio": wall / timed,
            "jobs": jobs.to_dict("records"),
        }
        if not args.no_breakdown:
            figures["breakdown"] = breakdown(table, timing, work)
            for b in figures["breakdown"]:
                parts = ", ".join(f"{k} {v:.2f}" for k, v in b["phases"].items())
                print(f"breakdown {b['job']}: wall {b['wall_s']:.2f} s: {parts} ({b['status']})", flush=True)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2, default=str) + "\n")
    return figures


if __name__ == "__main__":
    main()
