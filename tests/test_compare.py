"""rnnexp compare: deterministic columns exact or within tolerance, timing noise-aware, exit 0/1/2."""

from __future__ import annotations

import itertools
import subprocess
import sys

import pandas as pd
import pytest

from conftest import ROOT, run_cli
from rnnexp import columns, compare, results


def base_table() -> pd.DataFrame:
    """Four configurations; every timing has a 2% IQR."""
    rows = []
    for num, (cell, backend) in enumerate(itertools.product(("rnn", "lstm"), ("numpy", "torch"))):
        rows.append(
            {
                "cell": cell, "hidden_size": 8, "backend": backend, "dtype": "float32", "init_gain": 1.0,
                "output_shape": "(1, 10, 8)", "h_n_shape": "(1, 1, 8)", "shape_ok": True,
                "time_median_ms": 1.0 + num, "time_iqr_ms": 0.02 * (1.0 + num), "first_call_ms": 5.0,
                "h_std": 0.25 + num / 10, "h_saturation_frac": 0.0125 * num, "max_abs_err_vs_ref": 3e-8,
                "status": "ok", "error": "", "torch_version": "2.13.0", "job_num": num, "command": f"job {num}",
            }
        )  # fmt: skip
    return pd.DataFrame(rows)


@pytest.fixture
def check(tmp_path, capsys):
    """Write BASE and NEW tables, run compare on them; (exit code, stdout, stderr)."""

    def run(new: pd.DataFrame, *options: str, base: pd.DataFrame | None = None):
        base_csv = results.write_csv_atomic(base_table() if base is None else base, tmp_path / "base" / "results.csv")
        new_csv = results.write_csv_atomic(new, tmp_path / "new" / "results.csv")
        code = compare.main([str(base_csv), str(new_csv), *options])
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


def regression_lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.endswith("REGRESSION")]


def test_identical_tables_pass(check):
    code, out, _ = check(base_table())
    assert code == 0
    assert "4 rows matched" in out and "0 regressions" in out


def test_provenance_differences_are_ignored(check):
    new = base_table().assign(torch_version="9.9", job_num=lambda d: d["job_num"] + 10, command="other", error="x")
    assert check(new)[0] == 0


def test_changed_shape_names_the_row(check):
    new = base_table()
    new.loc[3, "output_shape"] = "(1, 10, 16)"
    code, out, _ = check(new)
    assert code == 1
    [line] = regression_lines(out)
    assert "cell=lstm" in line and "backend=torch" in line and "output_shape" in line and "(1, 10, 16)" in line


def test_statistic_past_tolerance_regresses_within_tolerance_passes(check):
    new = base_table()
    new.loc[1, "h_std"] *= 1 + 1e-7  # float32 rounding of a sum: well inside rtol 1e-5
    assert check(new)[0] == 0
    new.loc[1, "h_std"] *= 1 + 1e-3
    code, out, _ = check(new)
    assert code == 1
    [line] = regression_lines(out)
    assert "cell=rnn backend=torch" in line and "h_std" in line


def test_rtol_option_widens_the_tolerance(check):
    new = base_table()
    new.loc[1, "h_std"] *= 1 + 1e-3
    assert check(new, "--rtol", "1e-2")[0] == 0
    assert check(new, "--atol", "1e-12")[0] == 1  # --atol alone keeps the default rtol


def test_saturation_fraction_one_element_step_is_caught(check):
    new = base_table()
    new.loc[2, "h_saturation_frac"] += 1 / 80  # one of 80 hidden values crossed the threshold
    assert check(new)[0] == 1


def test_error_figure_regresses_only_when_it_grows_tenfold(check):
    new = base_table()
    new.loc[0, "max_abs_err_vs_ref"] = 6e-8  # doubled: another BLAS, still rounding
    new.loc[1, "max_abs_err_vs_ref"] = 0.0  # shrank: never a regression
    assert check(new)[0] == 0
    new.loc[2, "max_abs_err_vs_ref"] = 1e-5
    code, out, _ = check(new)
    assert code == 1 and "max_abs_err_vs_ref" in regression_lines(out)[0]


def test_float64_residues_stay_under_the_error_floor(check):
    base = base_table().assign(dtype="float64", max_abs_err_vs_ref=0.0)
    new = base.assign(max_abs_err_vs_ref=4e-16)
    assert check(new, base=base)[0] == 0


def test_timing_change_within_noise_passes(check):
    base = base_table()
    base["time_iqr_ms"] = base["time_median_ms"] * 0.5  # a noisy machine
    new = base.assign(time_median_ms=base["time_median_ms"] * 1.3)  # past the ratio, inside the IQR
    assert check(new, base=base)[0] == 0
    quiet = base_table()
    assert check(quiet.assign(time_median_ms=quiet["time_median_ms"] * 1.05))[0] == 0  # past the IQR, under x1.1


def test_twofold_slowdown_regresses(check):
    new = base_table()
    new.loc[2, "time_median_ms"] *= 2
    code, out, _ = check(new)
    assert code == 1
    [line] = regression_lines(out)
    assert "cell=lstm backend=numpy" in line and "time_median_ms" in line and "slower x2.00" in line


