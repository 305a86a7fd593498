"""What the terminal shows of a big sweep: a screen (failures, largest deviations, a count), one row order."""

from __future__ import annotations

import itertools

import pandas as pd
from test_report import make_sweep

from rnnexp import schema
from rnnexp.review import report, summary
from rnnexp.review.inputs import load


def sweep_rows(layers=(1, 2, 3), sizes=tuple(range(8, 24)), training: bool = False) -> list[dict]:
    """A grid in job order as Hydra runs ``-m layers=... hidden_size=...``: layers slowest, hidden_size fastest.

    The declared order puts hidden_size before layers, so sorting by it would not give the job order.
    """
    rows = []
    for num, (layers_, size) in enumerate(itertools.product(layers, sizes)):
        row = {
            "cell": "rnn",
            "backend": "numpy",
            "layers": layers_,
            "hidden_size": size,
            "status": "ok",
            "error": "",
            "shape_ok": True,
            "parity_ok": True,
            "max_abs_err_vs_ref": 1e-8,
            "parity_tol": 1e-5,
            "time_median_ms": 1.0 + num,
            "job_num": num,
            "mode": "training" if training else "inference",
        }
        if training:
            row |= {"grad_max_abs_err_vs_ref": 2e-8, "grad_parity_tol": 1e-5, "grad_parity_ok": True}
        rows.append(row)
    return rows


def body(text: str) -> list[str]:
    return [line for line in text.splitlines()[1:] if not line.startswith(("...", "error", "job "))]


def test_a_big_summary_fits_a_screen_with_its_failures_and_largest_deviations():
    rows = sweep_rows()
    rows[5] |= {"status": "error", "error": "RuntimeError: boom"}
    rows[30] |= {"parity_ok": False, "max_abs_err_vs_ref": 0.5}
    rows[40] |= {"max_abs_err_vs_ref": 9e-6}  # the nearest its tolerance of the rows that pass
    text = summary.table(pd.DataFrame(rows))
    assert len(text.splitlines()) <= summary.SHOWN + 4
    assert "... 28 more rows of 48" in text and "rnnexp report DIR --all" in text
    assert "error in job 5: RuntimeError: boom" in text and "job 30 disagrees with the reference" in text
    shown = body(text)
    assert len(shown) == summary.SHOWN
    sizes = {(int(line.split()[2]), int(line.split()[3])) for line in shown}  # (layers, hidden_size)
    assert {(1, 13), (2, 22), (3, 16)} <= sizes  # both failures and the largest deviation are kept
    assert len(body(summary.table(pd.DataFrame(rows), limit=None))) == 48


def test_every_table_orders_rows_as_the_sweep_ran(tmp_path):
    """results.csv is in job order; the summary and report.md (and compare's verdicts) follow it."""
    rows = sweep_rows()
    make_sweep(tmp_path / "s", rows)
    job_order = [(r["layers"], r["hidden_size"]) for r in rows]
    text = summary.table(pd.DataFrame(rows), limit=None)
    assert [(int(x.split()[2]), int(x.split()[3])) for x in body(text)] == job_order
    res = load(tmp_path / "s")
    time_table = next(t for title, t in report.sections(res, "numpy").items() if "time" in title.lower())
    assert list(zip(time_table["layers"].astype(int), time_table["hidden_size"].astype(int), strict=True)) == job_order
    shuffled = pd.DataFrame(rows).sample(frac=1, random_state=0)  # a table read in another order: same output
    assert summary.table(shuffled, limit=None) == text


def test_gradient_parity_is_shown_for_training_sweeps_only():
    training = summary.table(pd.DataFrame(sweep_rows(sizes=(8,), training=True)))
    assert "grad_parity_ok" in training.splitlines()[0] and "grad_max_abs_err_vs_ref" in training.splitlines()[0]
    assert "grad_parity_ok" not in summary.table(pd.DataFrame(sweep_rows(sizes=(8,))))
    rows = sweep_rows(sizes=(8,), training=True)
    rows[1] |= {"grad_parity_ok": False, "grad_max_abs_err_vs_ref": 0.3}
    text = summary.table(pd.DataFrame(rows))
    assert "job 1 disagrees with the reference: parity_ok=True shape_ok=True grad_parity_ok=False" in text
    assert "grad_max_abs_err_vs_ref=0.3" in text
    grad = report.parity_table(schema.coerce(pd.DataFrame(rows)), "grad_max_abs_err_vs_ref", "grad_parity_ok")
    assert grad["numpy"].tolist() == ["2e-08", "0.3 FAIL", "2e-08"]


def test_report_prints_a_screen_per_table_and_everything_with_all(tmp_path, capsys):
    rows = sweep_rows()
    rows[47] |= {"status": "error", "error": "RuntimeError: late"}
    make_sweep(tmp_path / "s", rows)
    assert report.main([str(tmp_path / "s"), "--no-plots", "--out", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert "... 27 more rows of 47 (--all prints every row; report.md holds them)" in out
    assert "RuntimeError: late" in out
    assert report.main([str(tmp_path / "s"), "--no-plots", "--all", "--out", str(tmp_path / "r")]) == 0
    everything = capsys.readouterr().out
    assert "more rows of" not in everything and everything.count("\n rnn ") >= 47 + 1  # every time and the failure
    assert (tmp_path / "r" / "report.md").read_text().count("\n| rnn |") >= 47  # report.md holds every row
