"""The rnnexp sweeper and launcher (hydra_plugins/rnnexp_launcher): same configs, same jobs, same table as
Hydra's basic ones, jobs launched by number, and found by Hydra in a checkout and after installs."""

from __future__ import annotations

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
from hydra.core.utils import setup_globals
from hydra.plugins.launcher import Launcher
from hydra.plugins.sweeper import Sweeper
from hydra.types import RunMode
from omegaconf import OmegaConf, open_dict

from conftest import ROOT, run_cli, sweep_table
from hydra_plugins.rnnexp_launcher import sweeper as sweeper_module
from hydra_plugins.rnnexp_launcher._compose import JobComposer
from hydra_plugins.rnnexp_launcher.launcher import RnnexpLauncher
from hydra_plugins.rnnexp_launcher.sweeper import RnnexpSweeper
from rnnexp.plan import conf_dir

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
        ["+experiment=tutorial", "seed=1"],  # a group added: part of the template, seed applied on a copy
        ["+deepbench=gru_h512_n32_t1", "backend=numpy", "+experiment=deepbench"],
        ["+seed_extra=3", "seed=1"],  # an add of a plain key: composed by Hydra from scratch
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
            assert {p.name for p in (job_dir / ".hydra").iterdir()} == {"config.yaml", "overrides.yaml"}
            assert (job_dir / "rnnexp.log").exists()
    stats = [c for c in tables["basic"] if c.startswith("h_")]
    assert stats and len(tables["rnnexp"]) == 8
    pd.testing.assert_frame_equal(tables["rnnexp"][DETERMINISTIC + stats], tables["basic"][DETERMINISTIC + stats])


@pytest.mark.slow
def test_a_job_that_cannot_compose_is_refused_before_anything_runs(tmp_path):
    proc = run_cli(["-m", "hidden_size=8,abc,0", "timing=quick"], tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "rnnexp: error: hidden_size=abc: must be a positive integer (>= 1) (job #1: hidden_size=abc timing=quick)"
    ]
    assert not (tmp_path / "outputs").exists()


@pytest.mark.slow
def test_a_job_that_fails_validation_is_an_error_row(tmp_path):
    # 0 composes (an int) and fails the range check when the job starts: the other jobs run.
    proc = run_cli(["-m", "hidden_size=8,0", "timing=quick"], tmp_path)
    assert proc.returncode == 1
    table = sweep_table(tmp_path)
    assert list(table.job_num) == [0, 1] and list(table.status) == ["ok", "error"]
    assert table.error[1] == "ConfigError: hidden_size=0: must be a positive integer (>= 1)"
    assert table.command[1] == "python -m rnnexp hidden_size=0 timing=quick"
    assert "1 of 2 jobs failed" in proc.stderr and "Traceback" not in proc.stderr


class _Recorder:
    """A launcher without launch_jobs: records the (initial_job_idx, overrides) runs it is given."""

    def __init__(self):
        self.calls = []

    def launch(self, job_overrides, initial_job_idx):
        self.calls.append((initial_job_idx, [list(o) for o in job_overrides]))
        return []


def test_other_launchers_get_runs_of_consecutive_job_numbers():
    rec = _Recorder()
    sweeper_module.launch(rec, [(1, ["a=1"]), (2, ["a=2"]), (5, ["a=5"]), (7, ["a=7"]), (8, ["a=8"])])
    assert rec.calls == [(1, [["a=1"], ["a=2"]]), (5, [["a=5"]]), (7, [["a=7"], ["a=8"]])]


