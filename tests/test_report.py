"""rnnexp report: tables and plots from sweep dirs, partial sweeps, several inputs; one-line errors on bad input."""

from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import pandas as pd
import pytest

from conftest import ROOT, run_cli
from rnnexp import report, results

CELLS, BACKENDS, SIZES = ("rnn", "lstm"), ("numpy", "torch"), (8, 32)


def make_rows(**extra_columns) -> list[dict]:
    """A small sweep's rows: torch twice as fast as numpy, so the speed-up is known (2.00x)."""
    rows = []
    for num, (cell, backend, hidden) in enumerate(itertools.product(CELLS, BACKENDS, SIZES)):
        time = hidden / 10 * (1.0 if backend == "numpy" else 0.5)
        rows.append(
            {
                "cell": cell, "hidden_size": hidden, "backend": backend, "init": "torch_default", "init_gain": 1.0,
                "output_shape": f"(1, 10, {hidden})", "h_n_shape": f"(1, 1, {hidden})",
                "c_n_shape": f"(1, 1, {hidden})" if cell == "lstm" else "", "shape_ok": True,
                "time_median_ms": time, "time_iqr_ms": time / 20, "h_mean": 0.01, "h_std": 0.3 + hidden / 1000,
                "h_saturation_frac": 0.0, "max_abs_err_vs_ref": 1e-8, "status": "ok", "error": "", "job_num": num,
                **{k: v(num) for k, v in extra_columns.items()},
            }
        )  # fmt: skip
    return rows


def make_sweep(root: Path, rows: list[dict], steps: bool = False) -> Path:
    """A sweep dir laid out as the CLI writes it: one row per job dir, every row at the root."""
    for row in rows:
        job_dir = root / str(row["job_num"])
        results.write_row(row, job_dir)
        if steps:
            norms = [{"job_num": row["job_num"], "layer": 0, "direction": "forward", "timestep": t,
                      "h_mean": 0.0, "h_std": 0.1, "h_norm": 0.5 * 1.1**t, "h_saturation_frac": 0.0}
                     for t in range(10)]  # fmt: skip
            pd.DataFrame(norms).to_csv(job_dir / report.STEPS_FILE, index=False)
    results.write_csv_atomic(pd.DataFrame(rows), root / results.ROW_FILE)
    return root


def assert_png(path: Path) -> None:
    """A real picture: decodable, at least 400x400 pixels, not one flat colour, tens of kB."""
    assert path.is_file(), path
    image = matplotlib.image.imread(path)
    assert image.shape[0] >= 400 and image.shape[1] >= 400, image.shape
    assert image.std() > 0.05  # axes, lines and text, not a blank canvas
    assert path.stat().st_size > 10_000


def test_report_on_sweep_dir(tmp_path, capsys):
    sweep = make_sweep(tmp_path / "sweep", make_rows(), steps=True)
    assert report.main([str(sweep)]) == 0
    out = capsys.readouterr().out
    assert "torch speed-up" in out and "2.00x" in out
    md = (sweep / "report.md").read_text()
    for section in ("Forward time", "Shapes", "Parity", "Hidden-state statistics"):
        assert f"## {section}" in md
    assert "| lstm | 32 |" in md
    for name in ("time_vs_size.png", "state_norm.png"):
        assert_png(sweep / name)
        assert f"]({name})" in md
    assert not (sweep / "gflops_vs_size.png").exists()  # no gflops column, no plot


def test_time_table_speed_up_against_reference():
    table = report.time_table(pd.DataFrame(make_rows()))
    assert list(table.columns) == ["cell", "hidden_size", "numpy ms", "torch ms", "torch speed-up"]
    assert set(table["torch speed-up"]) == {"2.00x"}
    assert len(table) == len(CELLS) * len(SIZES)


def test_partial_sweep_rebuilt_from_job_rows(tmp_path, capsys):
    sweep = make_sweep(tmp_path / "sweep", make_rows())
    (sweep / results.ROW_FILE).unlink()  # interrupted: no root table
    (sweep / "7" / results.ROW_FILE).unlink()  # and the last job never finished (lstm, torch, 32)
    out_dir = tmp_path / "out"
    assert report.main([str(sweep), "--out", str(out_dir)]) == 0
    md = (out_dir / "report.md").read_text()
    assert "| lstm | 32 | 3.2 |  |  |" in md  # numpy time only; no torch time, no speed-up
    assert_png(out_dir / "time_vs_size.png")
    assert "torch speed-up" in capsys.readouterr().out


def test_several_inputs_keep_sources_apart(tmp_path, capsys):
    a = make_sweep(tmp_path / "a", make_rows())
    b = make_sweep(tmp_path / "b", make_rows())
    single = tmp_path / "run" / results.ROW_FILE
    results.write_csv_atomic(pd.DataFrame(make_rows()[:1]), single)
    assert report.main([str(a), str(b / results.ROW_FILE), str(single), "--out", str(tmp_path / "out")]) == 0
    md = (tmp_path / "out" / "report.md").read_text()
    assert "| cell | hidden_size | source |" in md  # same configurations from several inputs: one row per input
    assert "| rnn | 8 | a |" in md and "| rnn | 8 | b |" in md and "| rnn | 8 | run |" in md
    assert_png(tmp_path / "out" / "time_vs_size.png")


