"""The rnnexp sweeper and launcher (hydra_plugins/rnnexp_launcher): same configs, same jobs, same table as
Hydra's basic ones, composition errors kept as rows, and found by Hydra in a checkout and after installs."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile

import pandas as pd
import pytest
from hydra import initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.plugins import Plugins
from hydra.core.utils import JobStatus, run_job, setup_globals
from hydra.plugins.launcher import Launcher
from hydra.plugins.sweeper import Sweeper
from hydra.types import RunMode
from omegaconf import OmegaConf, open_dict

from conftest import ROOT, run_cli, sweep_table
from hydra_plugins.rnnexp_launcher import _errors, _job
from hydra_plugins.rnnexp_launcher._compose import JobComposer
from hydra_plugins.rnnexp_launcher.launcher import RnnexpLauncher
from hydra_plugins.rnnexp_launcher.sweeper import RnnexpSweeper
from rnnexp.cli import conf_dir

PLUGIN = ["hydra/sweeper=rnnexp", "hydra/launcher=rnnexp"]
BASIC = ["hydra/sweeper=basic", "hydra/launcher=basic"]
# Columns that depend only on config and seed, never on timing or the machine's load.
DETERMINISTIC = ["job_num", "overrides", "command", "status", "output_shape", "h_n_shape", "c_n_shape", "shape_ok",
                 "max_abs_err_vs_ref"]  # fmt: skip


@pytest.fixture(scope="module")
def loader_and_master():
    """Hydra's config loader and a multirun's master config, as the sweeper and launcher receive them."""
    setup_globals()
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        hydra = GlobalHydra.instance().hydra
        master = hydra.compose_config(
            "config", ["seed=range(4)", "timing=quick", *PLUGIN, "hydra.job.chdir=false"], run_mode=RunMode.MULTIRUN
        )
        yield hydra.config_loader, master


def _names(classes):
    return {f"{c.__module__}.{c.__qualname__}" for c in classes}


def test_plugins_are_registered():
    # By name: Hydra's scan re-executes plugin modules, so the classes it holds are not the ones imported here.
    assert _names([RnnexpLauncher]) <= _names(Plugins.instance().discover(Launcher))
    assert _names([RnnexpSweeper]) <= _names(Plugins.instance().discover(Sweeper))
    assert ConfigStore.instance().load("hydra/launcher/rnnexp.yaml").node._target_.endswith("RnnexpLauncher")
    assert ConfigStore.instance().load("hydra/sweeper/rnnexp.yaml").node._target_.endswith("RnnexpSweeper")


def _with_num(cfg, idx):
    with open_dict(cfg):
        cfg.hydra.job.id = cfg.hydra.job.num = idx
    return cfg


@pytest.mark.parametrize(
    "overrides",
    [
        ["seed=3", "timing=quick"],
        ["timing=default", "seed=5", "layers=2", "bidirectional=true"],
        ["timing.min_run_time_s=0.05"],
        ["cell=lstm", "proj_size=2", "timing=precise"],
        ["+experiment=tutorial", "seed=1"],  # an add: composed by Hydra from scratch
        ["seed=1", "~init"],  # a delete: likewise
        [],
    ],
)
def test_fast_compose_equals_hydra(loader_and_master, overrides):
    loader, master = loader_and_master
    composer = JobComposer(loader, master)
    for _ in range(2):  # the second time from the cached template
        got = composer.compose(overrides, 7)
        want = _with_num(loader.load_sweep_config(master, list(overrides)), 7)
        assert OmegaConf.to_yaml(got) == OmegaConf.to_yaml(want)
        assert OmegaConf.get_type(got) is OmegaConf.get_type(want)
        assert OmegaConf.is_struct(got) == OmegaConf.is_struct(want)
        assert OmegaConf.is_readonly(got.hydra) == OmegaConf.is_readonly(want.hydra)


def test_searchpath_in_the_config_is_left_to_hydra(loader_and_master):
    loader, _ = loader_and_master
    searchpath = f"hydra.searchpath=[file://{conf_dir()}]"
    master = GlobalHydra.instance().hydra.compose_config(
        "config", ["seed=range(2)", searchpath], run_mode=RunMode.MULTIRUN
    )
    composer = JobComposer(loader, master)
    got = composer.compose(["seed=1"], 1)
    assert not composer.fast and not composer.templates
    assert OmegaConf.to_yaml(got) == OmegaConf.to_yaml(_with_num(loader.load_sweep_config(master, ["seed=1"]), 1))


@pytest.mark.parametrize("overrides", [["hidden_size=abc"], ["cell=foo", "seed=1"], ["timing=nope"]])
def test_fast_compose_fails_as_hydra_does(loader_and_master, overrides):
    loader, master = loader_and_master
    with pytest.raises(Exception) as want:
        loader.load_sweep_config(master, list(overrides))
    with pytest.raises(type(want.value)) as got:
        JobComposer(loader, master).compose(overrides, 0)
    assert str(got.value) == str(want.value)


@pytest.mark.parametrize(
    "overrides, culprits, blank, words",
    [
        (["hidden_size=abc", "seed=2"], ["hidden_size=abc"], ["hidden_size"], ["Integer"]),
        (["cell=foo"], ["cell=foo"], ["cell"], ["rnn, lstm, gru"]),
        (["timing=nope", "seed=1"], ["timing=nope"], ["timing_warmup", "timing_min_run_time_s"], ["quick"]),
        (["hidden_size=abc", "cell=foo", "layers=2"], ["hidden_size=abc", "cell=foo"], ["hidden_size", "cell"], []),
    ],
)
def test_composition_error_is_isolated(loader_and_master, overrides, culprits, blank, words):
    loader, master = loader_and_master
    with pytest.raises(Exception) as exc:
        loader.load_sweep_config(master, overrides)
    parsed = JobComposer(loader, master).parser.parse_overrides(overrides)
    found, messages, partial = _errors.isolate(type("Ctx", (), {"config_loader": loader}), master, parsed, exc.value)
    assert [o.input_line for o in found] == culprits
    assert all(c in m for c, m in zip(culprits, messages, strict=True))
    assert all(any(w in m for m in messages) for w in words)
    columns = _errors.config_columns(partial, found)
    assert all(columns[k] is None for k in blank)
    if "seed=2" in overrides:
        assert columns["seed"] == 2
    if "layers=2" in overrides:
        assert columns["layers"] == 2


class _Recorder:
    """Stands in for Hydra's Callbacks: records what run_job tells callbacks."""

    def __init__(self):
        self.calls = []

    def on_job_start(self, config, **kwargs):
        self.calls.append(("start", config.hydra.job.num, os.environ.get("RNNEXP_TEST_ENV")))

    def on_job_end(self, config, job_return, **kwargs):
        self.calls.append(("end", config.hydra.job.num, job_return.status))


