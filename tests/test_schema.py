"""The declared row (rnnexp.schema): every column declared once, read back with its dtype."""

from __future__ import annotations

import logging
import re

import numpy as np
import pandas as pd
import pytest

from conftest import run_cli
from rnnexp import schema
from rnnexp.config import SESSION_KEYS, config_keys

PLANNED = """
load_avg_1m other_cpu_s cpu_util peak_loaded timed_s job_wall_s slurm_job_id rnnexp_version fwd_time_median_ms
fwd_time_iqr_ms bwd_data_time_median_ms bwd_data_time_iqr_ms bwd_weights_time_median_ms bwd_weights_time_iqr_ms
grad_max_abs_err_vs_ref grad_parity_tol grad_parity_ok bwd_flops lyap_max lyap_sum lyap_dim jac_sigma_max_mean
jac_sigma_max_max grad_norm_log_slope onnxruntime_version jax_version
""".split()  # noqa: SIM905
MEASURED = """
concurrent_jobs device_used output_shape h_n_shape c_n_shape expected_output_shape expected_h_n_shape
expected_c_n_shape shape_ok time_median_ms time_iqr_ms time_min_ms time_mean_ms n_runs n_blocks block_size
first_call_ms noisy compile_s flops gflops peak_gflops peak_frac param_bytes activation_bytes peak_mem_bytes
peak_mem_method h_mean h_std h_min h_max h_abs_mean h_saturation_frac h_dead_frac h_norm_first h_norm_last
h_norm_growth c_abs_max gate_saturation_frac max_abs_err_vs_ref parity_tol parity_ok status error python_version
torch_version numpy_version hostname cpu_model git_commit git_dirty job_num overrides command
""".split()  # noqa: SIM905
TIMING_SETTINGS = ["timing_warmup", "timing_min_run_time_s", "timing_max_run_time_s", "timing_min_blocks",
                   "timing_block_min_s", "timing_iqr_target_frac", "timing_noisy_frac"]  # fmt: skip


def test_every_column_declared_once_with_kind_dtype_rule_and_meaning():
    for table, cols in schema.TABLES.items():
        names = [c.name for c in cols]
        assert len(names) == len(set(names)), table
        for c in cols:
            assert c.kind in schema.KINDS and c.rule in schema.RULES, c
            assert c.dtype in (schema.INT, schema.FLOAT64, schema.BOOL, schema.STR), c
            assert c.meaning, f"{table}: {c.name} has no meaning"
            assert (c.rule == schema.TIMED) == bool(c.phases), c


def test_results_declare_every_config_key_measured_and_planned_column():
    names = schema.names()
    assert schema.config_keys() == [k for k in config_keys() if k != "timing" and k not in SESSION_KEYS]
    assert set(TIMING_SETTINGS) <= set(names) and not set(TIMING_SETTINGS) & set(schema.config_keys())
    assert not [c for c in [*MEASURED, *PLANNED] if c not in names]
    assert not [c for c in names if re.search(r"_(l\d+|forward|reverse|[ifgorzn])$", c)]  # long form now


def test_side_tables_declared():
    assert schema.names(schema.LAYER_STATS) == ["job_num", "layer", "direction", "gate", "h_saturation_frac",
                                                "h_dead_frac", "h_norm_growth", "gate_saturation_frac"]  # fmt: skip
    assert schema.names(schema.SAMPLES) == ["job_num", "phase", "block", "block_size", "block_time_s"]
    assert schema.names(schema.LYAPUNOV) == ["job_num", "direction", "index", "exponent"]
    assert "grad_log_norm" in schema.names(schema.STEPS)


def test_conform_orders_fills_and_keeps_undeclared_columns(caplog):
    with caplog.at_level(logging.WARNING, logger="rnnexp.schema"):
        row = schema.conform({"status": "ok", "cell": "rnn", "mystery": 1})
    assert list(row)[: len(schema.names())] == schema.names() and list(row)[-1] == "mystery"
    assert row["cell"] == "rnn" and row["hidden_size"] is None and row["mystery"] == 1
    assert "undeclared columns mystery" in caplog.text
    one, three = schema.conform({"layers": 1}), schema.conform({"layers": 3, "bidirectional": True, "c_abs_max": 1.0})
    assert list(one) == list(three)  # the same columns whatever the layers, directions and cells


def _write(tmp_path, rows: list[dict]):
    path = tmp_path / "results.csv"
    pd.DataFrame([schema.conform(r) for r in rows]).to_csv(path, index=False)
    return path


