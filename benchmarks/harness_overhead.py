"""Harness overhead: an N-job sweep of the tutorial config vs a hand-written loop timing the same N configs.

    python benchmarks/harness_overhead.py            # 16 jobs, default timing (min_run_time 0.2 s), 3 rounds
    python benchmarks/harness_overhead.py --quick    # 4 jobs, timing=quick, 1 round: for CI, figures meaningless

Both sides are fresh processes, timed from outside, so both pay for starting Python and ``import
torch``: the hand loop is a ``python -c`` script (seed, build ``nn.RNN(5, 8, batch_first=True)``,
``Timer(...).blocked_autorange(min_run_time)`` under ``inference_mode`` with one thread), the sweep
is ``python -m rnnexp -m seed=range(N)``. What the sweep pays on top is Hydra (import, composing,
output dirs, .hydra/ files, logging) and rnnexp's own per-job work (the cold first call, the NumPy
reference, statistics, the row and the table). Rounds are interleaved; medians are reported.

Per-job overhead = (sweep wall - hand wall) / N. Target: sweep / hand <= 1.25 with 16 jobs. With
``--split`` every variant also runs 1 job, and the overhead is split into a fixed part (1-job sweep
minus 1-job loop: imports, Hydra's composes, the table) and a marginal part per extra job.
Timings on a shared machine are noisy: compare variants from the same run, never across runs.

``--profile`` runs one ``timing=quick`` tutorial sweep of 1,000 jobs (``--jobs`` sizes it) in this
process under cProfile and prints where each job's milliseconds go, by stage (harness_profile.py).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAUNCHERS = {  # sweeper and launcher, named explicitly so a changed default does not change the comparison
    "basic": ["hydra/sweeper=basic", "hydra/launcher=basic"],
    "rnnexp": ["hydra/sweeper=rnnexp", "hydra/launcher=rnnexp"],
}
HAND_LOOP = """
import sys, time
t0 = time.perf_counter()
import torch
from torch.utils.benchmark import Timer
jobs, min_run_time = int(sys.argv[1]), float(sys.argv[2])
torch.set_num_threads(1)
t1 = time.perf_counter()
for seed in range(jobs):
    torch.manual_seed(seed)
    rnn = torch.nn.RNN(5, 8, batch_first=True).eval()
    x = torch.randn(1, 10, 5)
    with torch.inference_mode():
        m = Timer("rnn(x)", globals={"rnn": rnn, "x": x}, num_threads=1).blocked_autorange(min_run_time=min_run_time)
    print(f"seed {seed}: {m.median * 1e3:.4g} ms", flush=True)
print(f"import_s {t1 - t0:.3f} loop_s {time.perf_counter() - t1:.3f}")
"""


def min_run_time(timing: str) -> float:
    """The ``min_run_time_s`` of a timing preset, so the hand loop times exactly as long as the sweep's jobs."""
    from omegaconf import OmegaConf  # here: --profile counts importing it in the sweep's imports

    return float(OmegaConf.load(ROOT / "conf" / "timing" / f"{timing}.yaml").min_run_time_s)


def wall(cmd: list[str], cwd: Path) -> float:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return elapsed


def commands(jobs: int, timing: str, launchers: list[str]) -> dict[str, list[str]]:
    hand = [sys.executable, "-c", HAND_LOOP, str(jobs), str(min_run_time(timing))]
    sweep = [sys.executable, "-m", "rnnexp", "-m", f"seed=range({jobs})", f"timing={timing}"]
    return {"hand loop": hand, **{f"sweep {name}": [*sweep, *LAUNCHERS[name]] for name in launchers}}


def environment() -> dict[str, object]:
    def git(*args: str) -> str:
        proc = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        return proc.stdout.strip() if proc.returncode == 0 else ""

    return {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "load_avg_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "commit": git("rev-parse", "--short", "HEAD"),
        "dirty": bool(git("status", "--porcelain")),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }


