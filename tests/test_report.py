"""rnnexp report (rnnexp.review.report): tables on minimal keys in one order, honest speed-ups, plots, bad input."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import numpy as np
import pandas as pd
import pytest

from conftest import ROOT, run_cli
from rnnexp import schema
from rnnexp.fileio import write_csv_atomic, write_json_atomic
from rnnexp.review import report

CELLS, BACKENDS, SIZES = ("rnn", "lstm"), ("numpy", "torch"), (8, 32)


def make_rows(**extra_columns) -> list[dict]:
    """A small sweep's rows: torch twice as fast as numpy, so the speed-up is known (2.00x)."""
    rows = []
    for num, (cell, backend, hidden) in enumerate(itertools.product(CELLS, BACKENDS, SIZES)):
        time = hidden / 10 * (1.0 if backend == "numpy" else 0.5)
        rows.append(
            {
                "cell": cell, "hidden_size": hidden, "backend": backend, "init": "torch_default", "init_gain": 1.0,
                "layers": 1, "bidirectional": False, "timesteps": 10, "dtype": "float32", "mode": "inference",
                "output_shape": f"(1, 10, {hidden})", "h_n_shape": f"(1, 1, {hidden})",
                "c_n_shape": f"(1, 1, {hidden})" if cell == "lstm" else "", "shape_ok": True,
                "time_median_ms": time, "time_iqr_ms": time / 20, "noisy": False, "n_blocks": 10, "block_size": 1,
                "h_mean": 0.01, "h_std": 0.3 + hidden / 1000, "h_saturation_frac": 0.0, "max_abs_err_vs_ref": 1e-8,
                "parity_ok": True, "status": "ok", "error": "", "job_num": num, "hostname": "host",
                **{k: v(num) for k, v in extra_columns.items()},
            }
        )  # fmt: skip
    return rows


def samples_for(rows: list[dict], scale=lambda row: 1.0, seed: int = 0) -> pd.DataFrame:
    """samples.csv for ``rows``: n_blocks blocks around each row's median (2% spread), times ``scale(row)``.

    The blocks' median is the row's median times the scale, as a real run's is (compare checks it):
    a row whose samples are scaled needs its time_median_ms scaled too (:func:`scaled`).
    """
    rng = np.random.default_rng(seed)
    parts = []
    for row in rows:
        n = int(row.get("n_blocks") or 10)
        spread = 1 + 0.02 * rng.standard_normal(n)
        per_call_s = row["time_median_ms"] / 1e3 * scale(row) * spread / np.median(spread)
        parts.append(pd.DataFrame({"job_num": row["job_num"], "phase": "forward", "block": range(n),
                                   "block_size": 1, "block_time_s": per_call_s}))  # fmt: skip
    return pd.concat(parts, ignore_index=True)


def scaled(rows: list[dict], scale) -> list[dict]:
    """``rows`` with time_median_ms times ``scale(row)``: the rows of :func:`samples_for`'s scaled samples."""
    return [{**r, "time_median_ms": r["time_median_ms"] * scale(r)} for r in rows]


def steps_for(rows: list[dict], layers=(0,), directions=("forward",)) -> pd.DataFrame:
    """steps.csv as the reference writes it: the same trajectory for every backend of a configuration."""
    out = []
    for row, layer, direction, t in itertools.product(rows, layers, directions, range(10)):
        growth = 1.0 + row["hidden_size"] / 100 + (0.05 if row["cell"] == "lstm" else 0)
        out.append(
            {
                "job_num": row["job_num"],
                "layer": layer,
                "direction": direction,
                "timestep": t,
                "h_mean": 0.0,
                "h_std": 0.1,
                "h_norm": (0.5 + layer) * growth**t,
                "h_saturation_frac": 0.0,
            }
        )
    return pd.DataFrame(out)


