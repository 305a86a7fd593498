"""device=cpu|cuda|auto: GPU paths run where a GPU exists and skip cleanly elsewhere."""

import pytest
import torch

from rnnexp.config import Device
from rnnexp.runner import run_job
from test_backends import CELLS, config

has_cuda = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not has_cuda, reason="no CUDA device here")
LAYOUT = dict(layers=2, bidirectional=True, batch_first=True, bias=True, batch_size=3)
TORCH_BACKENDS = ["torch", "torch_cell"]


@pytest.mark.skipif(has_cuda, reason="checks the error row a machine without CUDA gives")
@pytest.mark.parametrize("backend", ["torch", "torch_cell", "numpy"])
def test_cuda_without_gpu_is_an_error_row(backend):
    row = run_job(config(LAYOUT, "rnn_tanh", backend=backend, device=Device.cuda)).row
    assert row["status"] == "error"
    assert row["error"].startswith("ConfigError: device=cuda:")


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_auto_records_the_device_it_picked(backend):
    row = run_job(config(LAYOUT, "gru", backend=backend, device=Device.auto)).row
    assert row["status"] == "ok", row["error"]
    expected = "cuda" if has_cuda and backend == "torch" else "cpu"
    assert row["device_used"] == expected


@needs_cuda
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("backend", TORCH_BACKENDS)
@pytest.mark.parametrize("cell", CELLS)
def test_cuda_parity(cell, backend, dtype):
    row = run_job(config(LAYOUT, cell, dtype, backend=backend, device=Device.cuda)).row
    assert row["status"] == "ok", row["error"]
    assert row["device_used"] == "cuda"
    assert row["parity_ok"], row["max_abs_err_vs_ref"]
    assert row["shape_ok"]


def test_resource_guard_refuses_a_job_that_cannot_fit():
    # ~3e11 parameters: terabytes, far beyond any machine this runs on.
    huge = config(LAYOUT, "lstm")
    huge.input_size = huge.hidden_size = 200_000
    row = run_job(huge).row
    assert row["status"] == "error"
    assert row["error"].startswith("ConfigError: memory=") and "GiB is available" in row["error"]
    assert "hidden_size=200000" in row["error"]
