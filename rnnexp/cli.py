"""The command line: ``rnnexp [overrides]`` (one job), ``-m`` (a sweep), ``resume``, ``report``, ``compare``.

``main()`` decides everything around the jobs and the exit status; Hydra composes and launches
them. Before anything runs, the command line is checked (``preflight``) and planned (``plan``:
every job composed and typed, every dir resolved); the run or sweep dir is created, locked
(``dirlock``) and given its manifest. Hydra then runs the jobs with that dir passed explicitly; each
job writes its own row and side tables. After Hydra returns (or an interrupt or a fatal error
stops it) ``main()`` gathers the table by the manifest, writes it and ``env.json``, prints the
summary and returns the exit status: 0 all ok, 1 a job failed (or a fatal error), 2 bad input,
130 interrupted (SIGINT), 143 terminated (SIGTERM).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import functools
import importlib
import logging
import os
import re
import shlex
import signal
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from rnnexp import fileio, logs
from rnnexp._version import __version__
from rnnexp.config import ConfigError
from rnnexp.configfiles import ConfigFileError
from rnnexp.dirlock import DirBusy, DirLock
from rnnexp.session import Fatal, Session

if TYPE_CHECKING:  # imported where used: `rnnexp report` and `compare` never load Hydra
    from rnnexp import manifest, plan

PROG = "rnnexp"
SUBCOMMANDS = {
    "report": "rnnexp.review.report",
    "compare": "rnnexp.review.compare",
    "history": "rnnexp.review.history",
    "list": "rnnexp.listing",
}
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_SIGINT, EXIT_SIGTERM = 0, 1, 2, 130, 143
# A file that cannot be written for want of room or permission: the disk's state, said in one line.
DISK_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO)
CANNOT_WRITE = "cannot write in"
OUTPUTS = "outputs"  # where the default run and sweep dirs are made (conf/config.yaml), under the working dir
CACHE_DIR = ".cache"  # content-keyed results shared by a sweep's jobs (the float64 reference); removed at the end
# What `rnnexp resume DIR ...` may add: how jobs run, never what they compute.
RESUME_ALLOWED = re.compile(r"^(hydra/launcher=|hydra\.launcher\.|hydra\.verbose=|hydra/(hydra|job)_logging=)")

log = logging.getLogger("rnnexp")


class Interrupted(BaseException):
    """SIGINT or SIGTERM: stop the sweep, keep what finished (BaseException, so no job swallows it)."""

    def __init__(self, code: int):
        self.code = code
        super().__init__(signal.Signals(code - 128).name)


class UsageError(Exception):
    """A command line that cannot be run as given (exit 2); the message says what and what is allowed."""


class OutputError(Exception):
    """An output dir that cannot be created or written; ``code`` is 2 for a bad path, 1 otherwise."""

    def __init__(self, message: str, code: int):
        self.code = code
        super().__init__(message)


def _error(message: str) -> None:
    print(f"{PROG}: error: {' '.join(str(message).split())}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> None:
    """The console script and ``python -m rnnexp``: run, and exit with the status ``run`` decides.

    The status is decided and its last line printed before the process exits: signals are ignored
    from then on (a Ctrl-C during the exit must not kill it by the signal), and so is logging (an
    atexit hook of torch's logs cache statistics, which must not follow the resume hint).
    """
    code = run(list(sys.argv[1:] if argv is None else argv), exiting=True)
    logging.disable(logging.CRITICAL)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    sys.exit(code)


def run(argv: list[str], exiting: bool = False) -> int:
    """Everything ``main`` does, returning the exit status (tests call this directly).

    ``exiting``: the process ends right after, so signals stay ignored instead of being restored.
    """
    logs.guard_stdout()
    with guarded_signals(exiting) as guard:
        return _run(argv, guard)


def _run(argv: list[str], guard: SignalGuard) -> int:
    try:
        return _dispatch(argv, guard)
    except ConfigError as exc:
        _trace_if_asked(exc)
        _error(exc)
        return EXIT_USAGE
    except UsageError as exc:
        _error(exc)
        return EXIT_USAGE
    except ConfigFileError as exc:  # a config file in the search path that does not parse: its file and line
        _trace_if_asked(exc)
        _error(exc)
        return EXIT_USAGE
    except OutputError as exc:
        _trace_if_asked(exc)
        _error(exc)
        return exc.code
    except DirBusy as exc:
        _error(f"{exc}; wait for it to finish, or use another dir")
        return EXIT_FAILED
    except KeyboardInterrupt:  # before a sweep's jobs start (they have their own handling), or in report/compare
        return _stopped(argv, "interrupted (SIGINT)", EXIT_SIGINT)
    except Interrupted as exc:
        return _stopped(argv, f"terminated ({exc})", exc.code)


def _dispatch(argv: list[str], guard: SignalGuard) -> int:
    if argv and argv[0] in SUBCOMMANDS:
        return importlib.import_module(SUBCOMMANDS[argv[0]]).main(argv[1:])
    from rnnexp import completion, configfiles

    if argv and argv[0] == "resume":
        with configfiles.named():
            return resume(argv[1:], guard)
    if completion.is_query(argv) and "COMP_LINE" in os.environ:
        print(completion.answer(os.environ["COMP_LINE"], [*SUBCOMMANDS, "resume"], lambda: _quietly(argv)))
        return EXIT_OK
    if argv:
        check_subcommand(argv[0])
    if "--version" in argv:
        print(version_text())
        return EXIT_OK
    with configfiles.named():
        return start(argv, guard)


def check_subcommand(word: str) -> None:
    """A first word that is no override, flag or key: a mistyped subcommand, said in one line (exit 2).

    Only a bare word is judged (``reprot``): an override has ``=``, a deletion ``~``, a flag ``-``,
    and a bare config key (``hidden_size``) is left to preflight, which asks for its value.
    """
    import difflib

    from rnnexp.config import config_keys

    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", word) or word in config_keys():
        return
    if word in ("run", "sweep"):  # the words people reach for: both are the command line itself
        raise UsageError(f"a job needs no subcommand: {PROG} KEY=VALUE ...; a sweep: {PROG} -m KEY=A,B ...")
    names = [*SUBCOMMANDS, "resume"]
    close = difflib.get_close_matches(word, names, n=1, cutoff=0.6)
    if close:
        raise UsageError(f"unknown subcommand '{word}'; did you mean '{close[0]}'?")
    if not difflib.get_close_matches(word, config_keys(), n=1, cutoff=0.6):
        raise UsageError(
            f"'{word}' is neither a subcommand ({', '.join(sorted(names))}) nor an override KEY=VALUE "
            f"(see {PROG} --help)"
        )


def _stopped(argv: list[str], how: str, code: int) -> int:
    """A signal outside a sweep's jobs: one line saying what it stopped."""
    if argv and argv[0] in SUBCOMMANDS:
        wrote = "; the files it wrote are whole, the rest were not written" if argv[0] == "report" else ""
        _error(f"{argv[0]} {how}{wrote}")
    else:
        _error(f"{how} before any job ran")
    return code


def _trace_if_asked(exc: BaseException) -> None:
    if os.environ.get("HYDRA_FULL_ERROR") == "1":  # Hydra's own switch for full stack traces
        import traceback

        traceback.print_exception(exc)


def version_text() -> str:
    def v(dist: str) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "not installed"

    return f"rnnexp {__version__} (hydra-core {v('hydra-core')}, omegaconf {v('omegaconf')}, torch {v('torch')})"


def start(argv: list[str], guard: SignalGuard | None = None) -> int:
    """A run or a sweep from its command line: check, plan, then run it into a fresh dir."""
    from rnnexp import plan, preflight

    argv, flags = plan.take_flags(argv)
    preflight.check_argv(argv)
    inv = plan.read_argv(argv)
    if inv is None or not inv.runs_jobs:
        return _hydra_only(argv)  # help, --cfg, --info, a flag argparse refuses: Hydra answers itself
    if flags.dry_run:
        return dry_run(plan.make_plan(inv, flags.max_jobs, sample=DRY_RUN_SHOWN, whole=DRY_RUN_WHOLE))
    jobs = plan.make_plan(inv, flags.max_jobs)
    return execute(jobs, argv, resuming=False, guard=guard)


# A dry run lists (and composes) every job of a sweep of up to DRY_RUN_WHOLE jobs; of a larger one, the
# first and last DRY_RUN_SHOWN, so that it answers at once for any size the bound allows.
DRY_RUN_WHOLE, DRY_RUN_SHOWN = 200, 10


def dry_run(p: plan.Plan) -> int:
    """Print the jobs a command would run, one re-runnable line each, their dirs and their count.

    A large sweep is shown by its first and last jobs (each composed, typed and its dir checked, as
    every job of a run is); the count is exact, computed from the sweep's values without listing them.
    """
    from rnnexp import results

    for i, job in enumerate(p.jobs):
        if i and job.num != p.jobs[i - 1].num + 1:
            print(f"... {job.num - p.jobs[i - 1].num - 1:,} more jobs ...")
        print(f"#{job.num}: {results.rerun_command(job.overrides)}")
    where = "sweep dir" if p.multirun else "run dir"
    n = p.size
    shown = f"; the {len(p.jobs)} shown were composed and checked" if len(p.jobs) < n else ""
    print(f"{n:,} job{'s' if n != 1 else ''} into {where} {p.root} (dry run: nothing was run{shown})")
    return EXIT_OK


# --------------------------------------------------------------------------- resume


def resume_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"{PROG} resume",
        description="Finish a sweep (or run) in its own dir: run exactly the recorded jobs that have no ok row, "
        "keep every other row, and write the same table an uninterrupted sweep would. Options that change only "
        "how jobs run may be added (hydra/launcher=..., hydra.launcher.*, hydra.verbose, logging); anything that "
        "would change what a job computes is refused. The recorded command line is data: what in it could make "
        "Hydra run code or read other configs (hydra.callbacks, _target_, other launchers, --config-dir, ...) "
        "is refused unless you repeat it here, exactly as recorded (docs/trust.md).",
    )
    parser.add_argument(
        "dir", type=Path, nargs="?", metavar="DIR",
        help=f"the sweep or run dir (it holds manifest.json); default: the newest interrupted one under {OUTPUTS}/",
    )  # fmt: skip
    parser.add_argument("overrides", nargs="*", metavar="OVERRIDE", help="launcher options, e.g. hydra/launcher=slurm")
    for flag, short in (("--config-dir", "-cd"), ("--config-path", "-cp"), ("--config-name", "-cn")):
        parser.add_argument(flag, short, metavar="DIR" if flag == "--config-dir" else "NAME", help=argparse.SUPPRESS)
    return parser


