"""What a command line will run, worked out before anything runs: the jobs, their configs and their dirs.

``make_plan(invocation)`` reads the command line as Hydra will, composes the configuration with
Hydra's compose API, expands a sweep as Hydra's basic sweeper does (``hydra_compat.expand_sweep``),
gives every job its typed config and its output dir, and resolves the run or sweep dir once
(``${now:...}`` included), so the CLI can pass it to Hydra explicitly and record the whole plan in
the dir's manifest. A job whose values do not compose is refused here, before any job runs.

Composing thousands of jobs from scratch would cost ~0.1 s each, so the config is composed once
per distinct set of structural overrides (config-group choices, ``+key``, ``hydra.*``) and each
job's plain ``key=value`` overrides are applied to a copy (``hydra_compat.apply_value_overrides``,
tests/test_plan.py checks the result equals Hydra's own compose).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.errors import HydraException, OverrideParseException
from omegaconf import DictConfig, OmegaConf, open_dict, read_write
from omegaconf.errors import OmegaConfBaseException

from rnnexp import hydra_compat, trust
from rnnexp.confcopy import copy_config
from rnnexp.config import ConfigError, RunConfig, as_flat_dict, conf_dir
from rnnexp.override import check_value, from_hydra, hydra_errors
from rnnexp.override import parse as parse_one

_PKG = Path(__file__).resolve().parent
CONFIG_NAME = "config"
RNNEXP_FLAGS = ("--dry-run",)  # rnnexp's own flags, which Hydra's argparse does not know
# The most jobs a sweep may have unless --max-jobs says otherwise: a typo such as range(0,100000000)
# is refused at once instead of planning for minutes and filling memory.
MAX_JOBS = 200_000
# Hydra flags that run no job (help, shell completion, config info): Hydra answers them itself.
NO_JOB_FLAGS = ("help", "hydra_help", "shell_completion", "info", "experimental_rerun", "cfg")
SWEEPERS = ("RnnexpSweeper", "BasicSweeper")  # sweepers whose job list rnnexp can plan


def _register() -> None:
    """The schema every config composes onto, and the per-process token in default dir names."""
    import uuid

    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name="rnnexp_schema", node=RunConfig)
    if not OmegaConf.has_resolver("rnnexp_uid"):
        # Two runs started in the same second never share a dir.
        OmegaConf.register_new_resolver("rnnexp_uid", lambda: uuid.uuid4().hex[:6], use_cache=True)


_register()


@dataclass
class Invocation:
    """A command line as Hydra reads it: its flags and overrides."""

    args: argparse.Namespace
    overrides: list[str]

    @property
    def runs_jobs(self) -> bool:
        return not any(getattr(self.args, flag, None) for flag in NO_JOB_FLAGS)

    @property
    def multirun(self) -> bool:
        mode = [o.partition("=")[2] for o in self.overrides if o.startswith("hydra.mode=")]
        return bool(self.args.multirun) or (bool(mode) and mode[-1] == "MULTIRUN")

    @property
    def config_name(self) -> str:
        return self.args.config_name or CONFIG_NAME

    def primary_dir(self) -> Path:
        """The primary config dir: ``--config-path`` (relative to rnnexp's package, as hydra.main reads it) or conf/."""
        if self.args.config_path:
            path = Path(self.args.config_path)
            return path if path.is_absolute() else (_PKG / path).resolve()
        return conf_dir()


def read_argv(argv: Sequence[str]) -> Invocation | None:
    """Hydra's reading of ``argv``; None where Hydra's argparse would exit (a bad flag, --version)."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        try:
            args = hydra_compat.args_parser().parse_args(list(argv))
        except SystemExit:
            return None
    return Invocation(args, list(args.overrides))


@dataclass
class Flags:
    """rnnexp's own flags, taken off the command line before Hydra reads it."""

    dry_run: bool = False
    max_jobs: int = MAX_JOBS


def take_flags(argv: Sequence[str]) -> tuple[list[str], Flags]:
    """(``argv`` without rnnexp's flags, those flags): ``--dry-run``, ``--max-jobs N`` / ``--max-jobs=N``."""
    rest, flags, items = [], Flags(), list(argv)
    while items:
        arg = items.pop(0)
        if arg in RNNEXP_FLAGS:
            flags.dry_run = True
        elif arg == "--max-jobs" or arg.startswith("--max-jobs="):
            value = arg.partition("=")[2] if "=" in arg else (items.pop(0) if items else "")
            if not value.isdigit() or int(value) < 1:
                raise ConfigError("--max-jobs", value, "must be a positive integer (the most jobs a sweep may have)")
            flags.max_jobs = int(value)
        else:
            rest.append(arg)
    return rest, flags


@dataclass
class Job:
    """One job of a plan: its number, its overrides (as Hydra's task overrides), its config and its dir."""

    num: int
    overrides: list[str]
    config: dict[str, Any]  # rnnexp.config.as_flat_dict of its RunConfig: the row's config columns
    dir: str  # its output dir, relative to the plan's root ("." for a single run)


@dataclass
class Plan:
    multirun: bool
    root: Path  # the run or sweep dir, absolute
    jobs: list[Job]
    launcher: dict[str, Any] = field(default_factory=dict)  # hydra.launcher, resolved
    size: int = 0  # the sweep's number of jobs: len(jobs), unless it was planned only in part (a sample)
    hooks: dict[str, str] = field(default_factory=dict)  # where its Hydra config names code (trust.hooks)
    store: Path | None = None  # the history store the finished rows go to (config key store), absolute; None = none

    def __post_init__(self) -> None:
        self.size = self.size or len(self.jobs)

    def concurrent_jobs(self) -> int:
        """How many of this plan's jobs share this machine's cores at once.

        Hydra's basic launcher and rnnexp's run one at a time; joblib runs ``n_jobs``; submitit's
        local launcher runs every job of the sweep at once; on SLURM each job owns its CPUs, so 1.
        """
        from rnnexp.threads import usable_cores

        target, total = str(self.launcher.get("_target_", "")), len(self.jobs)
        if "joblib" in target:
            n = int(self.launcher.get("n_jobs", -1) or -1)
            n = usable_cores() + 1 + n if n < 0 else n  # joblib: -1 = every core, -2 = all but one, ...
            return max(1, min(total, n))
        if target.endswith("submitit_launcher.LocalLauncher"):
            return max(1, total)
        return 1


@contextlib.contextmanager
def hydra_session(inv: Invocation) -> Iterator[Any]:
    """Hydra initialised on the invocation's config dirs (cleared on exit); yields its config loader."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(inv.primary_dir()), version_base="1.3", job_name="rnnexp"):
        yield GlobalHydra.instance().config_loader()


def _searchpath(inv: Invocation) -> list[str]:
    """``--config-dir DIR`` as an override: what Hydra does with it, for the compose API."""
    if not inv.args.config_dir or any(o.startswith("hydra.searchpath=") for o in inv.overrides):
        return []
    return [f"hydra.searchpath=['file://{Path(inv.args.config_dir).resolve()}']"]


class _Composer:
    """Compose job configs fast: once per distinct set of structural overrides, then plain values on a copy."""

    def __init__(self, inv: Invocation, loader: Any, extra: list[str]) -> None:
        self.inv, self.loader, self.extra = inv, loader, extra
        self.parser = OverridesParser.create(config_loader=loader)
        self.templates: dict[tuple[str, ...], tuple[DictConfig, DictConfig, bool]] = {}
        self.groups: dict[str, set[str]] = {}

    def is_group(self, key: str) -> bool:
        parent, _, name = key.rpartition("/")
        if parent not in self.groups:
            self.groups[parent] = set(self.loader.list_groups(parent))
        return name in self.groups[parent]

    def structural(self, o: Override) -> bool:
        """Needs Hydra's full compose: a group choice, an add/delete, a package, a Hydra setting, a dict."""
        if o.is_hydra_override() or o.is_add() or o.is_force_add() or o.is_delete() or o.package is not None:
            return True
        return self.is_group(o.key_or_group) or isinstance(o.value(), dict)

    def template(self, structure: tuple[str, ...]) -> tuple[DictConfig, DictConfig, bool]:
        """(full config, its task part, whether that reads ``${hydra:...}``) for these structural overrides."""
        if structure not in self.templates:
            full = compose(self.inv.config_name, overrides=[*structure, *self.extra], return_hydra_config=True)
            task = copy.deepcopy(full)
            with read_write(task), open_dict(task):
                del task["hydra"]
            self.templates[structure] = (full, task, HYDRA_RESOLVER in OmegaConf.to_yaml(task))
        return self.templates[structure]

    def compose(self, parsed: list[Override], num: int) -> tuple[DictConfig, dict[str, Any]]:
        """(the job's full template, set to this job's number and override_dirname; its flat config)."""
        structure = tuple(o.input_line for o in parsed if self.structural(o))
        full, task, reads_hydra = self.template(structure)
        _set_job(full, parsed, num)  # before anything resolves ${hydra:job.num} and the like
        task = copy_config(task)
        values = [o for o in parsed if not self.structural(o)]
        hydra_compat.apply_value_overrides(task, values)
        reads_hydra = reads_hydra or any(HYDRA_RESOLVER in str(o.value()) for o in values)
        with hydra_config(full, reads_hydra):
            typed: RunConfig = OmegaConf.to_object(task)
        if values and _reads_app_keys(full, "hydra.sweep.subdir"):  # e.g. ${hidden_size}: this job's value
            full = copy_config(full)
            hydra_compat.apply_value_overrides(full, values)
        return full, as_flat_dict(typed)


def _reads_app_keys(full: DictConfig, key: str) -> bool:
    """Whether the raw value of ``key`` interpolates anything but Hydra's own settings."""
    raw = _raw_value(full, key)
    return any(not ref.startswith(("hydra.", "hydra:")) for ref in re.findall(r"\$\{\s*([^}]*)", raw))


HYDRA_RESOLVER = "${hydra:"  # an interpolation that reads HydraConfig, which must then be set


def _raw_value(cfg: DictConfig, key: str) -> str:
    """``key``'s value as written, interpolations unresolved (``key`` names a value in a small node: hydra.sweep)."""
    parent, _, name = key.rpartition(".")
    return str(OmegaConf.to_container(OmegaConf.select(cfg, parent), resolve=False)[name])


def hydra_config(full: DictConfig, needed: bool) -> contextlib.AbstractContextManager[None]:
    """HydraConfig set to ``full`` for the duration when ``needed`` (setting it copies the hydra node: ~5 ms)."""
    return hydra_compat.hydra_config_set_to(full) if needed else contextlib.nullcontext()


def _set_job(full: DictConfig, parsed: list[Override], num: int) -> None:
    """A job's ``hydra.job.num``/``id`` and ``override_dirname`` on its template, as Hydra sets them."""
    names = full.hydra.job.config.override_dirname
    app = [o for o in parsed if not o.is_hydra_override()]
    with read_write(full.hydra), open_dict(full.hydra):
        full.hydra.job.num = full.hydra.job.id = num
        full.hydra.job.override_dirname = hydra_compat.override_dirname(
            app, list(names.exclude_keys), names.item_sep, names.kv_sep
        )


def _job_dir(full: DictConfig) -> str:
    """A sweep job's dir relative to the sweep dir: ``hydra.sweep.subdir`` for the job ``full`` is set to."""
    return _select_dir(full, "hydra.sweep.subdir")


def _select_dir(cfg: DictConfig, key: str) -> str:
    """The dir ``key`` names, resolved; a ConfigError naming it if an interpolation in it cannot be."""
    raw = _raw_value(cfg, key)
    try:
        with hydra_config(cfg, HYDRA_RESOLVER in raw):
            return str(OmegaConf.select(cfg, key))
    except OmegaConfBaseException as exc:
        why = str(exc).splitlines()[0]
        allowed = f"{why}; a dir may use ${{now:FORMAT}}, ${{hydra:KEY}} and config keys such as ${{hidden_size}}"
        raise ConfigError(key, raw, allowed) from exc


def _parse(overrides: list[str], loader: Any) -> list[Override]:
    try:
        return OverridesParser.create(config_loader=loader).parse_overrides(overrides)
    except (OverrideParseException, ValueError):  # name the first override that fails, in one line
        for text in overrides:
            parse_one(text)
        raise


def _job_overrides(inv: Invocation, master: DictConfig, loader: Any, limit: int | None) -> Sequence[list[str]]:
    """Every job's overrides: the preset's sweep params first, the command line's after (Hydra's order).

    A sweep comes back unexpanded (``hydra_compat.SweepSpace``, jobs by index); one larger than
    ``limit`` is refused here, before a single job is composed or even listed.
    """
    if not inv.multirun:
        return [list(inv.overrides)]
    target = str(master.hydra.sweeper.get("_target_", ""))
    if not target.endswith(SWEEPERS):
        raise ConfigError("hydra/sweeper", target, "rnnexp plans every job up front; allowed: rnnexp, basic")
    params = master.hydra.sweeper.get("params")
    params = OmegaConf.to_container(params, resolve=False) if params else {}
    specs = [f"{k}={v}" for k, v in params.items()]
    try:
        space = hydra_compat.SweepSpace(_parse([*specs, *inv.overrides], loader), limit)
    except hydra_compat.SweepSyntaxError as exc:
        o = exc.override
        raise ConfigError(o.key_or_group, o.input_line.partition("=")[2], exc.allowed) from exc
    if limit is not None and space.size > limit:
        raise TooManyJobs(space.size, limit)
    return space


class TooManyJobs(ConfigError):
    """A sweep above the bound on jobs: refused before it is expanded (the bound is ``--max-jobs``)."""

    def __init__(self, size: int, limit: int) -> None:
        self.size, self.limit = size, limit
        super().__init__(
            "sweep", f"{size:,} jobs", f"more than the {limit:,} a sweep may have; to allow it: --max-jobs {size}"
        )


def make_plan(inv: Invocation, max_jobs: int | None = MAX_JOBS, sample: int | None = None, whole: int = 0) -> Plan:
    """The jobs ``inv`` will run, each composed and typed, and the dirs they will write; ConfigError if any cannot.

    A sweep of more than ``max_jobs`` (None: no bound) is refused before it is expanded. With
    ``sample``, a sweep of more jobs than ``whole`` (and ``2 * sample``) is planned only in part: its
    first and last ``sample`` jobs (``Plan.size`` says how many there are), what a dry run can show.
    """
    extra = _searchpath(inv)
    with hydra_session(inv) as loader:
        parsed = _parse(inv.overrides, loader)
        shared = [o.input_line for o in parsed if not o.is_sweep_override()]
        with hydra_errors(parsed):
            master = compose(inv.config_name, overrides=[*shared, *extra], return_hydra_config=True)
        composer = _Composer(inv, loader, extra)
        space = _job_overrides(inv, master, loader, max_jobs)
        size = space.size if isinstance(space, hydra_compat.SweepSpace) else len(space)
        if sample is None or size <= max(whole, 2 * sample):
            nums: Sequence[int] = range(size)
        else:
            nums = [*range(sample), *range(size - sample, size)]
        check_session_keys([space[num] for num in nums])
        jobs = [_plan_job(composer, num, space[num], inv.multirun) for num in nums]
        if not jobs:
            raise ConfigError("sweep", " ".join(inv.overrides), "expands to 0 jobs")
        root_key = "hydra.sweep.dir" if inv.multirun else "hydra.run.dir"
        root = Path(os.path.abspath(_select_dir(master, root_key)))
        launcher = OmegaConf.to_container(master.hydra.launcher, resolve=True)
        hooks = trust.hooks(OmegaConf.to_container(master.hydra, resolve=False))
    if inv.multirun:
        trust.check_job_dirs(root, {j.num: j.dir for j in jobs}, "hydra.sweep.subdir")
    check_cpus(jobs, launcher)
    store = master.get("store")
    store_path = Path(os.path.abspath(store)) if store is not None else None
    return Plan(inv.multirun, root, jobs, launcher, size, hooks, store_path)


def check_session_keys(job_overrides: list[list[str]]) -> None:
    """Refuse a sweep whose jobs differ in a session key (store, tracking): one store and tracker per sweep."""
    from rnnexp.config import SESSION_KEYS

    seen: dict[str, set[str]] = {}
    for overrides in job_overrides:
        for text in overrides:
            key, _, value = text.lstrip("+~").partition("=")
            if key.split(".", 1)[0].split("/", 1)[0] in SESSION_KEYS:
                seen.setdefault(key, set()).add(value)
    for key, values in seen.items():
        if len(values) > 1:
            allowed = "a setting of the whole sweep (where its rows go), the same for every job: it cannot be swept"
            raise ConfigError(key, ",".join(sorted(values)), allowed)


def check_cpus(jobs: list[Job], launcher: dict[str, Any]) -> None:
    """Refuse jobs that would use more threads than the CPUs a cluster launcher gives each of them.

    The SLURM launcher's ``cpus_per_task`` is resolved once, from the command line's ``threads``:
    an array cannot give its tasks different counts, so a sweep over threads would oversubscribe.
    """
    cpus = launcher.get("cpus_per_task")
    if not isinstance(cpus, int) or "slurm" not in str(launcher.get("_target_", "")).lower():
        return
    most = max(int(j.config.get("threads", 1)) for j in jobs)
    if most > cpus:
        allowed = (
            f"more threads than the {cpus} CPUs each SLURM task gets (hydra.launcher.cpus_per_task); "
            "run a sweep per thread count, or set hydra.launcher.cpus_per_task"
        )
        raise ConfigError("threads", most, allowed)


def _plan_job(composer: _Composer, num: int, overrides: list[str], multirun: bool) -> Job:
    """One job of the plan; a ConfigError naming the override (and the job, in a sweep) if it does not compose."""
    parsed = composer.parser.parse_overrides(overrides)
    try:
        full, flat = composer.compose(parsed, num)
    except (HydraException, OmegaConfBaseException) as exc:
        error = _config_error(exc, parsed)
        where = f" (job #{num}: {' '.join(overrides)})" if multirun else ""
        raise ConfigError(error.key, error.value, error.allowed + where) from exc
    task = [o.input_line for o in parsed if not o.is_hydra_override()]
    return Job(num, task, flat, _job_dir(full) if multirun else ".")


def _config_error(exc: Exception, parsed: list[Override]) -> ConfigError:
    """Why a job did not compose, in one line: the schema's words for a value's type, else Hydra's, cleaned."""
    try:
        for o in parsed:
            check_value(o)
    except ConfigError as typed:
        return typed
    return from_hydra(exc, parsed)
