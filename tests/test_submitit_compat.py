"""hydra_plugins/rnnexp_launcher/submitit_compat.py reads what submitit and hydra-submitit-launcher keep inside;
each piece is pinned here against their own code. Skipped without the ``launchers`` extra (failed under CI=true)."""

from __future__ import annotations

import inspect
import operator
import os
import sys

import pytest
from omegaconf import OmegaConf

from hydra_plugins.rnnexp_launcher import submitit_compat

try:
    import submitit
    from hydra_plugins.hydra_submitit_launcher.submitit_launcher import BaseSubmititLauncher, SlurmLauncher
except ImportError:
    if os.environ.get("CI") == "true":
        pytest.fail("hydra-submitit-launcher is not installed (the `launchers` extra)", pytrace=False)
    pytest.skip("hydra-submitit-launcher is not installed (the `launchers` extra)", allow_module_level=True)


@pytest.mark.parametrize(
    "text, want",
    [
        ("12_0|COMPLETED\n12_1|CANCELLED by 0\n", {"12_0": "COMPLETED", "12_1": "CANCELLED"}),
        ("12_[2-4%2]|PENDING\n", {"12_2": "PENDING", "12_3": "PENDING", "12_4": "PENDING"}),  # an array's range line
        ("12_[5,7]|PENDING\n13|OUT_OF_MEMORY\n", {"12_5": "PENDING", "12_7": "PENDING", "13": "OUT_OF_MEMORY"}),
        ("14|\n15|RUNNING\n", {"15": "RUNNING"}),  # a job without a state is left out
        ("", {}),
    ],
)
def test_states_from_squeue_and_sacct_lines(text, want):
    assert submitit_compat.parse_states(text) == want


@pytest.mark.slow
def test_a_result_pickle_as_a_submitit_job_writes_it(tmp_path):
    # submitit's local executor runs the job in a subprocess and writes its result pickle as on a node.
    executor = submitit.LocalExecutor(folder=tmp_path)
    executor.update_parameters(timeout_min=2)
    good, bad = executor.submit(operator.add, 2, 3), executor.submit(operator.truediv, 1, 0)
    for job in (good, bad):
        job.wait()
    assert submitit_compat.read_result(good.paths.result_pickle) == ("success", 5)
    outcome, trace = submitit_compat.read_result(bad.paths.result_pickle)
    assert outcome == "error" and "ZeroDivisionError" in trace
    assert submitit_compat.read_result(tmp_path / "none_result.pkl") is None


def test_call_arguments_are_what_base_submitit_launcher_call_takes():
    names = list(inspect.signature(BaseSubmititLauncher.__call__).parameters)[1:]
    assert names == ["sweep_overrides", "job_dir_key", "job_num", "job_id", "singleton_state"]
    args = submitit_compat.call_arguments(7, ("seed=7", "cell=lstm"))
    assert args[:4] == (["seed=7", "cell=lstm"], "hydra.sweep.dir", 7, "job_id_for_7")


class _Recorder:
    """Stands in for submitit.AutoExecutor: records how the plugin configures it and what it maps."""

    made: list[_Recorder] = []

    def __init__(self, **init):
        self.init, self.params, self.mapped = init, {}, None
        _Recorder.made.append(self)

    def update_parameters(self, **params):
        self.params.update(params)

    def map_array(self, fn, *args):
        self.mapped = (fn, [list(a) for a in args])
        raise _Stop


class _Stop(Exception):
    pass


PARAMS = [
    {"submitit_folder": "/tmp/s/%j", "mem_gb": 1, "timeout_min": 10, "partition": "p", "max_num_timeout": 3},
    {"submitit_folder": "f", "cpus_per_task": 2, "additional_parameters": {"x": 1}, "setup": ["a"], "name": "n"},
]


@pytest.mark.parametrize("params", PARAMS)
def test_executor_and_call_arguments_equal_base_submitit_launchers(params, monkeypatch, tmp_path):
    monkeypatch.setattr(submitit, "AutoExecutor", _Recorder)
    _Recorder.made = []
    launcher = SlurmLauncher(**params)
    launcher.config = OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}})
    with pytest.raises(_Stop):
        launcher.launch([["seed=1"], ["seed=2", "cell=gru"]], initial_job_idx=4)
    with pytest.raises(_Stop):
        calls = [submitit_compat.call_arguments(n, o) for n, o in [(4, ["seed=1"]), (5, ["seed=2", "cell=gru"])]]
        submitit_compat.make_executor(params).map_array(launcher, *zip(*calls, strict=True))
    theirs, mine = _Recorder.made
    assert (mine.init, mine.params) == (theirs.init, theirs.params)
    (fn, args), (their_fn, their_args) = mine.mapped, theirs.mapped
    assert fn is their_fn and args[:4] == their_args[:4]
    assert [state.keys() for state in args[4]] == [state.keys() for state in their_args[4]]  # Hydra's Singleton state


def test_importing_the_adapter_needs_no_submitit():
    import subprocess

    code = "import sys; import hydra_plugins.rnnexp_launcher.submitit_compat; print('submitit' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out == "False\n"