def report(samples: dict[tuple[str, int], list[float]], jobs: int) -> str:
    """One line per variant at ``jobs`` jobs; with 1-job samples too, the overhead split into fixed and per job."""
    med = {key: statistics.median(walls) for key, walls in samples.items()}
    hand = med["hand loop", jobs]
    split = ("hand loop", 1) in med and jobs > 1
    head = f"{'variant':<14} {'median_s':>9} {'min_s':>7} {'max_s':>7} {'ratio':>6} {'overhead_per_job_ms':>20}"
    lines = [head + (f" {'fixed_s':>8} {'marginal_per_job_ms':>20}" if split else "")]
    for (name, n), walls in samples.items():
        if n != jobs:
            continue
        line = f"{name:<14} {med[name, n]:9.2f} {min(walls):7.2f} {max(walls):7.2f} {med[name, n] / hand:6.2f}"
        if name == "hand loop":
            lines.append(line)
            continue
        line += f" {(med[name, n] - hand) / jobs * 1e3:20.0f}"
        if split:
            fixed = med[name, 1] - med["hand loop", 1]
            line += f" {fixed:8.2f} {((med[name, n] - hand) - fixed) / (jobs - 1) * 1e3:20.0f}"
        lines.append(line)
    return "\n".join(lines)


def profile_sweep(jobs: int, cprofile: bool) -> None:
    """Where a ``timing=quick`` sweep's time goes, by stage, in this process (see harness_profile.py)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from harness_profile import profile

    with tempfile.TemporaryDirectory(prefix="rnnexp-profile-") as tmp:
        load = os.getloadavg()[0]
        table = profile(jobs, ["timing=quick"], Path(tmp), cprofile=cprofile)
    how = "under cProfile" if cprofile else "stage clock only"
    print(f"harness profile: {jobs} jobs, timing=quick, in one process ({how}); load {load:.2f} at the start")
    print(table)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="4 jobs, timing=quick, 1 round (CI smoke run)")
    parser.add_argument("--jobs", type=int, help="jobs per sweep (default 16; 4 with --quick)")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 3; 1 with --quick)")
    parser.add_argument("--launchers", default="basic,rnnexp", help=f"comma-separated, of: {', '.join(LAUNCHERS)}")
    parser.add_argument("--split", action="store_true", help="also time 1-job runs: overhead as fixed + per job")
    parser.add_argument("--json", type=Path, help="write raw samples and environment here")
    parser.add_argument("--profile", action="store_true", help="profile a timing=quick sweep by stage (1000 jobs)")
    parser.add_argument("--no-cprofile", action="store_true", help="with --profile: the stage clock alone")
    args = parser.parse_args(argv)
    if args.profile:
        return profile_sweep(args.jobs or 1000, cprofile=not args.no_cprofile)
    jobs = args.jobs or (4 if args.quick else 16)
    rounds = args.rounds or (1 if args.quick else 3)
    timing = "quick" if args.quick else "default"
    launchers = [name for name in args.launchers.split(",") if name]
    sizes = [jobs, 1] if args.split else [jobs]
    plan = {(name, n): cmd for n in sizes for name, cmd in commands(n, timing, launchers).items()}

    samples: dict[tuple[str, int], list[float]] = {key: [] for key in plan}
    with tempfile.TemporaryDirectory(prefix="rnnexp-harness-") as tmp:
        for r in range(rounds):
            for (name, n), cmd in plan.items():
                cwd = Path(tmp) / f"{name.replace(' ', '_')}-{n}-{r}"
                cwd.mkdir()
                samples[name, n].append(wall(cmd, cwd))
                print(f"round {r + 1}/{rounds} {name} ({n} jobs): {samples[name, n][-1]:.2f} s", file=sys.stderr)

    env = environment()
    print(
        f"harness overhead: {jobs} jobs, timing={timing} (min_run_time {min_run_time(timing)} s), {rounds} round(s), "
        f"wall time of a fresh process each; {env['cpus']} CPUs, load {env['load_avg_1m']:.2f}"
    )
    print(report(samples, jobs))
    if args.quick:
        print("(--quick: a smoke run; the figures mean nothing)")
    if args.json:
        walls = [{"variant": name, "jobs": n, "wall_s": w} for (name, n), w in samples.items()]
        payload = {"jobs": jobs, "timing": timing, "rounds": rounds, "samples": walls, "environment": env}
        args.json.write_text(json.dumps(payload, indent=2))


if __name__ == "__main__":
    main()