def resume(argv: list[str], guard: SignalGuard | None = None) -> int:
    from rnnexp import manifest, plan, preflight, trust

    args = resume_parser().parse_args(argv)  # --help and usage errors: argparse's own (exit 0 / 2)
    if args.dir is not None and "=" in str(args.dir) and not args.dir.exists():  # an override, no DIR before it
        args.overrides.insert(0, str(args.dir))
        args.dir = None
    if args.dir is None:
        args.dir = newest_interrupted(Path(OUTPUTS))
        print(f"resuming {args.dir}", flush=True)
    root = args.dir.resolve()
    if not root.exists():
        raise UsageError(f"resume {args.dir}: no such directory")
    if not root.is_dir():
        raise UsageError(f"resume {args.dir}: not a directory (give the sweep or run dir)")
    if not manifest.exists(root):
        raise UsageError(f"resume {args.dir}: not a rnnexp run or sweep dir (it has no {manifest.MANIFEST})")
    try:
        recorded = manifest.load(root)
    except ValueError as exc:
        raise UsageError(f"resume {args.dir}: {exc}") from exc
    well_formed = isinstance(recorded.argv, list) and all(isinstance(a, str) for a in recorded.argv)
    inv = plan.read_argv(recorded.argv) if well_formed else None
    if inv is None:
        raise UsageError(f"resume {args.dir}: its recorded command line does not parse: {recorded.argv}")
    # manifest.json is data from wherever the dir came from: nothing in it may run code unless repeated here.
    flags = [f"{flag}={getattr(args, flag[2:].replace('-', '_'))}" for flag in trust.REPEATABLE_FLAGS.values()]
    flags = [f for f in flags if not f.endswith("=None")]
    vouched = trust.check_recorded(inv.args, [*args.overrides, *flags], preflight.config_groups())
    for flag in flags:
        if flag not in vouched:
            raise ConfigError(flag.partition("=")[0], flag.partition("=")[2], "resume takes a flag only to repeat one "
                              "the sweep recorded (to allow it); the recorded jobs' configs cannot change")  # fmt: skip
    if recorded.kind == "run":  # a run's one job writes into the run dir itself
        if [j.dir for j in recorded.jobs] != ["."]:
            raise UsageError(f"resume {args.dir}: its {manifest.MANIFEST} names a run whose job is not the run dir")
    else:
        trust.check_job_dirs(root, {j.num: j.dir for j in recorded.jobs}, f"{manifest.MANIFEST} job dir")
    added = [o for o in args.overrides if o not in inv.overrides]  # a repeated one is consent, not a new override
    for extra in added:
        if not RESUME_ALLOWED.match(extra):
            allowed = "a resume runs the recorded jobs as they were; only launcher and logging options may be added"
            raise ConfigError(extra.partition("=")[0], extra.partition("=")[2], allowed)
    argv = [*recorded.argv, *added]
    preflight.check_argv(argv)  # exactly as a fresh command line is checked
    inv = plan.read_argv(argv)
    if inv is None:
        raise UsageError(f"resume {args.dir}: its recorded command line no longer parses: {' '.join(argv)}")
    try:
        p = plan.make_plan(inv, max_jobs=len(recorded.jobs))
    except plan.TooManyJobs as exc:
        now = f"the sweep now has {exc.size} jobs, {len(recorded.jobs)} recorded"
        raise ConfigError("resume", str(root), now) from exc
    if not vouched:  # what the spelling checks missed still cannot name code rnnexp does not ship
        typed = [o for o in added if o.startswith("hydra")]
        exempt = [f"hydra.{g}." for g in ("launcher", "job_logging", "hydra_logging") if any(g in o for o in typed)]
        trust.check_hooks(p.hooks, exempt)
    p.root = root  # the recorded dir, wherever the recorded dir pattern would point today
    check_same_jobs(recorded, p)
    return execute(p, argv, resuming=True, guard=guard)