def test_read_back_with_declared_dtypes_error_rows_included(tmp_path):
    ok = {"cell": "rnn", "hidden_size": 8, "bidirectional": False, "init_gain": 1.0, "shape_ok": True,
          "parity_ok": True, "status": "ok", "error": "", "time_median_ms": 0.5, "n_blocks": 10}  # fmt: skip
    failed = {"cell": "rnn", "hidden_size": 8, "status": "error", "error": "RuntimeError: boom"}
    composed_badly = {"cell": "lstm", "status": "error", "error": "ConfigError: hidden_size=abc"}
    df = schema.read_table(_write(tmp_path, [failed, ok, composed_badly]))
    for name, dtype in (("hidden_size", "Int64"), ("n_blocks", "Int64"), ("shape_ok", "boolean"),
                        ("parity_ok", "boolean"), ("bidirectional", "boolean"), ("status", "string"),
                        ("time_median_ms", "float64"), ("init_gain", "float64")):  # fmt: skip
        assert str(df[name].dtype) == dtype, name
    assert df["hidden_size"].tolist() == [8, 8, pd.NA] and df["cell"].tolist() == ["rnn", "rnn", "lstm"]
    assert df["error"].isna().tolist() == [False, True, False]  # '' reads as missing


def test_extra_column_read_as_is_and_missing_declared_ones_added(tmp_path):
    path = tmp_path / "old.csv"
    path.write_text("cell,hidden_size,h_saturation_frac_l0\nrnn,8,0.5\n")
    df = schema.read_table(path)
    assert list(df.columns) == [*schema.names(), "h_saturation_frac_l0"]
    assert df["h_saturation_frac_l0"].dtype == np.float64 and df["lyap_max"].isna().all()
    assert str(df["grad_parity_ok"].dtype) == "boolean"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("cell,hidden_size,status\nrnn,8,ok\nlstm,8", "truncated: its last line has 2 of 3 fields"),
        ('cell,output_shape,status\nrnn,"(1, 10', "truncated or malformed CSV"),
        ("cell,hidden_size\nrnn,8,1,2\n", "truncated or malformed CSV"),
    ],
)
def test_truncated_file_raises_naming_it(tmp_path, text, message):
    path = tmp_path / "results.csv"
    path.write_text(text)
    with pytest.raises(schema.TruncatedError, match=message) as caught:
        schema.read_table(path)
    assert str(path) in str(caught.value)


def test_a_complete_last_line_without_a_newline_is_fine(tmp_path):
    path = tmp_path / "results.csv"
    path.write_text("cell,hidden_size\nrnn,8")
    assert schema.read_table(path)["hidden_size"].tolist() == [8]


def test_wrong_value_for_a_declared_dtype_names_the_column(tmp_path):
    path = tmp_path / "results.csv"
    path.write_text("cell,hidden_size\nrnn,8.5\n")
    with pytest.raises(schema.TableError, match="column hidden_size: .*8.5"):
        schema.read_table(path)


# --- what the CLI writes (slow; they need the row producer's fixed columns, long-form tables and samples) ---


@pytest.mark.slow
def test_sweeps_of_different_shapes_write_identical_columns(tmp_path):
    for name, args in (("one", ["layers=1"]), ("three", ["layers=3", "bidirectional=true", "cell=lstm"])):
        (tmp_path / name).mkdir()
        assert run_cli(["-m", *args, "backend=numpy,torch", "timing=quick"], tmp_path / name).returncode == 0
    headers = [next((tmp_path / n / "outputs" / "multirun").glob("*/*/results.csv")).read_text().splitlines()[0]
               for n in ("one", "three")]  # fmt: skip
    assert headers[0] == headers[1] == ",".join(schema.names())


@pytest.mark.slow
def test_error_rows_keep_dtypes_and_samples_match_blocks(tmp_path):
    assert run_cli(["-m", "hidden_size=8,0", "timing=quick"], tmp_path).returncode == 1
    sweep = next((tmp_path / "outputs" / "multirun").glob("*/*"))
    df = schema.read_table(sweep / "results.csv")
    assert str(df["hidden_size"].dtype) == "Int64" and str(df["shape_ok"].dtype) == "boolean"
    assert df["hidden_size"].tolist() == [8, 0] and df["status"].tolist() == ["ok", "error"]
    samples = schema.read_table(sweep / schema.SAMPLES, schema.SAMPLES)
    per_job = samples[samples["phase"] == "forward"].groupby("job_num").size()
    ok = df[df["status"] == "ok"]
    assert per_job.reindex(ok["job_num"]).tolist() == ok["n_blocks"].tolist()