def make_sweep(root: Path, rows: list[dict], samples=True, steps: bool = False, env: bool = True, **sides) -> Path:
    """A sweep dir laid out as the CLI writes it: every job's files in its dir, every table at the root."""
    tables = {schema.RESULTS: schema.conform_frame(pd.DataFrame(rows))}
    if samples is True:
        tables[schema.SAMPLES] = samples_for(rows)
    elif samples is not None and samples is not False:
        tables[schema.SAMPLES] = samples
    if steps:
        tables[schema.STEPS] = steps_for(rows)
    tables.update(sides)
    for name, table in tables.items():
        write_csv_atomic(table, root / name)
        for num, part in table.groupby("job_num"):
            write_csv_atomic(part, root / str(num) / name)
    if env:
        write_json_atomic(root / "env.json", {"hostname": "host"})
    return root


def assert_png(path: Path) -> None:
    """A real picture: decodable, at least 400x300 pixels, not one flat colour, tens of kB."""
    assert path.is_file(), path
    image = matplotlib.image.imread(path)
    assert image.shape[0] >= 300 and image.shape[1] >= 400, image.shape
    assert image.std() > 0.05  # axes, lines and text, not a blank canvas
    assert path.stat().st_size > 10_000


def test_report_on_sweep_dir(tmp_path, capsys):
    sweep = make_sweep(tmp_path / "sweep", make_rows(), steps=True)
    assert report.main([str(sweep)]) == 0
    out = capsys.readouterr().out
    assert "torch speed-up" in out and "2.00x" in out
    md = (sweep / "report.md").read_text()
    for section in ("Forward time (median ms) and speed-up vs numpy", "Shapes", "Parity", "Hidden-state statistics"):
        assert f"## {section}" in md
    assert "| lstm | 32 |" in md
    for name in ("time_vs_size.png", "state_norm.png"):
        assert_png(sweep / name)
        assert f"]({name})" in md
    assert not (sweep / "gflops_vs_size.png").exists()  # no gflops values, no plot


def test_speed_up_only_where_neither_side_is_noisy():
    rows = make_rows()
    rows[1]["noisy"] = True  # rnn, numpy, 32
    table = report.time_table(schema.coerce(schema.conform_frame(pd.DataFrame(rows))), "numpy")
    assert list(table.columns) == ["cell", "hidden_size", "numpy ms", "torch ms", "torch speed-up", "fastest first"]
    keys = list(zip(table["cell"], table["hidden_size"], strict=True))
    speed = dict(zip(keys, table["torch speed-up"], strict=True))
    assert speed[("rnn", 32)] == report.NOISY and table.loc[1, "numpy ms"].endswith("(noisy)")
    assert {speed[k] for k in speed if k != ("rnn", 32)} == {"2.00x"}
    rank = dict(zip(keys, table["fastest first"], strict=True))  # torch is twice as fast everywhere
    assert rank[("rnn", 32)] == "torch < numpy~" and {rank[k] for k in keys if k != ("rnn", 32)} == {"torch < numpy"}


def test_ranking_orders_backends_by_median_time():
    times = pd.Series({"numpy": 3.0, "jax": 1.0, "torch": 2.0, "onnxruntime": float("nan")})
    noisy = pd.Series({"numpy": False, "jax": True, "torch": False, "onnxruntime": False})
    assert report.ranking(times, noisy) == "jax~ < torch < numpy"