def newest_interrupted(outputs: Path) -> Path:
    """The newest run or sweep under ``outputs`` that a resume would finish: jobs without an ok row, no live holder.

    Newest by when its manifest was written (when it started); a dir another process holds is
    still running, not interrupted. None found: a UsageError saying so.
    """
    from rnnexp import manifest
    from rnnexp.review.coverage import live_holder

    found = []
    for path in outputs.glob(f"*/*/*/{manifest.MANIFEST}"):  # runs/DATE/TIME_ID and multirun/DATE/TIME_ID
        with contextlib.suppress(OSError):
            found.append((path.stat().st_mtime, path.parent))
    for _, root in sorted(found, key=lambda t: t[0], reverse=True):
        try:
            recorded = manifest.load(root)
            if manifest.pending(recorded, root) and live_holder(root) is None:
                return root
        except (OSError, ValueError, AttributeError, TypeError):  # not a readable manifest: not one to resume
            continue
    where = outputs.resolve()
    raise UsageError(f"resume: no interrupted run or sweep under {where}/ (give its dir: {PROG} resume DIR)")


def check_same_jobs(recorded: manifest.Manifest, p: plan.Plan) -> None:
    """Refuse a resume whose plan differs from the recorded jobs (a changed preset or config file)."""
    if len(recorded.jobs) != len(p.jobs):
        raise ConfigError("resume", str(p.root), f"the sweep now has {len(p.jobs)} jobs, {len(recorded.jobs)} recorded")
    for old, new in zip(recorded.jobs, p.jobs, strict=True):
        # The sweeper launches the manifest's own job overrides: they must be the checked command line's.
        if old.num != new.num or old.overrides != new.overrides:
            raise ConfigError(
                f"manifest.json job #{old.num}",
                " ".join(map(str, old.overrides)) if isinstance(old.overrides, list) else old.overrides,
                f"not the job the recorded command line plans (#{new.num}: {' '.join(new.overrides)}); "
                "the manifest was changed, and a resume runs only the recorded command line's jobs",
            )
        if not isinstance(old.config, dict):
            raise ConfigError(f"manifest.json job #{old.num} config", old.config, "must be a mapping of config keys")
        changed = [k for k in {*old.config, *new.config} if str(old.config.get(k)) != str(new.config.get(k))]
        if changed or old.dir != new.dir:
            what = changed[0] if changed else "dir"
            was, now = (old.config.get(what), new.config.get(what)) if changed else (old.dir, new.dir)
            raise ConfigError(what, now, f"job #{old.num} was recorded with {what}={was}; a resume cannot change it")


