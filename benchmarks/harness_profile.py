"""Where a sweep's time goes, by stage of a job: the profile behind ``harness_overhead.py --profile``.

The sweep runs in this process (``rnnexp.cli.run``), imports included, under cProfile. Each stage
is the set of functions that implement it; each of those is wrapped by a stage clock that charges
the time to the innermost stage running, so nested stages are never counted twice (a job's
``measure`` runs inside Hydra's ``run_job``: its time is "time", not "hydra run_job") and what no
stage claims is "driver, other". Imports get a stage of their own (``builtins.__import__`` and
``importlib.import_module`` wrapped the same way), wherever they happen, the first job's included.

cProfile slows Python-heavy stages more than system calls (fsync) and library code: compare shares
with ``--no-cprofile`` when the absolute figures matter.
"""

from __future__ import annotations

import builtins
import contextlib
import cProfile
import functools
import importlib
import io
import os
import pstats
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# (stage, module, attribute): the attribute is patched where the caller looks it up (a name a module
# imported with ``from x import name`` is patched in that module). "Class.method" patches a method.
# A name a version of rnnexp lacks is left out, so one table profiles the code before and after a change.
STAGES = [
    ("plan", "rnnexp.plan", "make_plan"),
    ("hydra setup", "rnnexp.cli", "run_hydra"),
    ("launcher", "hydra_plugins.rnnexp_launcher.launcher", "RnnexpLauncher.launch_jobs"),
    ("compose", "hydra_plugins.rnnexp_launcher._compose", "JobComposer.compose"),
    ("compose", "hydra_plugins.rnnexp_launcher._compose", "JobComposer.compose_job"),
    ("hydra run_job", "hydra_plugins.rnnexp_launcher.launcher", "run_job"),
    ("hydra run_job", "hydra_plugins.rnnexp_launcher._run", "run_composed"),
    ("task glue", "rnnexp.job", "run_task"),
    ("validate", "rnnexp.runner", "validate"),
    ("validate", "rnnexp.runner", "check_cores"),
    ("validate", "rnnexp.runner", "check_memory"),
    ("validate", "rnnexp.refcache", "release_unless"),
    ("prepare", "rnnexp.runner", "make_params"),
    ("prepare", "rnnexp.runner", "make_inputs"),
    ("prepare", "rnnexp.runner", "run_forward"),
    ("gemm peak", "rnnexp.runner", "cpu_peak"),
    ("time", "rnnexp.runner", "measure"),
    ("memory pass", "rnnexp.runner", "peak_forward_bytes"),
    ("reference", "rnnexp.refcache", "reference_result"),
    ("statistics", "rnnexp.runner", "execute"),
    ("row", "rnnexp.runner", "run_job"),
    ("row", "rnnexp.job", "run_into"),
    ("row", "rnnexp.job", "_one_line"),
    ("write", "rnnexp.job", "_save_config"),
    ("write", "rnnexp.results", "write_job"),
    ("gather", "rnnexp.cli", "finish"),
    ("history store", "rnnexp.cli", "add_to_history"),
]
ORDER = ["imports", "plan", "hydra setup", "launcher", "compose", "hydra run_job", "task glue", "validate",
         "prepare", "gemm peak", "time", "memory pass", "reference", "statistics", "row", "write", "gather",
         "history store", "driver, other"]  # fmt: skip
PER_JOB = {"launcher", "compose", "hydra run_job", "task glue", "validate", "prepare", "time", "memory pass",
           "reference", "statistics", "row", "write"}  # fmt: skip