def test_speed_up_is_reported_not_failed(check):
    new = base_table()
    new.loc[0, "time_median_ms"] /= 2
    code, out, _ = check(new)
    assert code == 0
    assert "faster x0.50" in out and "0 regressions, 1 other differences" in out


def test_ignore_timing_and_timing_free_baseline(check):
    new = base_table()
    new["time_median_ms"] *= 3
    assert check(new, "--ignore-timing")[0] == 0
    baseline = base_table()[[c for c in base_table() if columns.kind(c) != columns.TIMING]]
    code, out, _ = check(new, base=baseline)
    assert code == 0 and "timing not compared" in out


def test_ratio_option(check):
    new = base_table()
    new["time_median_ms"] *= 2
    assert check(new, "--ratio", "3")[0] == 0


def test_missing_row_and_failed_row_regress_new_row_does_not(check):
    base = base_table()
    assert check(base.iloc[:3])[0] == 1
    assert check(base, base=base.iloc[:3])[0] == 0  # a row only in NEW is reported, not failed
    failed = base.copy()
    failed.loc[1, ["status", "error"]] = ["error", "RuntimeError: boom"]
    code, out, _ = check(failed)
    assert code == 1 and "now failing" in regression_lines(out)[0]
    assert check(base, base=failed)[0] == 0  # error -> ok is a fix


def test_deterministic_column_dropped_from_new_regresses(check):
    code, out, _ = check(base_table().drop(columns="h_std"))
    assert code == 1 and "column missing in NEW" in out


def test_columns_option_restricts_and_validates(check):
    new = base_table()
    new["h_std"] += 1
    assert check(new, "--columns", "output_shape,shape_ok")[0] == 0
    assert check(new, "--columns", "h_std")[0] == 1
    code, _, err = check(new, "--columns", "command")
    assert code == 2 and "command cannot be compared" in err


def test_sweep_dir_inputs(tmp_path, capsys):
    for name in ("a", "b"):
        for num, row in enumerate(base_table().to_dict("records")):
            results.write_row(row, tmp_path / name / str(num))  # job rows only: a partial sweep
    assert compare.main([str(tmp_path / "a"), str(tmp_path / "b")]) == 0
    assert "4 rows matched" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file or directory"),
        ('cell,backend\nrnn,torch,1,2\n"unterminated', "malformed CSV"),
        ("", "empty file"),
        ("a,b\n1,2\n", "not a results table"),
        ("cell,hidden_size\nrnn,99\n", "no row of NEW matches a row of BASE"),
    ],
)
def test_unusable_input_exits_2_with_one_line(tmp_path, capsys, content, message):
    base = results.write_csv_atomic(base_table(), tmp_path / "base.csv")
    new = tmp_path / "new.csv"
    if content is not None:
        new.write_text(content)
    assert compare.main([str(base), str(new)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rnnexp compare: error: ") and err.count("\n") == 1 and message in err


@pytest.mark.parametrize(
    ("column", "kind"),
    [
        ("hidden_size", columns.CONFIG),
        ("bidirectional", columns.CONFIG),
        ("time_median_ms", columns.TIMING),
        ("gflops", columns.TIMING),
        ("peak_mem_bytes", columns.TIMING),
        ("compile_s", columns.TIMING),
        ("timing_min_run_time_s", columns.PROVENANCE),
        ("numpy_version", columns.PROVENANCE),
        ("error", columns.PROVENANCE),
        ("h_saturation_frac_l0", columns.DETERMINISTIC),
        ("h_norm_growth", columns.DETERMINISTIC),
        ("c_abs_max", columns.DETERMINISTIC),
        ("gate_saturation_frac_l0", columns.DETERMINISTIC),
        ("h_dead_frac_reverse", columns.DETERMINISTIC),
        ("c_n_shape", columns.DETERMINISTIC),
        ("param_bytes", columns.DETERMINISTIC),
        ("flops", columns.DETERMINISTIC),
        ("parity_ok", columns.DETERMINISTIC),
        ("something_new", columns.OTHER),
    ],
)
def test_column_kinds_by_pattern(column, kind):
    assert columns.kind(column) == kind


def test_config_columns_are_the_config_keys():
    assert "timing" not in columns.CONFIG_COLUMNS
    assert {"cell", "hidden_size", "backend", "seed", "init_gain"} <= set(columns.CONFIG_COLUMNS)


@pytest.mark.slow
def test_two_real_sweeps_agree_then_a_doctored_one_does_not(tmp_path):
    sweep = ["-m", "cell=rnn,lstm", "backend=numpy,torch", "timing=quick"]
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        assert run_cli(sweep, tmp_path / name).returncode == 0
    a, b = (next((tmp_path / n / "outputs" / "multirun").glob("*/*")) for n in ("a", "b"))
    same = run_cli(["compare", str(a), str(b), "--ignore-timing"], tmp_path)  # timings on a shared machine vary
    assert same.returncode == 0, same.stdout + same.stderr
    doctored = pd.read_csv(b / "results.csv")
    doctored.loc[0, "h_std"] += 0.01
    doctored.to_csv(tmp_path / "doctored.csv", index=False)
    cmd = [sys.executable, "-m", "rnnexp.compare", str(a), str(tmp_path / "doctored.csv"), "--ignore-timing"]
    changed = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert changed.returncode == 1 and "h_std" in changed.stdout