JOB_KINDS = {  # one job of every kind a row can come from: each backend, training, dynamics, an error
    "numpy": dict(backend="numpy"),
    "numpy_naive": dict(backend="numpy_naive"),
    "torch_lstm_bi": dict(backend="torch", cell="lstm", layers=2, bidirectional=True),
    "torch_cell_gru": dict(backend="torch_cell", cell="gru"),
    "torch_compile": dict(backend="torch_compile"),
    "onnxruntime": dict(backend="onnxruntime", cell="gru"),
    "jax": dict(backend="jax", cell="lstm"),
    "training": dict(backend="torch", mode="training"),
    "dynamics": dict(backend="numpy", lyapunov_k=2, lyapunov_warmup=2, grad_flow=True),
    "error": dict(backend="numpy", hidden_size=0),
}


@pytest.mark.slow
@pytest.mark.parametrize("kind", JOB_KINDS)
def test_every_column_a_job_produces_is_declared(kind):
    from rnnexp.config import Mode, RunConfig, TimingConfig
    from rnnexp.runner import run_job

    spec = dict(JOB_KINDS[kind])
    if spec.get("backend") in ("onnxruntime", "jax"):
        pytest.importorskip(spec["backend"])
    if "mode" in spec:
        spec["mode"] = Mode(spec["mode"])
    for key in ("cell",):
        if key in spec:
            from rnnexp.config import Cell

            spec[key] = Cell(spec[key])
    quick = TimingConfig(warmup=1, min_run_time_s=0.01, max_run_time_s=0.1, min_blocks=3, block_min_s=0.001)
    done = run_job(RunConfig(timesteps=6, timing=quick, **spec))
    assert (done.row["status"] == "error") == (kind == "error"), done.row["error"]
    undeclared = set(done.row) - set(schema.names()) - {"job_num", "overrides", "command"}
    assert not undeclared, f"{kind}: declare {sorted(undeclared)} in rnnexp/schema.py"
    for name, table in done.tables.items():
        assert name in schema.TABLES, name
        assert not set(table.columns) - set(schema.names(name)), (name, set(table.columns) - set(schema.names(name)))


@pytest.mark.parametrize(
    ("column", "cell"),
    [("seed", "9" * 30), ("layers", "1e400"), ("seed", str(2**63)), ("hidden_size", "inf"), ("hidden_size", "nan")],
)
def test_an_integer_past_int64_names_the_column_never_wraps_or_crashes(tmp_path, column, cell):
    path = tmp_path / "results.csv"
    path.write_text(f"cell,{column}\nrnn,3\nrnn,{cell}\n")
    with pytest.raises(schema.TableError) as err:
        schema.read_table(path)
    assert str(err.value) == (
        f"{path}: column {column}: {cell} is not a whole number within the 64-bit integer range (declared Int64)"
    )


def test_int64_bounds_and_whole_floats_read_exactly(tmp_path):
    path = tmp_path / "results.csv"
    path.write_text(f"cell,seed\nrnn,{2**63 - 1}\nrnn,{-(2**63)}\nrnn,1e3\nrnn,\n")
    assert schema.read_table(path)["seed"].tolist() == [2**63 - 1, -(2**63), 1000, pd.NA]


def test_nan_text_in_a_float_column_is_missing(tmp_path):
    path = tmp_path / "results.csv"
    path.write_text("cell,init_gain,time_median_ms\nrnn,nan,1.5\nrnn,NaN,\n")
    df = schema.read_table(path)
    assert df["init_gain"].isna().all() and df["time_median_ms"].tolist()[0] == 1.5


@pytest.mark.parametrize(
    ("column", "value", "allowed"),
    [("time_median_ms", float("inf"), ">= 0"), ("time_iqr_ms", -1.0, ">= 0"), ("hidden_size", 0, ">= 1"),
     ("init_gain", 0.0, "> 0"), ("gflops", float("-inf"), ">= 0")],
)  # fmt: skip
def test_values_no_run_makes_are_named_in_rows_that_ran(column, value, allowed):
    rows = pd.DataFrame(
        {"cell": ["rnn"] * 3, "status": ["ok", "ok", "error"], "job_num": [0, 1, 2], column: [1, value, value]}
    )
    said = schema.out_of_range(schema.coerce(rows))
    assert said == [f"column {column}: {value} (job 1) (allowed: a finite number {allowed})"]
    assert schema.out_of_range(schema.coerce(rows.iloc[[0, 2]])) == []  # a failed job's row may hold what it failed on
    assert schema.out_of_range(schema.coerce(rows.assign(**{column: [1, None, None]}))) == []  # missing is no value