class StageClock:
    """Wall seconds charged to the innermost stage running (a stack of stages, one mark)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.stack: list[str] = []
        self.mark = time.perf_counter()

    def _charge(self, now: float) -> None:
        if self.stack:
            top = self.stack[-1]
            self.seconds[top] = self.seconds.get(top, 0.0) + now - self.mark
        self.mark = now

    def wrap(self, stage: str, fn: Any) -> Any:
        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            self._charge(time.perf_counter())
            self.stack.append(stage)
            try:
                return fn(*args, **kwargs)
            finally:
                self._charge(time.perf_counter())
                self.stack.pop()

        return timed


@contextlib.contextmanager
def patched(clock: StageClock) -> Iterator[None]:
    """Every stage function wrapped, and the imports; all put back on the way out."""
    undo: list[tuple[Any, str, Any]] = []

    def patch(owner: Any, name: str, stage: str) -> None:
        original = owner.__dict__[name] if isinstance(owner, type) else getattr(owner, name)
        undo.append((owner, name, original))
        setattr(owner, name, clock.wrap(stage, original))

    loading = clock.wrap("imports", builtins.__import__)
    plain = builtins.__import__

    def imported(name: str, globals: Any = None, locals: Any = None, fromlist: Any = (), level: int = 0) -> Any:
        """An import that loads a module is "imports"; one of a loaded module (OmegaConf imports inside
        functions it calls per node) is the caller's stage, unclocked: the clock would cost more than it."""
        full = name if not level else _absolute(name, globals, level)
        module = sys.modules.get(full)
        if module is not None and all(f == "*" or hasattr(module, f) for f in fromlist or ()):
            return plain(name, globals, locals, fromlist, level)
        return loading(name, globals, locals, fromlist, level)

    undo.append((builtins, "__import__", plain))
    builtins.__import__ = imported
    patch(importlib, "import_module", "imports")
    try:
        from hydra.core.plugins import Plugins

        # Hydra's plugin scan re-executes the hydra_plugins modules: scanned first, their functions stay wrapped.
        clock.wrap("hydra setup", Plugins.instance)()
        for stage, module, attr in STAGES:
            try:
                owner: Any = importlib.import_module(module)
            except ImportError:
                continue
            *path, name = attr.split(".")
            for part in path:
                owner = getattr(owner, part, None)
            if owner is not None and (name in owner.__dict__ if isinstance(owner, type) else hasattr(owner, name)):
                patch(owner, name, stage)
        yield
    finally:
        for owner, name, original in reversed(undo):
            setattr(owner, name, original)


def _absolute(name: str, globals: Any, level: int) -> str:
    package = (globals or {}).get("__package__") or ""
    base = package.rsplit(".", level - 1)[0] if level > 1 else package
    return f"{base}.{name}" if name else base


def profile(jobs: int, overrides: list[str], workdir: Path, cprofile: bool = True, top: int = 15) -> str:
    """Run a ``jobs``-job sweep here, in ``workdir``; the stage table (and cProfile's top functions)."""
    clock = StageClock()
    prof = cProfile.Profile() if cprofile else None
    argv = ["-m", f"seed=range({jobs})", *overrides, f"hydra.sweep.dir={workdir / 'sweep'}"]
    old_cwd, out = os.getcwd(), io.StringIO()
    os.chdir(workdir)  # the sweep's default outputs (the history store) go to the temp dir
    start = time.perf_counter()
    try:
        if prof:
            prof.enable()
        with patched(clock):  # importing rnnexp.cli (and Hydra, and torch) is inside
            from rnnexp import cli

            with contextlib.redirect_stdout(out):
                code = cli.run(argv)
        if prof:
            prof.disable()
    finally:
        os.chdir(old_cwd)
    wall = time.perf_counter() - start
    if code != 0:
        raise SystemExit(f"the profiled sweep failed ({code}):\n{out.getvalue()[-3000:]}")
    return stage_table(clock.seconds, wall, jobs) + (top_functions(prof, top) if prof else "")


def stage_table(seconds: dict[str, float], wall: float, jobs: int) -> str:
    seconds = dict(seconds)
    seconds["driver, other"] = max(0.0, wall - sum(seconds.values()))
    lines = [f"{'stage':<15} {'total_s':>8} {'ms_per_job':>10} {'share':>6}"]
    per_job = 0.0
    for stage in ORDER:
        s = seconds.get(stage, 0.0)
        per_job += s if stage in PER_JOB else 0.0
        mark = "" if stage in PER_JOB else "  (once per sweep)"
        lines.append(f"{stage:<15} {s:8.2f} {s / jobs * 1e3:10.2f} {s / wall:6.1%}{mark}")
    lines.append(f"{'wall':<15} {wall:8.2f} {wall / jobs * 1e3:10.2f} {1:6.1%}")
    lines.append(f"per-job stages: {per_job / jobs * 1e3:.2f} ms/job; once per sweep: {wall - per_job:.2f} s")
    return "\n".join(lines)


def top_functions(prof: cProfile.Profile, top: int) -> str:
    buf = io.StringIO()
    stats = pstats.Stats(prof, stream=buf)
    stats.sort_stats("tottime").print_stats(top)
    body = buf.getvalue().split("\n", 1)[-1].strip("\n")
    return f"\n\ncProfile, the {top} functions with the most time of their own:\n{body}"