@pytest.fixture
def restore_logging():
    """run_job points the root logger at the job's log file; put it back for the tests that follow."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in root.handlers:
        if handler not in handlers:
            handler.close()
    root.handlers[:] = handlers
    root.setLevel(level)


def test_lean_run_job_does_what_hydra_run_job_does(loader_and_master, tmp_path, restore_logging):
    loader, master = loader_and_master
    outcomes = {}
    for name, runner in {"hydra": run_job, "lean": _job.run_job}.items():
        cfg = _with_num(loader.load_sweep_config(master, ["seed=2", f"hydra.sweep.dir={tmp_path}/{name}"]), 2)
        with open_dict(cfg):
            cfg.hydra.job.env_set.RNNEXP_TEST_ENV = "set"
        context = type("Ctx", (), {"callbacks": _Recorder(), "config_loader": loader})()
        seen = {}

        def task(task_cfg, seen=seen):
            seen.update(cfg=OmegaConf.to_yaml(task_cfg), out=HydraConfig.get().runtime.output_dir)
            seen["type"] = OmegaConf.get_type(task_cfg)
            return "done"

        before = HydraConfig.instance().cfg
        ret = runner(
            hydra_context=context,
            task_function=task,
            config=cfg,
            job_dir_key="hydra.sweep.dir",
            job_subdir_key="hydra.sweep.subdir",
        )
        assert HydraConfig.instance().cfg is before
        job_dir = tmp_path / name / "2"
        files = {p.name: p.read_text().replace(str(tmp_path / name), "DIR") for p in (job_dir / ".hydra").iterdir()}
        outcomes[name] = {
            "files": files,
            "log": (job_dir / "rnnexp.log").exists(),
            "seen": {**seen, "out": seen["out"].replace(str(tmp_path / name), "DIR")},
            "calls": context.callbacks.calls,
            "ret": (ret.status, ret.return_value, ret.overrides, ret.task_name, OmegaConf.to_yaml(ret.cfg)),
            "ret_hydra": OmegaConf.to_yaml(ret.hydra_cfg).replace(str(tmp_path / name), "DIR"),
        }
    assert outcomes["lean"] == outcomes["hydra"]
    assert sorted(outcomes["lean"]["files"]) == ["config.yaml", "hydra.yaml", "overrides.yaml"]
    assert outcomes["lean"]["calls"] == [("start", 2, "set"), ("end", 2, JobStatus.COMPLETED)]


@pytest.mark.slow
def test_same_table_as_the_basic_launcher(tmp_path):
    # The tutorial preset sets hydra.sweeper.params: 8 jobs over backend, layers and bidirectional.
    tables = {}
    for name, launcher in {"basic": BASIC, "rnnexp": PLUGIN}.items():
        cwd = tmp_path / name
        cwd.mkdir()
        proc = run_cli(["-m", "+experiment=tutorial", "timing=quick", *launcher], cwd)
        assert proc.returncode == 0, proc.stderr
        assert "[8/8]" in proc.stdout
        tables[name] = sweep_table(cwd)
        job_dirs = sorted(p for p in next((cwd / "outputs" / "multirun").glob("*/*")).iterdir() if p.is_dir())
        assert len(job_dirs) == 8
        for job_dir in job_dirs:
            assert {p.name for p in (job_dir / ".hydra").iterdir()} == {"config.yaml", "hydra.yaml", "overrides.yaml"}
            assert (job_dir / "rnnexp.log").exists()
    stats = [c for c in tables["basic"] if c.startswith("h_")]
    assert stats and len(tables["rnnexp"]) == 8
    pd.testing.assert_frame_equal(tables["rnnexp"][DETERMINISTIC + stats], tables["basic"][DETERMINISTIC + stats])


@pytest.mark.slow
def test_mixed_sweep_keeps_composition_errors_as_rows(tmp_path):
    # abc fails to compose (hidden_size is an int); 0 composes and fails validation when the job starts.
    proc = run_cli(["-m", "hidden_size=8,abc,0", "timing=quick", *PLUGIN], tmp_path)
    assert proc.returncode != 0
    table = sweep_table(tmp_path)
    assert list(table.job_num) == [0, 1, 2]
    assert list(table.status) == ["ok", "error", "error"]
    assert "hidden_size=abc" in table.error[1] and "hidden_size" in table.error[2]
    assert table.command[1] == "python -m rnnexp hidden_size=abc timing=quick"
    assert table.seed[1] == 0 and pd.isna(table.hidden_size[1])
    assert "2 of 3 jobs failed" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
def test_sweeper_keeps_composition_errors_with_joblib(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    proc = run_cli(["-m", "hidden_size=4,abc,3", "timing=quick", "hydra/sweeper=rnnexp", "hydra/launcher=joblib",
                    "hydra.launcher.n_jobs=2"], tmp_path)  # fmt: skip
    assert proc.returncode != 0
    table = sweep_table(tmp_path)
    assert list(table.status) == ["ok", "error", "ok"]
    assert list(table.h_n_shape[[0, 2]]) == ["(1, 1, 4)", "(1, 1, 3)"]


def _copy_project(dest):
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, dest / name)
    for name in ("rnnexp", "conf", "hydra_plugins"):
        shutil.copytree(ROOT / name, dest / name, ignore=shutil.ignore_patterns("__pycache__"))


DISCOVER = (  # prints whether Hydra's plugin scan found the launcher, and the file it came from
    "import sys; from hydra.core.plugins import Plugins; from hydra.plugins.launcher import Launcher; "
    "names = [c.__module__ + '.' + c.__name__ for c in Plugins.instance().discover(Launcher)]; "
    "print('hydra_plugins.rnnexp_launcher.launcher.RnnexpLauncher' in names, "
    "sys.modules['hydra_plugins.rnnexp_launcher.launcher'].__file__)"
)


@pytest.mark.slow
def test_plugin_found_after_regular_install(tmp_path):
    target = tmp_path / "site"
    src = tmp_path / "src"
    src.mkdir()
    _copy_project(src)  # built from a copy, so no build/ or egg-info lands in the checkout
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(src)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    assert not (target / "hydra_plugins" / "__init__.py").exists()  # a namespace package, shared with other plugins
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(target)}
    found = subprocess.run([sys.executable, "-c", DISCOVER], cwd=work, env=env, capture_output=True, text=True)
    assert found.stdout.split()[0] == "True", found.stderr
    assert found.stdout.split()[1].startswith(str(target))
    proc = subprocess.run(
        [sys.executable, "-m", "rnnexp", "-m", "hidden_size=3,abc", "timing=quick", *PLUGIN],
        cwd=work, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode != 0
    assert list(sweep_table(work).status) == ["ok", "error"]


@pytest.mark.slow
def test_plugin_found_after_editable_install(tmp_path):
    # An editable install maps packages through an import hook that pkgutil (Hydra's plugin scan) cannot
    # list; listing "hydra_plugins" itself as a package puts the real folder on hydra_plugins.__path__.
    src, wheel_dir = tmp_path / "src", tmp_path / "wheel"
    src.mkdir()
    wheel_dir.mkdir()
    _copy_project(src)
    build = "import sys; from setuptools import build_meta as b; print(b.build_editable(sys.argv[1]))"
    name = subprocess.run(
        [sys.executable, "-c", build, str(wheel_dir)], cwd=src, check=True, capture_output=True, text=True
    ).stdout.split()[-1]
    with zipfile.ZipFile(wheel_dir / name) as whl:
        finder = next(n for n in whl.namelist() if n.endswith("_finder.py"))
        whl.extract(finder, tmp_path)
    # A bare interpreter (-S) given the venv's packages but not its current editable hook, then this one.
    script = (
        f"import sys, importlib.util; sys.path.append({sysconfig.get_paths()['purelib']!r}); "
        f"spec = importlib.util.spec_from_file_location('finder', {str(tmp_path / finder)!r}); "
        "f = importlib.util.module_from_spec(spec); spec.loader.exec_module(f); f.install(); " + DISCOVER
    )
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    found = subprocess.run([sys.executable, "-S", "-c", script], cwd=work, env=env, capture_output=True, text=True)
    assert found.stdout.split()[0] == "True", found.stderr
    assert found.stdout.split()[1].startswith(str(src))
