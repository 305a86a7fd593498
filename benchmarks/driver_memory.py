"""Driver memory over a long sweep: does the process that runs a sweep stay flat in its number of jobs?

    python benchmarks/driver_memory.py              # 5000 tiny jobs; RSS at job 500 and at the last job
    python benchmarks/driver_memory.py --quick      # 60 jobs (checkpoint 10): a smoke run, the figure means little

The sweep is the real CLI (``python -m rnnexp -m seed=range(N)``) on the default launcher, which runs
every job in the driver's own process, with tiny jobs (H=4, T=2, one short timed block), so the
driver's per-job bookkeeping, not the jobs' work, is what could grow. The driver's resident memory
(psutil) is read each time a job's progress line appears on its stdout. Target: growth from job 500
to job 5000 at most 30 MB (the issue measured ~220 KB per job before: ~1 GB over 4500 jobs).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
TINY = ["backend=numpy", "hidden_size=4", "input_size=2", "timesteps=2", "timing=quick", "timing.warmup=0",
        "timing.min_run_time_s=0.001", "timing.max_run_time_s=0.01", "timing.min_blocks=1",
        "timing.block_min_s=0.0001"]  # fmt: skip
PROGRESS = re.compile(r"^\[(\d+)/(\d+)\]")
TARGET_MB = 30.0


def run(jobs: int, checkpoint: int, out: Path) -> dict:
    """Run the sweep; RSS (MB) of the driver after each job, keyed by jobs done."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    cmd = [sys.executable, "-m", "rnnexp", "-m", f"seed=range({jobs})", *TINY, f"hydra.sweep.dir={out}"]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    driver = psutil.Process(proc.pid)
    rss: dict[int, float] = {}
    assert proc.stdout is not None
    for line in proc.stdout:
        match = PROGRESS.match(line)
        if match:
            rss[int(match.group(1))] = driver.memory_info().rss / 2**20
    code = proc.wait()
    if code != 0 or not rss:
        sys.exit(f"the sweep failed ({code}): {' '.join(cmd)}")
    last = max(rss)
    return {
        "jobs": jobs,
        "checkpoint": checkpoint,
        "wall_s": time.perf_counter() - start,
        "rss_mb_at_checkpoint": rss[checkpoint],
        "rss_mb_at_last": rss[last],
        "growth_mb": rss[last] - rss[checkpoint],
        "rss_mb_every_tenth": {k: rss[k] for k in sorted(rss) if k % max(1, jobs // 10) == 0},
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="60 jobs, checkpoint at 10 (CI smoke run)")
    parser.add_argument("--jobs", type=int, help="jobs in the sweep (default 5000; 60 with --quick)")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args(argv)
    jobs = args.jobs or (60 if args.quick else 5000)
    checkpoint = max(1, jobs // 10)
    with tempfile.TemporaryDirectory(prefix="rnnexp-driver-memory-") as tmp:
        figures = run(jobs, checkpoint, Path(tmp) / "sweep")
    verdict = "met" if figures["growth_mb"] <= TARGET_MB else "NOT met"
    print(
        f"driver RSS over a {jobs}-job sweep ({figures['wall_s']:.0f} s): {figures['rss_mb_at_checkpoint']:.1f} MB "
        f"at job {checkpoint}, {figures['rss_mb_at_last']:.1f} MB at job {jobs}: "
        f"{figures['growth_mb']:+.1f} MB (target <= {TARGET_MB:.0f} MB from job 500 to 5000: {verdict})"
    )
    print("RSS (MB) by jobs done: " + ", ".join(f"{k}: {v:.1f}" for k, v in figures["rss_mb_every_tenth"].items()))
    if args.quick:
        print("(--quick: a smoke run; the figure means little)")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