def test_reference_in_the_title_must_exist(tmp_path, capsys):
    torch_only = [r for r in make_rows() if r["backend"] == "torch"]
    sweep = make_sweep(tmp_path / "t", torch_only)
    assert report.main([str(sweep), "--no-plots"]) == 0
    md = (sweep / "report.md").read_text()
    assert "## Forward time (median ms)\n" in md and "speed-up" not in md
    capsys.readouterr()
    assert report.main([str(sweep), "--reference", "jax", "--no-plots"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--reference jax: no rows ran on that backend (backends here: torch)" in err


def test_tables_show_only_the_keys_their_values_depend_on():
    rows = []
    for num, (init, gain, hidden) in enumerate(itertools.product(("a", "b", "c"), (0.5, 1.0, 2.0), (8, 64))):
        rows.append({"cell": "rnn", "backend": "numpy", "init": init, "init_gain": gain, "hidden_size": hidden,
                     "output_shape": f"(1, 10, {hidden})", "h_n_shape": f"(1, 1, {hidden})", "shape_ok": True,
                     "status": "ok", "job_num": num, "time_median_ms": 1.0 + num, "h_std": num / 10})  # fmt: skip
    df = schema.coerce(schema.conform_frame(pd.DataFrame(rows)))
    shapes = report.shape_table(df)
    assert list(shapes.columns) == ["cell", "hidden_size", "output_shape", "h_n_shape", "shape_ok"]
    assert shapes["hidden_size"].tolist() == [8, 64]  # 18 rows whose shapes depend on one key: 2 rows
    stats = report.stats_table(df, "numpy")
    assert list(stats.columns[:4]) == ["cell", "init", "init_gain", "hidden_size"] and len(stats) == 18


def test_one_row_order_in_every_table(tmp_path):
    rows = make_rows()
    shuffled = [rows[i] for i in (5, 0, 7, 2, 4, 1, 6, 3)]  # the sweep's job order is the order to keep
    sweep = make_sweep(tmp_path / "s", shuffled)
    res = report.load_many([sweep])
    tables = report.sections(res, "numpy")
    orders = [list(zip(t["cell"], t["hidden_size"], strict=True)) for t in tables.values() if "hidden_size" in t]
    assert len(orders) >= 3 and all(o == orders[0] for o in orders)
    assert orders[0] == [("rnn", "8"), ("rnn", "32"), ("lstm", "8"), ("lstm", "32")]


def test_partial_sweep_rebuilt_from_job_rows(tmp_path, capsys):
    sweep = make_sweep(tmp_path / "sweep", make_rows())
    for name in (schema.RESULTS, schema.SAMPLES):
        (sweep / name).unlink()  # interrupted: no root tables
    (sweep / "7" / schema.RESULTS).unlink()  # and the last job never finished (lstm, torch, 32)
    out_dir = tmp_path / "out"
    assert report.main([str(sweep), "--out", str(out_dir)]) == 0
    md = (out_dir / "report.md").read_text()
    assert "| lstm | 32 | 3.2 |  |  |" in md  # numpy time only; no torch time, no speed-up
    assert_png(out_dir / "time_vs_size.png")


def test_several_inputs_keep_sources_apart(tmp_path):
    a = make_sweep(tmp_path / "a", make_rows())
    b = make_sweep(tmp_path / "b", make_rows())
    assert report.main([str(a), str(b / schema.RESULTS), "--out", str(tmp_path / "out"), "--no-plots"]) == 0
    md = (tmp_path / "out" / "report.md").read_text()
    assert "| cell | hidden_size | source |" in md  # same configurations from several inputs: one row per input
    assert "| rnn | 8 | a |" in md and "| rnn | 8 | b |" in md


def test_out_defaults_to_a_run_dir_else_the_current_dir(tmp_path, monkeypatch):
    elsewhere = tmp_path / "baselines"
    write_csv_atomic(pd.DataFrame(make_rows()), elsewhere / "ci.csv")  # a CSV kept in a repo, not a run dir
    monkeypatch.chdir(tmp_path)
    assert report.main([str(elsewhere / "ci.csv"), "--no-plots"]) == 0
    assert (tmp_path / "report.md").is_file() and not (elsewhere / "report.md").exists()
    sweep = make_sweep(tmp_path / "sweep", make_rows())
    assert report.main([str(sweep / schema.RESULTS), "--no-plots"]) == 0
    assert (sweep / "report.md").is_file()


def test_failed_jobs_listed_and_dtypes_survive(tmp_path, capsys):
    rows = make_rows()
    rows[3] = {k: rows[3][k] for k in ("cell", "hidden_size", "backend", "job_num")}
    rows[3].update(status="error", error="RuntimeError: boom")
    sweep = make_sweep(tmp_path / "sweep", rows, samples=samples_for([r for r in rows if "time_median_ms" in r]))
    assert report.main([str(sweep), "--no-plots"]) == 0
    assert "RuntimeError: boom" in capsys.readouterr().out
    assert "## Failed jobs" in (sweep / "report.md").read_text()


def test_all_jobs_failed_still_reports(tmp_path):
    rows = [{**row, "status": "error", "error": "MemoryError: too big"} for row in make_rows()]
    sweep = make_sweep(tmp_path / "s", rows)
    assert report.main([str(sweep)]) == 0
    md = (sweep / "report.md").read_text()
    assert "## Failed jobs" in md and "## Shapes" not in md and "MemoryError" in md


def test_parity_failure_marked():
    df = schema.coerce(schema.conform_frame(pd.DataFrame(make_rows(parity_ok=lambda n: n != 2))))
    table = report.parity_table(df)
    assert (table == "1e-08 FAIL").sum().sum() == 1


def test_closed_stdout_is_not_an_error(tmp_path):
    sweep = make_sweep(tmp_path / "s", make_rows())
    cmd = f"{sys.executable} -m rnnexp.review.report {sweep} --no-plots | head -1"
    done = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "Broken pipe" not in done.stderr
    assert (sweep / "report.md").is_file()


BAD_INPUTS = {
    "missing": (None, "no such file or directory"),
    "empty.csv": ("", "empty file"),
    "malformed.csv": ('cell,backend\nrnn,torch,1,2\n"unterminated', "truncated or malformed CSV"),
    "cut.csv": ("cell,backend,hidden_size\nrnn,torch,8\nlstm,to", "truncated: its last line has 2 of 3 fields"),
    "no_config.csv": ("a,b\n1,2\n", "not a results table"),
    "header_only.csv": ("cell,backend\n", "has no rows"),
    "bad_dtype.csv": ("cell,hidden_size\nrnn,eight\n", "column hidden_size"),
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


def test_review_imports_neither_torch_nor_hydra():
    code = (
        "import sys, rnnexp.review.report, rnnexp.review.compare, rnnexp.review.summary, rnnexp.review.baseline; "
        "bad = [m for m in ('torch', 'hydra', 'omegaconf', 'matplotlib') if m in sys.modules]; "
        "sys.exit(repr(bad) if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.slow
def test_real_sweep_report_through_cli(tmp_path):
    done = run_cli(["-m", "cell=rnn,lstm", "backend=numpy,torch", "hidden_size=4,8", "timing=quick"], tmp_path)
    assert done.returncode == 0, done.stderr
    sweep = next((tmp_path / "outputs" / "multirun").glob("*/*"))
    (sweep / schema.RESULTS).unlink()  # report must rebuild the table from the job rows
    shown = subprocess.run([sys.executable, "-m", "rnnexp.review.report", str(sweep)], cwd=ROOT,
                           capture_output=True, text=True)  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert "torch speed-up" in shown.stdout or "noisy" in shown.stdout
    assert_png(sweep / "time_vs_size.png")
    env = json.loads((sweep / "env.json").read_text())
    assert env["hostname"]


def test_out_that_is_not_a_dir_is_one_line_and_exit_2(tmp_path, capsys):
    sweep = make_sweep(tmp_path / "sweep", make_rows())
    not_a_dir = tmp_path / "README.md"
    not_a_dir.write_text("a file")
    assert report.main([str(sweep), "--out", str(not_a_dir), "--no-plots"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"rnnexp report: error: --out {not_a_dir}: ")
    assert not_a_dir.read_text() == "a file"
    assert report.main([str(sweep), "--out", "/proc", "--no-plots"]) == 2  # exists, but nothing can be written
    assert capsys.readouterr().err.startswith("rnnexp report: error: --out /proc: ")


def test_an_interrupted_report_leaves_no_half_written_plot(tmp_path, capsys, monkeypatch):
    from matplotlib.figure import Figure

    from rnnexp import cli

    sweep = make_sweep(tmp_path / "sweep", make_rows(), steps=True)

    def interrupted(self, handle, **kwargs):  # Ctrl-C halfway through the first plot's file
        handle.write(b"\x89PNG half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(Figure, "savefig", interrupted)
    assert cli.run(["report", str(sweep)]) == cli.EXIT_SIGINT
    said = capsys.readouterr().err.strip().splitlines()
    assert said == [
        "rnnexp: error: report interrupted (SIGINT); the files it wrote are whole, the rest were not written"
    ]
    assert not list(sweep.glob("*.png")) and not list(sweep.glob(".*.tmp"))