@pytest.mark.slow
def test_joblib_resume_runs_only_the_missing_jobs(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    joblib = ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]
    proc = run_cli(["-m", "hidden_size=4,3,2,5", "timing=quick", *joblib], tmp_path)
    assert proc.returncode == 0, proc.stderr
    sweep = next((tmp_path / "outputs" / "multirun").glob("*/*"))
    first = pd.read_csv(sweep / "results.csv")
    for num in (1, 2):
        (sweep / str(num) / "results.csv").unlink()
    resumed = run_cli(["resume", str(sweep), *joblib], tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    # joblib logs its own position in the batch (#0, #1); the jobs' progress lines carry their numbers
    assert "[2/4]" in resumed.stdout and "[3/4]" in resumed.stdout
    assert "[1/4]" not in resumed.stdout and "[4/4]" not in resumed.stdout
    final = pd.read_csv(sweep / "results.csv")
    assert list(final.h_n_shape) == list(first.h_n_shape) == ["(1, 1, 4)", "(1, 1, 3)", "(1, 1, 2)", "(1, 1, 5)"]


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
        [sys.executable, "-m", "rnnexp", "-m", "hidden_size=3,0", "timing=quick", *PLUGIN],
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


class _Recorded:
    """Hydra's callbacks, as a run_job-style runner calls them: each event and what HydraConfig says then."""

    def __init__(self):
        self.events = []

    def on_job_start(self, config, task_function):
        self.events.append(("start", config.hydra.job.num, HydraConfig.get().runtime.output_dir))

    def on_job_end(self, config, job_return):
        self.events.append(("end", config.hydra.job.num, job_return.status.name))


@pytest.mark.parametrize("chdir", [False, True])
@pytest.mark.parametrize("fails", [False, True])
def test_run_composed_runs_a_job_as_hydras_run_job(loader_and_master, tmp_path, monkeypatch, chdir, fails):
    """The launcher's copy-free runner against Hydra's own run_job on one job: the task sees the same dir, cwd,
    env_set, HydraConfig and config; the same callbacks fire; the same return; cwd and HydraConfig put back."""
    from hydra.core.utils import JobStatus, run_job
    from hydra.types import HydraContext

    from hydra_plugins.rnnexp_launcher._run import JOB_DIR_KEY, JOB_SUBDIR_KEY, run_composed

    loader, master = loader_and_master
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RNNEXP_PROBE", raising=False)

    def task(cfg):
        seen.append((os.getcwd(), os.environ.get("RNNEXP_PROBE"), HydraConfig.get().runtime.output_dir,
                     HydraConfig.get().job.num, OmegaConf.to_yaml(cfg)))  # fmt: skip
        if fails:
            raise RuntimeError("the job failed")
        return cfg.seed * 10

    outcomes = []
    for runner in ("hydra", "rnnexp"):
        seen, callbacks = [], _Recorded()
        overrides = ["seed=3", f"hydra.sweep.dir={tmp_path / runner}", f"hydra.job.chdir={chdir}",
                     "+hydra.job.env_set.RNNEXP_PROBE=yes"]  # fmt: skip
        cfg, task_cfg = JobComposer(loader, master).compose_job(overrides, 5)
        context = HydraContext(config_loader=loader, callbacks=callbacks)
        before = HydraConfig.instance().cfg
        if runner == "hydra":
            ret = run_job(hydra_context=context, task_function=task, config=cfg, job_dir_key=JOB_DIR_KEY,
                          job_subdir_key=JOB_SUBDIR_KEY)  # fmt: skip
        else:
            ret = run_composed(context, task, cfg, task_cfg)
        assert os.getcwd() == str(tmp_path) and HydraConfig.instance().cfg is before
        assert os.environ.get("RNNEXP_PROBE") is None
        try:
            value = ret.return_value  # a failed job's exception is raised here, as Hydra's JobReturn does
        except RuntimeError as exc:
            value = repr(exc)

        def where(s, sweep=tmp_path / runner):
            return str(s).replace(str(sweep), "<sweep>").replace(str(tmp_path), "<cwd>")

        outcomes.append((
            [tuple(where(x) for x in s) for s in seen], [tuple(where(x) for x in e) for e in callbacks.events],
            ret.status, value, list(ret.overrides), where(ret.working_dir), ret.task_name,
            (tmp_path / runner / "5").is_dir(),
        ))  # fmt: skip
    assert outcomes[0] == outcomes[1]
    assert outcomes[1][2] == (JobStatus.FAILED if fails else JobStatus.COMPLETED)
    assert outcomes[1][0][0][:4] == ("<sweep>/5" if chdir else "<cwd>", "yes", "<sweep>/5", "5")
