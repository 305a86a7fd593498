"""The end-of-run summary (rnnexp.review.summary): failures counted (parity and shape too), jobs named by number."""

import pandas as pd

from rnnexp.review import summary


def rows(**overrides) -> pd.DataFrame:
    base = dict(cell="rnn", backend="torch", status="ok", error="", parity_ok=True, shape_ok=True,
                max_abs_err_vs_ref=1e-8, job_num=0)  # fmt: skip
    return pd.DataFrame([base, {**base, "job_num": 7, **overrides}])


def test_ok_rows_are_not_failures():
    assert summary.count_failed(rows()) == 0


def test_a_parity_or_shape_mismatch_counts_as_a_failure():
    assert summary.count_failed(rows(parity_ok=False, max_abs_err_vs_ref=0.5)) == 1
    assert summary.count_failed(rows(shape_ok=False)) == 1
    assert summary.count_failed(rows(parity_ok="False")) == 1  # as read back from a CSV without dtypes
    text = summary.table(rows(parity_ok=False, max_abs_err_vs_ref=0.5))
    assert "job 7 disagrees with the reference: parity_ok=False" in text


def test_an_unchecked_row_is_not_a_failure():
    assert summary.count_failed(rows(parity_ok=None, grad_parity_ok=None)) == 0


def test_errors_name_the_job_number_not_the_table_position():
    table = rows(status="error", error="ConfigError: hidden_size=0: must be a positive integer (>= 1)", parity_ok=None)
    assert summary.count_failed(table) == 1
    assert "error in job 7: ConfigError: hidden_size=0" in summary.table(table)


def test_every_varying_config_key_is_shown():
    table = summary.table(rows(input_scale=2.0).assign(input_scale=[1.0, 2.0]))
    assert "input_scale" in table.splitlines()[0]  # summary used to list its own keys and missed this one


def test_one_line():
    ok = rows().iloc[0].to_dict() | {"output_shape": "(1, 10, 8)", "h_n_shape": "(1, 1, 8)", "time_median_ms": 0.5,
                                     "time_iqr_ms": 0.01, "layers": 1, "bidirectional": False}  # fmt: skip
    assert summary.one_line(ok) == "rnn/torch layers=1 bidirectional=False: output (1, 10, 8) h_n (1, 1, 8) 0.5 ms " \
        "(IQR 0.01) err 1e-08"  # fmt: skip
    assert summary.one_line({**ok, "status": "error", "error": "boom"}).endswith(": error: boom")