# --------------------------------------------------------------------------- running


def hydra_quote(value: str) -> str:
    """``value`` as a single-quoted Hydra override value that reads back exactly (any path: spaces, commas, é)."""
    text = re.sub(r"(\\*)'", lambda m: m.group(1) * 2 + "\\'", value)
    text = re.sub(r"(\\+)$", lambda m: m.group(1) * 2, text)
    return "'" + text.replace("${", "\\${") + "'"


def execute(p: plan.Plan, argv: list[str], resuming: bool, guard: SignalGuard | None = None) -> int:
    """Run plan ``p`` into its dir under the dir's lock; gather, write and summarise; return the exit status."""
    if guard is None:  # called on its own (not through run): the signals are this call's to handle
        with guarded_signals() as own:
            return execute(p, argv, resuming, own)
    store = check_store(p.store)
    root = make_dir(p.root)
    command = " ".join([PROG, *(shlex.quote(a) for a in (["resume", str(root)] if resuming else argv))])
    with holding(root, command):
        recorded = open_manifest(root, p, argv, resuming)
        if resuming:  # the dir is this sweep's: what its killed writers left half-written goes
            remove_stale_temps(root, recorded)
        code, stopped = _run_jobs(p, argv, root, guard)
        status, last_line = finish(recorded, root, code, stopped, store)
    if guard.caught:  # asked to stop while the table was written: it was finished first
        status = code or 128 + guard.caught[0]
        names = " and ".join(dict.fromkeys(signal.Signals(n).name for n in guard.caught))
        _error(f"{names} received while the table was written; the table is whole; exiting {status}")
    if last_line:
        last_line()
    return status


