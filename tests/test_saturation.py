"""The ``saturation`` preset: the tutorial's cell saturates under uniform01 and not under torch_default."""

import pytest
from omegaconf import OmegaConf

from conftest import run_cli, sweep_table
from rnnexp.config import Init
from rnnexp.plan import conf_dir


def test_preset_is_the_tutorials_cell(cfg_of):
    cfg = cfg_of("+experiment=saturation")
    assert (cfg.cell.value, cfg.nonlinearity.value, cfg.timesteps, cfg.input_size) == ("rnn", "tanh", 10, 5)
    assert (cfg.input_dist.value, cfg.backend, cfg.batch_size, cfg.layers) == ("uniform01", "numpy", 1, 1)
    assert cfg.timing.min_run_time_s < 0.1  # timing=quick: the times are not the point


def test_preset_sweeps_every_init():
    params = OmegaConf.load(conf_dir() / "experiment" / "saturation.yaml").hydra.sweeper.params
    assert set(params.init.split(",")) == {i.value for i in Init}
    assert "1.0" in params.init_gain.split(",") and "8" in params.hidden_size.split(",")


@pytest.mark.slow
def test_uniform01_saturates_and_torch_default_does_not(tmp_path):
    proc = run_cli(["-m", "+experiment=saturation", "hidden_size=8", "init_gain=0.5,1.0,2.0"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    table = sweep_table(tmp_path)
    assert len(table) == 15 and (table.status == "ok").all()
    assert (table.hidden_size == 8).all() and (table.input_dist == "uniform01").all()
    sat = table.set_index(["init", "init_gain"]).h_saturation_frac
    assert sat["uniform01", 1.0] > 0.9  # the tutorial: weights and inputs np.random.random, 8 units
    assert sat["torch_default", 1.0] < 0.2
    assert sat["uniform01", 0.5] < sat["uniform01", 1.0] <= sat["uniform01", 2.0]  # more gain, more saturation
    assert "h_saturation_frac" in proc.stdout  # the summary table shows it
