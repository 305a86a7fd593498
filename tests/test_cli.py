"""The real CLI in a subprocess: the tutorial's cases, a sweep, and a sweep with a failing job."""

import pytest

from conftest import run_cli, run_table, sweep_table

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    "overrides, output, h_n",
    [
        ([], "(1, 10, 8)", "(1, 1, 8)"),
        (["layers=2"], "(1, 10, 8)", "(2, 1, 8)"),
        (["layers=2", "bidirectional=true"], "(1, 10, 16)", "(4, 1, 8)"),
    ],
    ids=["one-layer", "two-layers", "two-layers-bidirectional"],
)
def test_tutorial_cases(tmp_path, overrides, output, h_n):
    proc = run_cli([*overrides, "timing=quick"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    row = run_table(tmp_path).iloc[0]
    assert (row.status, row.output_shape, row.h_n_shape, bool(row.shape_ok)) == ("ok", output, h_n, True)
    assert row.max_abs_err_vs_ref < 1e-5
    assert "results:" in proc.stdout and output in proc.stdout


def test_sweep_writes_one_table(tmp_path):
    proc = run_cli(["-m", "layers=1,2", "bidirectional=true,false", "timing=quick"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    table = sweep_table(tmp_path)
    assert len(table) == 4 and (table.status == "ok").all() and table.shape_ok.all()
    got = {(r.layers, bool(r.bidirectional)): (r.output_shape, r.h_n_shape) for r in table.itertuples()}
    assert got == {
        (1, False): ("(1, 10, 8)", "(1, 1, 8)"),
        (1, True): ("(1, 10, 16)", "(2, 1, 8)"),
        (2, False): ("(1, 10, 8)", "(2, 1, 8)"),
        (2, True): ("(1, 10, 16)", "(4, 1, 8)"),
    }
    assert "[4/4]" in proc.stdout


def test_failing_job_keeps_the_sweep(tmp_path):
    # proj_size applies to LSTMs only: the rnn job fails, the lstm job runs.
    proc = run_cli(["-m", "cell=rnn,lstm", "proj_size=4", "timing=quick"], tmp_path)
    assert proc.returncode != 0
    table = sweep_table(tmp_path)
    assert list(table.status) == ["error", "ok"]
    assert "proj_size" in table.error[0]
    assert table.h_n_shape[1] == "(1, 1, 4)"
    assert "1 of 2 jobs failed" in proc.stderr


def test_row_carries_its_command(tmp_path):
    proc = run_cli(["hidden_size=4", "timing=quick"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    row = run_table(tmp_path).iloc[0]
    assert row.command == "python -m rnnexp hidden_size=4 timing=quick"