def _run_jobs(p: plan.Plan, argv: list[str], root: Path, guard: SignalGuard) -> tuple[int, str]:
    """Hydra runs the planned jobs; (exit code so far, what stopped them: "" if nothing did)."""
    from rnnexp import refcache

    shared = refcache.shared({j.num: j.config for j in p.jobs})
    session = Session(root, p.multirun, len(p.jobs), p.concurrent_jobs(), time.time(), root / CACHE_DIR, shared)
    key = "hydra.sweep.dir" if p.multirun else "hydra.run.dir"
    try:
        try:
            run_hydra([*argv, f"{key}={hydra_quote(str(root))}"], session)
        finally:
            guard.wrap_up()  # from here a signal waits until the table is written (set before any handler can run)
    except KeyboardInterrupt:
        return EXIT_SIGINT, "interrupted (SIGINT)"
    except Interrupted as exc:
        return exc.code, f"terminated ({exc})"
    except Fatal as exc:
        return EXIT_FAILED, str(exc)
    except OSError as exc:
        if exc.errno in DISK_ERRORS:  # the sweep's files cannot be written (multirun.yaml, a job's dir): no bug
            return EXIT_FAILED, f"{CANNOT_WRITE} {root}: {exc.strerror or exc}"
        return EXIT_FAILED, _unexpected(root, exc)
    except Exception as exc:  # Hydra's own failure: one line here, the traceback in the log
        interrupt = _interrupt_behind(exc)
        if interrupt is not None:  # an interrupt inside Hydra's bookkeeping, then a follow-on error
            return interrupt
        return EXIT_FAILED, _unexpected(root, exc)
    return EXIT_OK, ""


