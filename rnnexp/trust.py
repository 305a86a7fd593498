"""What a sweep may touch and what a recorded sweep may make Hydra do: the checks behind docs/trust.md.

A sweep dir travels (CI artifacts, a colleague's results), so ``rnnexp resume DIR`` treats its
``manifest.json`` as data, not as a program. Hydra imports and calls whatever a config names
(``hydra.callbacks``, any ``_target_``, a launcher, a logging handler's ``()``/``class``), loads
YAML from any path a group choice or ``--config-dir`` points at, and writes where the dirs say.
So a recorded command line may hold only what a sweep needs to be re-planned: the app's keys, the
shipped presets and options by name, and an allow-list of Hydra settings (dirs, mode, verbosity,
the shipped launchers and their scheduler options). Anything else is refused in one line naming
it, unless the user repeats it on the ``resume`` command line, which makes it their own choice.
:func:`check_hooks` then checks the composed result, so what a spelling check missed (a new
Hydra key, a way round it) still cannot call code that rnnexp does not ship.

Job dirs (:func:`check_job_dirs`) must lie inside their sweep dir and differ, whether a fresh
``hydra.sweep.subdir`` or a recorded manifest names them: a job writes, replaces and removes
files in its dir, which must therefore be the sweep's own.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from rnnexp import hydra_compat
from rnnexp.config import ConfigError
from rnnexp.override import parse as parse_one
from rnnexp.override import raw_value

# Hydra's flags a recorded command line may carry; the others read other configs (--config-dir,
# --config-path, --config-name), load a pickle (--experimental-rerun) or run no job at all.
RECORDED_FLAGS = ("multirun", "run", "overrides")
REPEATABLE_FLAGS = {"config_dir": "--config-dir", "config_path": "--config-path", "config_name": "--config-name"}
# The launchers and sweepers rnnexp ships (and Hydra's basic ones, which it can plan for), by group option.
LAUNCHERS = ("rnnexp", "slurm", "basic")
SWEEPERS = ("rnnexp", "basic")
# Logging options Hydra and rnnexp ship: handlers that write the job's own log or the terminal.
LOGGING = {"hydra/job_logging": ("rnnexp", "default", "disabled", "none", "stdout")}
LOGGING["hydra/hydra_logging"] = ("default", "disabled", "none", "hydra_debug")
# Hydra settings a recorded sweep may hold: where its dirs are (checked below), its mode and verbosity.
HYDRA_KEYS = ("hydra.sweep.dir", "hydra.sweep.subdir", "hydra.run.dir", "hydra.mode", "hydra.verbose")
HYDRA_KEYS += ("hydra.job.chdir", "hydra.sweeper.max_batch_size")
HYDRA_KEYS += tuple(f"hydra.job.config.override_dirname.{k}" for k in ("kv_sep", "item_sep", "exclude_keys"))
# What the composed config may name as code: the shipped launchers, sweepers and logging classes.
HOOKS = frozenset({
    "hydra_plugins.rnnexp_launcher.launcher.RnnexpLauncher", "hydra_plugins.rnnexp_launcher.sweeper.RnnexpSweeper",
    "hydra_plugins.rnnexp_launcher.slurm.RnnexpSlurmLauncher",
    *hydra_compat.BASIC_PLUGINS, "logging.StreamHandler", "logging.FileHandler",
    "rnnexp.logs.TerminalFilter", "rnnexp.logs.QuietFileHandler", "ext://sys.stdout", "ext://sys.stderr",
})  # fmt: skip
CODE_KEYS = ("_target_", "()", "class")  # instantiate's target; logging.config's factory and handler class
# The callback rnnexp's own conf/config.yaml registers (it reads the tracking key): trusted only exactly as shipped.
SHIPPED_CALLBACKS = {"rnnexp_tracking": {"_target_": "hydra_plugins.rnnexp_launcher.tracking.TrackingCallback"}}


# hydra.launcher.KEY a recorded sweep may set: what the scheduler is asked for and how long it is waited
# on (data). Not the keys that name code or paths: ``setup`` (shell lines in the batch script),
# ``additional_parameters`` and ``srun_args`` (any sbatch/srun flag), ``lost_recorder`` (a callable),
# ``submitit_folder`` (where job files are written), ``_target_``. tests/test_trust.py pins that every
# option of the shipped launchers is in one list or the other.
LAUNCHER_OPTIONS = frozenset({
    "timeout_min", "cpus_per_task", "gpus_per_node", "tasks_per_node", "mem_gb", "nodes", "name",
    "stderr_to_stdout", "partition", "qos", "comment", "constraint", "exclude", "gres", "cpus_per_gpu",
    "gpus_per_task", "mem_per_gpu", "mem_per_cpu", "account", "signal_delay_s", "max_num_timeout",
    "array_parallelism", "poll_s", "lost_after_s", "no_answer_s", "max_wait_min",
})  # fmt: skip
LAUNCHER_CODE = frozenset(
    {"setup", "additional_parameters", "srun_args", "lost_recorder", "submitit_folder", "_target_"}
)


def _refuse(text: str, why: str) -> ConfigError:
    key, _, value = text.partition("=")
    return ConfigError(
        key,
        value,
        f"{why}; a recorded sweep is data, so resume will not run it from manifest.json "
        f"(if you trust it, repeat it after the dir: rnnexp resume DIR {_quoted(text)})",
    )


def _quoted(text: str) -> str:
    import shlex

    return shlex.quote(text)


def check_recorded(args: Any, consent: Iterable[str], groups: Iterable[str]) -> list[str]:
    """Refuse what a recorded command line (Hydra's parsed ``args``) may not do, unless ``consent`` repeats it.

    ``consent`` holds the resume command line's overrides and flags (``--config-dir=DIR``);
    ``groups`` the config groups of the shipped conf dir (``timing``, ``experiment``, ...).
    Returns what passed only because it was repeated (the user vouched for it).
    """
    consent, groups, vouched = set(consent), set(groups), []
    for name, value in vars(args).items():
        if name in RECORDED_FLAGS or not value:
            continue
        flag = REPEATABLE_FLAGS.get(name, "--" + name.replace("_", "-"))
        text = f"{flag}={value}" if isinstance(value, str) else flag
        if text in consent:
            vouched.append(text)
        elif name in REPEATABLE_FLAGS:
            raise _refuse(text, "reads configs that are not rnnexp's own (they may name code to run)")
        else:
            raise _refuse(text, "a recorded command line runs jobs; Hydra's other flags are not recorded")
    for text in args.overrides:
        try:
            check_override(text, groups)
        except ConfigError:
            if text not in consent:
                raise
            vouched.append(text)
    return vouched


def check_override(text: str, groups: set[str]) -> None:
    """One recorded override: refused if Hydra could import or call code, read other configs or write elsewhere."""
    o = parse_one(text)
    key, value = o.key_or_group, raw_value(o)
    if "_target_" in text or "()" in key:
        raise _refuse(text, "names code for Hydra to import and call")
    if o.package is not None:
        raise _refuse(text, "moves a config to another package (it could land under hydra)")
    if key.startswith("hydra/"):
        shipped = {"hydra/launcher": LAUNCHERS, "hydra/sweeper": SWEEPERS, **LOGGING}.get(key)
        if shipped is None or value not in shipped:
            allowed = f"allowed: {', '.join(shipped)}" if shipped else "not a choice a sweep records"
            raise _refuse(text, f"not one of the {key} options rnnexp ships ({allowed})")
        return
    if key == "hydra" or key.startswith("hydra."):
        if key.startswith("hydra.callbacks") or key == "hydra":
            raise _refuse(text, "Hydra callbacks import and call code")
        name = key.removeprefix("hydra.launcher.")
        if key in HYDRA_KEYS or (key.startswith("hydra.launcher.") and name in LAUNCHER_OPTIONS):
            return
        raise _refuse(text, "not a Hydra setting a recorded sweep may hold (dirs, mode, verbosity, scheduler options)")
    if key in groups and any(c in value for c in ("/", "\\", "..")):
        raise _refuse(text, f"{key} takes the name of a file in rnnexp's conf/{key}/, not a path")


def hooks(hydra_node: Any) -> dict[str, str]:
    """Every place in a composed ``hydra`` node (a plain container) that names code: dotted path -> value."""
    found: dict[str, str] = {}

    def walk(node: Any, path: str) -> None:
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for k, v in items:
            where = f"{path}.{k}"
            if isinstance(v, (dict, list)):
                walk(v, where)
            elif str(k) in CODE_KEYS or str(v).startswith("ext://"):  # logging.config imports what ext:// names
                found[where] = str(v)

    walk(hydra_node, "hydra")
    for name, cb in (hydra_node.get("callbacks") or {}).items():
        if SHIPPED_CALLBACKS.get(str(name)) == cb:  # rnnexp's own, unchanged: shipped code, not a hook
            found = {k: v for k, v in found.items() if not k.startswith(f"hydra.callbacks.{name}.")}
            continue
        found.setdefault(f"hydra.callbacks.{name}", str(cb))
    return found


def check_hooks(found: dict[str, str], exempt: Iterable[str] = ()) -> None:
    """Refuse code references rnnexp does not ship (a callback always); paths under ``exempt`` are the user's."""
    exempt = tuple(exempt)
    for where, value in found.items():
        if exempt and where.startswith(exempt):
            continue
        if where.startswith("hydra.callbacks") or value not in HOOKS:
            raise ConfigError(
                where,
                value,
                "the recorded sweep's configs name code rnnexp does not ship; resume refuses to run it "
                "(a recorded sweep is data: see docs/trust.md)",
            )


def check_job_dirs(root: Path, dirs: dict[int, str], key: str) -> None:
    """Each job's dir lies strictly inside ``root`` (as written and with symlinks resolved), and no two share one."""
    base = Path(os.path.abspath(root))
    real_base = base.resolve()
    seen: dict[Path, int] = {}
    for num, rel in dirs.items():
        if not isinstance(rel, str) or not rel or "\0" in rel:
            raise ConfigError(key, rel, f"job #{num}'s dir must be a path inside the sweep dir")
        where = Path(os.path.normpath(base / rel))
        real = where.resolve()
        if where == base or real == real_base:
            itself = f"job #{num}'s dir is the sweep dir {base} itself; each job needs its own subdir"
            raise ConfigError(key, rel, itself)
        if not (where.is_relative_to(base) and real.is_relative_to(real_base)):
            shown = where if real == where else f"{where} (-> {real})"
            raise ConfigError(key, rel, f"job #{num}'s dir {shown} is outside the sweep dir {base}; it must be inside")
        if real in seen:
            raise ConfigError(
                key, rel, f"jobs #{seen[real]} and #{num} would share the dir {where}; each job needs its own"
            )
        seen[real] = num
