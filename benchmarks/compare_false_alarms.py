"""How often `rnnexp compare` cries wolf on identical sweeps, and how often it catches a real 1.5x slowdown.

    python benchmarks/compare_false_alarms.py            # 20 pairs of identical quick sweeps, quiet machine
    python benchmarks/compare_false_alarms.py --busy     # the same with a second busy process running
    python benchmarks/compare_false_alarms.py --quick    # one small pair of each (tests/test_benchmarks.py)

False alarms: two identical `timing=quick` sweeps of the tutorial preset, each a fresh process, compared
with the default --ratio; a pair fails when compare exits 1. Targets: 0 of 20 quiet, at most 1 of 20 busy.
Detection: BASE runs timesteps=T, NEW runs timesteps=1.5T of a NumPy rnn whose time is proportional to
T (1.5x the work, a real slowdown), relabelled T so the rows match; compared on time_median_ms only,
with 10 blocks per job (quick timing's 3 blocks cannot support any 99% interval: inconclusive).
Target: 20 of 20. The slowdown each pair really measured (median ratio) is printed beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
IDENTICAL = ["+experiment=tutorial", "timing=quick"]
IDENTICAL_QUICK = ["backend=numpy,torch", "timing=quick"]
# 10 blocks: with quick timing's 3 a 99% interval cannot exist, and compare rightly says inconclusive
SLOW_BASE = ["cell=rnn", "backend=numpy", "hidden_size=128", "input_size=128", "batch_size=16", "timing=quick",
             "timing.min_blocks=10"]  # fmt: skip
T = 40


def cli(args: list[str], cwd: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, *extra, *args], cwd=cwd, env=env, capture_output=True, text=True)


def sweep(args: list[str], out: Path) -> Path:
    done = cli(["-m", "rnnexp", "-m", *args, f"hydra.sweep.dir={out}"], ROOT)
    if done.returncode not in (0, 1):
        raise SystemExit(f"sweep failed: {' '.join(args)}\n{done.stderr[-2000:]}")
    if not (out / "samples.csv").is_file() and not list(out.glob("*/samples.csv")):  # compare reads either
        raise SystemExit(
            f"{out}: the CLI wrote no samples.csv, so compare cannot judge timings (every verdict would be "
            "inconclusive and these figures meaningless); run this once the row producer writes samples.csv"
        )
    return out


def compare(base: Path, new: Path, *options: str) -> tuple[int, str]:
    done = cli(["-m", "rnnexp.review.compare", str(base), str(new), *options], ROOT)
    return done.returncode, done.stdout


def relabel(sweep_dir: Path, timesteps: int) -> None:
    """NEW ran more steps; its rows claim BASE's so that they match (shapes then differ: compare timing only)."""
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
    parser.add_argument("--pairs", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="one small pair of each, to check the script works")
    parser.add_argument("--busy", action="store_true", help="run a second busy process throughout")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args(argv)
    pairs = 1 if args.quick else args.pairs
    identical = IDENTICAL_QUICK if args.quick else IDENTICAL
    hog = busy_loop() if args.busy else None
    figures: dict = {"pairs": pairs, "busy": args.busy, "false_alarms": 0, "detected": 0, "ratios": []}
    try:
        with tempfile.TemporaryDirectory(prefix="rnnexp_compare_bench_") as tmp:
            root = Path(tmp)
            for i in range(pairs):
                a, b = sweep(identical, root / f"a{i}"), sweep(identical, root / f"b{i}")
                code, out = compare(a, b)
                figures["false_alarms"] += code == 1
                if code == 1:
                    print(f"pair {i}: false alarm\n" + "\n".join(x for x in out.splitlines() if "REGRESSION" in x))
                base = sweep([*SLOW_BASE, f"timesteps={T}"], root / f"s{i}")
                new = sweep([*SLOW_BASE, f"timesteps={int(T * 1.5)}"], root / f"t{i}")
                relabel(new, T)
                figures["ratios"].append(measured_ratio(base, new))
                code, out = compare(base, new, "--columns", "time_median_ms")
                figures["detected"] += code == 1
    finally:
        if hog:
            hog.kill()
            hog.wait()
    load = "a second busy process" if args.busy else "quiet"
    ratios = sorted(figures["ratios"])
    print(f"false alarms ({load}): {figures['false_alarms']} of {pairs} pairs of identical sweeps")
    middle = ratios[len(ratios) // 2]
    print(f"detected 1.5x slowdown ({load}): {figures['detected']} of {pairs} "
          f"(measured x{middle:.2f}, range x{ratios[0]:.2f}-x{ratios[-1]:.2f})")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