def remove_stale_temps(root: Path, recorded: manifest.Manifest) -> None:
    """The temp files killed writers of this sweep left: only for names rnnexp writes, in dirs the manifest names."""
    from rnnexp import manifest, results
    from rnnexp.dirlock import HOLDER

    tables = [results.ROW_FILE, *results.SIDE_TABLES]
    peaks = [f.name for f in root.glob("gemm_peak_*.json")]
    fileio.remove_stale_temps(root, [*tables, manifest.MANIFEST, "env.json", HOLDER, ".rnnexp.probe", *peaks])
    for job in recorded.jobs:
        job_dir = recorded.job_dir(root, job)
        fileio.remove_stale_temps(job_dir, tables)
        fileio.remove_stale_temps(job_dir / ".hydra", ["config.yaml", "overrides.yaml"])


@contextlib.contextmanager
def holding(root: Path, command: str) -> Iterator[None]:
    """The dir's lock; a lock whose holder record cannot be written (a full disk) is one line, and is let go."""
    lock = DirLock(root, command)
    try:
        lock.__enter__()
    except OSError as exc:  # acquired, but its record was not written: release it, leave no lock file
        with contextlib.suppress(OSError):
            lock.__exit__(None, None, None)
        raise OutputError(f"cannot take the lock of {root}: {exc.strerror or exc}", EXIT_FAILED) from exc
    with contextlib.ExitStack() as release:
        release.push(lock)
        yield


def make_dir(root: Path) -> Path:
    """Create the run or sweep dir; a path that cannot be one is bad input (2), a full or broken disk is not (1)."""
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = fileio.write_text_atomic(root / ".rnnexp.probe", "")
        probe.unlink(missing_ok=True)  # a second run starting into the same dir may have removed it: the lock decides
    except OSError as exc:
        bad_path = exc.errno in (errno.ENOTDIR, errno.EEXIST, errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOENT)
        reason = exc.strerror or str(exc)
        raise OutputError(
            f"output dir {root}: {reason} (choose a writable dir, e.g. hydra.sweep.dir=...)",
            EXIT_USAGE if bad_path else EXIT_FAILED,
        ) from exc
    return root


def open_manifest(root: Path, p: plan.Plan, argv: list[str], resuming: bool) -> manifest.Manifest:
    """This dir's manifest: the recorded one on resume, else a new one (refused if the dir holds another run)."""
    from rnnexp import manifest, results

    if resuming:
        return manifest.load(root)
    kind = "sweep" if p.multirun else "run"
    if manifest.exists(root) or (root / "multirun.yaml").exists() or (root / results.ROW_FILE).exists():
        raise OutputError(
            f"{root} holds a run or sweep already; finish it with: {PROG} resume {shlex.quote(str(root))}, "
            f"or give this {kind} its own dir",
            EXIT_USAGE,
        )
    record = manifest.Manifest(kind, argv, [manifest.Job(j.num, j.overrides, j.config, j.dir) for j in p.jobs])
    record.rnnexp_version = __version__
    try:
        record.write(root)
    except OSError as exc:
        raise OutputError(f"cannot write {root / manifest.MANIFEST}: {exc.strerror or exc}", EXIT_FAILED) from exc
    return record