def test_gflops_and_saturation_plots_when_data_has_them(tmp_path):
    rows = make_rows(gflops=lambda n: 1.0 + n, init_gain=lambda n: (0.5, 1.0, 2.0, 4.0)[n % 4])
    for row in rows:
        row["h_saturation_frac"] = row["init_gain"] / 8
    csv = results.write_csv_atomic(pd.DataFrame(rows), tmp_path / results.ROW_FILE)
    assert report.main([str(csv)]) == 0  # default --out: the file's dir
    assert_png(tmp_path / "gflops_vs_size.png")
    assert_png(tmp_path / "saturation_vs_init.png")
    assert (tmp_path / "report.md").is_file()


def test_state_norm_per_layer_and_direction_from_steps_beside_a_file(tmp_path):
    rows = make_rows()[:2]
    csv = results.write_csv_atomic(pd.DataFrame(rows), tmp_path / results.ROW_FILE)
    steps = [
        {
            "job_num": row["job_num"],
            "layer": layer,
            "direction": direction,
            "timestep": t,
            "h_norm": (1 + layer) * 0.9**t,
        }
        for row, layer, direction, t in itertools.product(rows, (0, 1), ("forward", "reverse"), range(20))
    ]
    pd.DataFrame(steps).to_csv(tmp_path / report.STEPS_FILE, index=False)
    assert report.main([str(csv)]) == 0
    assert_png(tmp_path / "state_norm.png")


def test_no_plots_option(tmp_path):
    sweep = make_sweep(tmp_path / "sweep", make_rows())
    assert report.main([str(sweep), "--no-plots"]) == 0
    assert (sweep / "report.md").is_file()
    assert not list(sweep.glob("*.png"))


def test_failed_jobs_listed(tmp_path, capsys):
    rows = make_rows()
    rows[3].update(status="error", error="RuntimeError: boom", time_median_ms=float("nan"))
    sweep = make_sweep(tmp_path / "sweep", rows)
    assert report.main([str(sweep)]) == 0
    assert "RuntimeError: boom" in capsys.readouterr().out
    assert "## Failed jobs" in (sweep / "report.md").read_text()


def test_parity_failure_marked():
    rows = make_rows(parity_ok=lambda n: n != 2)
    table = report.parity_table(pd.DataFrame(rows))
    assert (table == "1e-08 FAIL").sum().sum() == 1


def test_all_jobs_failed_still_reports(tmp_path, capsys):
    rows = [{**row, "status": "error", "error": "MemoryError: too big"} for row in make_rows()]
    csv = results.write_csv_atomic(pd.DataFrame(rows), tmp_path / results.ROW_FILE)
    assert report.main([str(csv)]) == 0
    md = (tmp_path / "report.md").read_text()
    assert "## Failed jobs" in md and "## Shapes" not in md and "MemoryError" in md


def test_table_with_backend_as_only_config_column(tmp_path):
    df = pd.DataFrame({"backend": ["numpy", "torch"], "time_median_ms": [2.0, 1.0], "status": ["ok", "ok"]})
    csv = results.write_csv_atomic(df, tmp_path / results.ROW_FILE)
    assert report.main([str(csv), "--no-plots"]) == 0
    assert "| all | 2 | 1 | 2.00x |" in (tmp_path / "report.md").read_text()


BAD_INPUTS = {
    "missing": (None, "no such file or directory"),
    "empty.csv": ("", "empty file"),
    "malformed.csv": ('cell,backend\nrnn,torch,1,2\n"unterminated', "malformed CSV"),
    "no_config.csv": ("a,b\n1,2\n", "not a results table"),
    "header_only.csv": ("cell,backend\n", "has no rows"),
    "empty_dir": (None, "no results.csv"),
}


@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_unusable_input_is_one_line_error(tmp_path, capsys, name):
    content, message = BAD_INPUTS[name]
    path = tmp_path / name
    if name == "empty_dir":
        path.mkdir()
    elif content is not None:
        path.write_text(content)
    assert report.main([str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rnnexp report: error: ") and err.count("\n") == 1
    assert str(path) in err and message in err


@pytest.mark.slow
def test_real_sweep_report_through_cli(tmp_path):
    done = run_cli(["-m", "cell=rnn,lstm", "backend=numpy,torch", "hidden_size=4,8", "timing=quick"], tmp_path)
    assert done.returncode == 0, done.stderr
    sweep = next((tmp_path / "outputs" / "multirun").glob("*/*"))
    (sweep / results.ROW_FILE).unlink()  # report must rebuild the table from the job rows
    shown = run_cli(["report", str(sweep)], tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "torch speed-up" in shown.stdout
    assert_png(sweep / "time_vs_size.png")
    missing = subprocess.run(
        [sys.executable, "-m", "rnnexp.report", str(tmp_path / "nope")], cwd=ROOT, capture_output=True, text=True
    )
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert missing.stderr.strip() == f"rnnexp report: error: {tmp_path / 'nope'}: no such file or directory"
