"""How often `rnnexp compare` cries wolf on identical sweeps and how often it catches a real slowdown, per config.

    python benchmarks/compare_false_alarms.py                 # one pair of 200-configuration sweeps, 2x slowdown
    python benchmarks/compare_false_alarms.py --busy          # the same with a second busy process running
    python benchmarks/compare_false_alarms.py --pairs 3       # three pairs (figures summed over them)
    python benchmarks/compare_false_alarms.py --quick         # 4 configurations, to check the script works

Each pair is three sweeps of a small NumPy rnn over ``--configs`` hidden sizes (``timing=quick`` with 20
blocks of at least 5 ms per job: quick timing's 3 blocks support no 99% interval), each a fresh process,
run back to back:

- A and B run timesteps=T. False alarms: the configurations `rnnexp compare A B` calls slower or faster
  (its --csv verdicts), at the default --ratio. Target: at most 1 of 200.
- S runs timesteps=--slowdown x T, relabelled T so that its rows match A's: the same calls doing that
  much more work, a deterministic slowdown (the NumPy loop's time is proportional to T). Detection:
  the configurations `rnnexp compare A S --columns time_median_ms` calls slower. Target: at least 95%.
  The slowdown really measured (the ratio of median times) is printed beside it.
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

ROOT = Path(__file__).resolve().parent.parent
# 20 blocks of at least 5 ms: with quick timing's 3 a 99% interval cannot exist (compare rightly says
# inconclusive), and its 1 ms blocks are each at the mercy of one scheduler slice on a shared machine
SPEC = ["cell=rnn", "backend=numpy", "input_size=16", "batch_size=4", "timing=quick", "timing.min_blocks=20",
        "timing.block_min_s=0.005", "timing.max_run_time_s=1"]  # fmt: skip
FIRST_SIZE = 8  # hidden sizes FIRST_SIZE, FIRST_SIZE + 1, ...: one configuration each
T = 40
FLAGGED = ("slower", "faster")


def cli(args: list[str], cwd: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, *extra, *args], cwd=cwd, env=env, capture_output=True, text=True)


def sweep(configs: int, timesteps: int, out: Path) -> Path:
    sizes = f"hidden_size=range({FIRST_SIZE},{FIRST_SIZE + configs})"
    args = [*SPEC, sizes, f"timesteps={timesteps}", f"store={out.parent / 'history.duckdb'}"]
    done = cli(["-m", "rnnexp", "-m", *args, f"hydra.sweep.dir={out}"], ROOT)
    if done.returncode not in (0, 1):
        raise SystemExit(f"sweep failed: {' '.join(args)}\n{done.stderr[-2000:]}")
    if not (out / "samples.csv").is_file() and not list(out.glob("*/samples.csv")):  # compare reads either
        raise SystemExit(f"{out}: the CLI wrote no samples.csv, so compare cannot judge timings")
    return out


def compare(base: Path, new: Path, verdicts: Path, *options: str) -> tuple[int, pd.Series, str]:
    """compare's exit status, its verdict per configuration (from --csv), and its summary line."""
    done = cli(["-m", "rnnexp.review.compare", str(base), str(new), "--csv", str(verdicts), *options], ROOT)
    if done.returncode == 2:
        raise SystemExit(f"compare refused {base} vs {new}: {done.stderr.strip()}")
    summary = next((line for line in done.stdout.splitlines() if "configurations matched" in line), "")
    return done.returncode, pd.read_csv(verdicts)["verdict"], summary


def relabel(sweep_dir: Path, timesteps: int) -> None:
    """S ran more steps; its rows claim A's so that they match (shapes then differ: compare timing only)."""
    for path in [sweep_dir / "results.csv", *sweep_dir.glob("*/results.csv")]:
        table = pd.read_csv(path)
        table["timesteps"] = timesteps
        table.to_csv(path, index=False)


def measured_ratio(base: Path, new: Path) -> float:
    b, n = (pd.read_csv(p / "results.csv")["time_median_ms"].median() for p in (base, new))
    return float(n / b)


def busy_loop() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=1)
    parser.add_argument("--configs", type=int, default=200, help="configurations per sweep (hidden sizes)")
    parser.add_argument("--slowdown", type=float, default=2.0, help="NEW's work over BASE's (timesteps factor)")
    parser.add_argument("--quick", action="store_true", help="one pair of 4 configurations, to check the script")
    parser.add_argument("--busy", action="store_true", help="run a second busy process throughout")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args(argv)
    configs = 4 if args.quick else args.configs
    pairs = 1 if args.quick else args.pairs
    hog = busy_loop() if args.busy else None
    figures: dict = {"pairs": pairs, "configs": configs, "slowdown": args.slowdown, "busy": args.busy,
                     "false_alarms": 0, "false_alarm_exits": 0, "detected": 0, "ratios": [], "summaries": [],
                     "seconds": []}  # fmt: skip
    try:
        with tempfile.TemporaryDirectory(prefix="rnnexp_compare_bench_") as tmp:
            root = Path(tmp)
            for i in range(pairs):
                start = time.perf_counter()
                a, b = sweep(configs, T, root / f"a{i}"), sweep(configs, T, root / f"b{i}")
                s = sweep(configs, round(T * args.slowdown), root / f"s{i}")
                figures["seconds"].append(round(time.perf_counter() - start, 1))
                code, verdicts, line = compare(a, b, root / f"same{i}.csv")
                flagged = int(verdicts.isin(FLAGGED).sum())
                figures["false_alarms"] += flagged
                figures["false_alarm_exits"] += code == 1
                figures["summaries"].append(line)
                print(f"pair {i} identical: {flagged} of {len(verdicts)} flagged; {line}")
                relabel(s, T)
                figures["ratios"].append(measured_ratio(a, s))
                code, verdicts, line = compare(a, s, root / f"slow{i}.csv", "--columns", "time_median_ms")
                figures["detected"] += int((verdicts == "slower").sum())
                figures["summaries"].append(line)
                print(f"pair {i} slowed: {int((verdicts == 'slower').sum())} of {len(verdicts)} slower; {line}")
    finally:
        if hog:
            hog.kill()
            hog.wait()
    load = "a second busy process" if args.busy else "quiet"
    total = pairs * configs
    ratios = sorted(figures["ratios"])
    print(f"false alarms ({load}): {figures['false_alarms']} of {total} configurations flagged in {pairs} pairs "
          f"of identical sweeps (compare exited 1 in {figures['false_alarm_exits']})")  # fmt: skip
    print(f"detected {args.slowdown:g}x slowdown ({load}): {figures['detected']} of {total} configurations "
          f"(measured x{ratios[len(ratios) // 2]:.2f}, range x{ratios[0]:.2f}-x{ratios[-1]:.2f})")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