def _interrupt_behind(exc: BaseException) -> tuple[int, str] | None:
    """(exit code, words) when ``exc`` was raised while handling an interrupt (it is in its context chain)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, KeyboardInterrupt):
            return EXIT_SIGINT, "interrupted (SIGINT)"
        if isinstance(exc, Interrupted):
            return exc.code, f"terminated ({exc})"
        exc = exc.__context__ or exc.__cause__
    return None


def _unexpected(root: Path, exc: BaseException) -> str:
    _trace_if_asked(exc)
    logged = logs.append_traceback(root / "rnnexp.log", exc, f"{datetime.now(timezone.utc).isoformat()} driver failure")
    where = f" (traceback in {root / 'rnnexp.log'})" if logged else ""
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}{where}"


class SignalGuard:
    """SIGINT and SIGTERM for one command: raised while it works, held back once its wrap-up begins.

    Until :meth:`wrap_up`, SIGINT raises KeyboardInterrupt and SIGTERM ``Interrupted(143)``, so jobs
    stop where they are. From then on (the table gathered and written, the summary, the exit) a
    signal is only recorded in ``caught``: the files are finished first, and the exit status and a
    line say what came. The switch is one append to a list (no Python frame, so no handler can run
    between the decision and the flag), which closes the window in which a signal used to kill
    the process outright or skip the table.
    """

    def __init__(self) -> None:
        self.wrapping: list[bool] = []
        self.caught: list[int] = []

    def wrap_up(self) -> None:
        self.wrapping.append(True)

    def handle(self, signum: int, frame) -> None:
        if self.wrapping:
            self.caught.append(signum)
            return
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise Interrupted(128 + signum)


@contextlib.contextmanager
def guarded_signals(exiting: bool = False) -> Iterator[SignalGuard]:
    """A SignalGuard for SIGINT and SIGTERM (one the process ignores stays ignored, as under nohup or ``&``).

    On the way out the previous handlers come back, or, when the process is ``exiting``, both
    signals are ignored: nothing is left to stop, and the status is decided.
    """
    guard = SignalGuard()
    try:
        old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        for s, h in old.items():
            if h != signal.SIG_IGN:
                signal.signal(s, guard.handle)
    except ValueError:  # not the main thread: leave signals alone
        yield guard
        return
    try:
        yield guard
    finally:
        guard.wrap_up()  # a signal now must not raise inside this finally
        for s, h in old.items():
            signal.signal(s, signal.SIG_IGN if exiting else signal.SIG_DFL if h is None else h)


def run_hydra(hydra_argv: list[str], session: Session) -> None:
    """Hydra composes and launches the jobs; each calls ``task`` with this session."""
    import hydra

    from rnnexp import plan

    def rnnexp_task(cfg):  # Hydra names the job after its task; the name is set in conf/config.yaml anyway
        from rnnexp.job import run_task

        return run_task(session, cfg)

    entry = hydra.main(version_base="1.3", config_path=str(plan.conf_dir()), config_name=plan.CONFIG_NAME)
    saved_argv, saved_full = sys.argv, os.environ.get("HYDRA_FULL_ERROR")
    sys.argv = [PROG, *hydra_argv]
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra raises instead of printing a trace and exiting: main() reports
    try:
        entry(rnnexp_task)()
    finally:
        sys.argv = saved_argv
        if saved_full is None:
            os.environ.pop("HYDRA_FULL_ERROR", None)
        else:
            os.environ["HYDRA_FULL_ERROR"] = saved_full


def _quietly(argv: list[str]) -> str:
    """What Hydra prints for ``argv`` (a completion query): its answer, and nothing on the terminal."""
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        _hydra_only(argv)
    return out.getvalue()


def _hydra_only(argv: list[str]) -> int:
    """Hand a command that runs no job (help, --cfg, --info, a flag argparse refuses) to Hydra as it is."""
    import hydra

    from rnnexp import plan

    entry = hydra.main(version_base="1.3", config_path=str(plan.conf_dir()), config_name=plan.CONFIG_NAME)
    saved = sys.argv
    sys.argv = [PROG, *argv]
    try:
        entry(lambda cfg: None)()
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else EXIT_FAILED
    finally:
        sys.argv = saved
    return EXIT_OK


# --------------------------------------------------------------------------- the end of a run or sweep


def finish(
    recorded: manifest.Manifest, root: Path, code: int, stopped: str, store: Path | None = None
) -> tuple[int, Callable[[], None] | None]:
    """Gather the table by the manifest, write it and env.json, print the summary, add it to the history store.

    Returns the final exit status and the closing line still to print (the resume hint, if any):
    the caller prints it last, after anything it has to add.
    """
    from rnnexp import results, schema
    from rnnexp.review import summary

    hint = f"{PROG} resume {shlex.quote(str(root))}"
    gathered = results.gather(recorded, root)
    try:
        path = results.write_tables(gathered, root)
        write_env(root)
    except OSError as exc:  # one line: what stopped the jobs (if anything), the table, and the way on
        why = f"{stopped}; " if stopped and not stopped.startswith(CANNOT_WRITE) else ""  # said once is enough
        text = f"{why}cannot write the table in {root}: {exc.strerror or exc}; the jobs' rows are kept in their dirs"
        return code or EXIT_FAILED, functools.partial(_error, f"{text}; to finish it: {hint}")
    finally:
        _remove_cache(root / CACHE_DIR)
    try:
        table = schema.read_table(path) if gathered.rows else None
    except schema.TableError as exc:  # a value no table column holds (the rows stay as written): say so, go on
        _error(f"cannot summarise {path}: {exc}")
        code = code or EXIT_FAILED
        table = None
    print(summary.table(table) if table is not None else "(no rows)", flush=True)
    print(f"results: {path}", flush=True)
    done, total = len(gathered.rows) - len(gathered.lost), len(recorded.jobs)
    failed = gathered.failed
    if failed:
        print(f"{failed} of {total} jobs failed (an error, a lost job, or parity/shape disagreeing)", file=sys.stderr)
    last = None
    if stopped:
        last = functools.partial(_error, f"{stopped}: {done} of {total} jobs finished; to finish the rest: {hint}")
    elif gathered.missing or gathered.lost:
        text = f"{len(gathered.missing) + len(gathered.lost)} of {total} jobs have no row; to run them: {hint}"
        last = functools.partial(print, text, file=sys.stderr, flush=True)
    if table is not None and store is not None:
        add_to_history(store, root, table)
    if code:
        return code, last
    return (EXIT_FAILED if failed or gathered.missing else EXIT_OK), last


# --------------------------------------------------------------------------- the history store (rnnexp.store)


def check_store(path: Path | None) -> Path | None:
    """Before anything runs: the store's dir exists and is writable and its file is a store (bad input, exit 2).

    The default store's dir, outputs/, is made as the default run dirs are, when the rows are added; if
    even that cannot be (a read-only working dir, the run dir elsewhere), that is the end's one warning.
    """
    if path is None:
        return None
    from rnnexp import store

    if path == store.resolve() and not path.parent.exists():
        return path  # made at the end, when the rows are added (a bad run dir must leave nothing behind)
    try:
        return store.check_target(path)
    except store.StoreError as exc:
        raise OutputError(f"{exc} (config key store)", exc.code) from exc


def add_to_history(path: Path, root: Path, table=None) -> None:
    """Append the run or sweep (``table``: its results.csv, read) to the store; a failure is one warning line."""
    from rnnexp import store, sweep_record

    try:
        if path == store.resolve():
            path.parent.mkdir(parents=True, exist_ok=True)
        added = store.append(path, sweep_record.read(root, table))
    except store.Duplicate:
        return  # a resume that ran nothing new: the store has this state of the sweep already
    except Exception as exc:  # noqa: BLE001 - the store is a record of the sweep, never a reason to fail it
        logs.append_traceback(root / "rnnexp.log", exc, f"{datetime.now(timezone.utc).isoformat()} history store")
        print(f"{PROG}: warning: not added to the history store {path}: {' '.join(str(exc).split())}", file=sys.stderr)
        return
    print(f"history: sweep {added.sweep_id} in {path}", flush=True)


def _remove_cache(folder: Path) -> None:
    import shutil

    shutil.rmtree(folder, ignore_errors=True)


def write_env(root: Path) -> None:
    """env.json: versions, libraries, CPU, cores, host, git state, load, and the GEMM peaks measured here."""
    from rnnexp import envinfo, peak
    from rnnexp.runner import environment

    envinfo.write_env(root / "env.json", {"gemm_peaks": peak.cached_peaks(root)}, env=environment())


if __name__ == "__main__":
    main()
