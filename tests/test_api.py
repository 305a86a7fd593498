"""The Python API: rnnexp.load and rnnexp.run, in this process (a subprocess only for what importing costs)."""

from __future__ import annotations

import doctest
import re
import subprocess
import sys
import tempfile

import pandas as pd
import pytest

import rnnexp
from conftest import ROOT
from rnnexp import api, cli, schema
from rnnexp.config import ConfigError

QUICK = ("backend=numpy", "timing=quick", "hidden_size=4", "timesteps=3")


@pytest.fixture
def no_stray_files(tmp_path, monkeypatch):
    """cwd and the temp dir both under tmp_path, so a test can see everything a call wrote."""
    work, scratch = tmp_path / "work", tmp_path / "scratch"
    work.mkdir()
    scratch.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    return work, scratch


def sweep(root, *overrides):
    args = ["-m", *QUICK, *overrides, f"hydra.sweep.dir={root}", "store=null"]
    assert cli.run(args) == 0
    return root


def test_the_docstring_examples_run():
    assert doctest.testmod(api, raise_on_error=False).failed == 0


def test_the_api_page_runs_as_written(no_stray_files, capsys):
    """docs/api.md's Python blocks, in order, in one namespace, as a reader would paste them."""
    work, _ = no_stray_files
    page = (ROOT / "docs" / "api.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", page, flags=re.S)
    assert len(blocks) >= 3  # run, load, the errors
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, "docs/api.md", "exec"), namespace)
    assert {p.name for p in (work / "runs").iterdir()} == {"numpy_t20", "torch_t20"}
    rows = namespace["rows"]
    assert list(rows["backend"]) == ["numpy", "torch"] and set(rows["source"]) == {"numpy_t20", "torch_t20"}
    assert str(rows["hidden_size"].dtype) == "Int64" and (rows["status"] == "ok").all()
    assert namespace["row"].loc[0, "output_shape"] == "(1, 10, 16)"
    assert "hidden_size=0: must be a positive integer" in capsys.readouterr().out


def test_import_is_cheap():
    code = "import sys, rnnexp; print(sorted(m for m in ('pandas', 'hydra', 'torch', 'numpy') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_run_writes_nothing_outside_a_temporary_dir(no_stray_files):
    work, scratch = no_stray_files
    row = rnnexp.run(*QUICK, "cell=gru")
    assert len(row) == 1 and row.status[0] == "ok" and row.cell[0] == "gru"
    assert row.output_shape[0] == "(1, 3, 4)" and row.job_num[0] == 0
    assert row.command[0] == "python -m rnnexp " + " ".join([*QUICK, "cell=gru"])
    assert list(work.iterdir()) == [] and list(scratch.iterdir()) == []


@pytest.mark.slow
def test_run_has_the_cli_columns_and_dtypes(tmp_path):
    assert cli.run([*QUICK, f"hydra.run.dir={tmp_path / 'cli'}", "store=null"]) == 0
    by_cli = rnnexp.load(tmp_path / "cli")
    by_api = rnnexp.run(*QUICK, out=tmp_path / "api")
    assert list(by_api.columns) == list(by_cli.columns) == schema.names(schema.RESULTS)
    assert by_api.dtypes.to_dict() == by_cli.dtypes.to_dict()
    same = ["cell", "hidden_size", "output_shape", "h_n_shape", "h_mean", "flops", "status"]
    pd.testing.assert_frame_equal(by_api[same], by_cli[same])


def test_run_into_out_is_a_run_dir(tmp_path):
    out = tmp_path / "a" / "run"
    row = rnnexp.run(*QUICK, out=out)
    for name in ("results.csv", "steps.csv", "samples.csv", "env.json", ".hydra/config.yaml", ".hydra/overrides.yaml"):
        assert (out / name).is_file(), name
    assert not list(out.glob(".rnnexp.lock*"))
    pd.testing.assert_frame_equal(rnnexp.load(out), row)
    with pytest.raises(FileExistsError, match=str(out)):
        rnnexp.run(*QUICK, out=out)
    (tmp_path / "file").write_text("")
    with pytest.raises(NotADirectoryError, match="out="):
        rnnexp.run(*QUICK, out=tmp_path / "file")


def test_a_failing_job_is_a_row_not_an_exception(no_stray_files, monkeypatch, tmp_path):
    from rnnexp import runner

    def broken(cfg, ctx=None):
        raise RuntimeError("the engine broke")

    monkeypatch.setattr(runner, "execute", broken)
    row = rnnexp.run(*QUICK, out=tmp_path / "out")
    assert (row.status[0], row.error[0]) == ("error", "RuntimeError: the engine broke")
    assert "Traceback" in (tmp_path / "out" / "rnnexp.log").read_text()  # the log keeps it, the terminal does not


@pytest.mark.parametrize(
    "overrides, kind, names",
    [
        (["hiden_size=4"], ConfigError, "hiden_size"),
        (["hidden_size=0"], ConfigError, "hidden_size=0"),
        (["hidden_size=four"], ConfigError, "hidden_size=four"),
        (["cell=transformer"], ConfigError, "cell=transformer"),
        (["+experiment=no_such_preset"], ConfigError, "no_such_preset"),
        (["hidden_size=4,8"], ValueError, "hidden_size=4,8"),
        (["hidden_size=range(1,3)"], ValueError, "hidden_size"),
        (["-m", "hidden_size=4"], ValueError, "-m"),
        (["--cfg", "job"], ValueError, "--cfg"),
        (["hydra.run.dir=/tmp/x"], ConfigError, "hydra.run.dir"),
        (["hidden_size"], ConfigError, "hidden_size"),
    ],
)
def test_run_refuses_bad_overrides_naming_them(no_stray_files, overrides, kind, names):
    work, scratch = no_stray_files
    with pytest.raises(kind) as caught:
        rnnexp.run(*QUICK, *overrides)
    assert names in str(caught.value) and "\n" not in str(caught.value)
    assert list(work.iterdir()) == [] and list(scratch.iterdir()) == []


def test_the_errors_are_exported():
    assert rnnexp.ConfigError is ConfigError and issubclass(rnnexp.ConfigFileError, ValueError)


def test_run_refuses_a_non_string():
    with pytest.raises(TypeError, match="strings"):
        rnnexp.run(("hidden_size", 4))


def test_load_a_file_a_run_dir_a_sweep_dir_and_several(tmp_path):
    root = sweep(tmp_path / "s1", "hidden_size=4,6")
    from_dir, from_file = rnnexp.load(root), rnnexp.load(root / "results.csv")
    pd.testing.assert_frame_equal(from_dir, from_file)
    assert list(from_dir.hidden_size) == [4, 6] and str(from_dir.hidden_size.dtype) == "Int64"
    assert list(rnnexp.load(root / "1").hidden_size) == [6]  # a job dir of the sweep
    other = sweep(tmp_path / "s2", "cell=lstm,gru")
    both = rnnexp.load(root, other)
    assert list(both.source) == ["s1", "s1", "s2", "s2"]
    assert list(both.cell) == ["rnn", "rnn", "lstm", "gru"]
    assert both.drop(columns="source").dtypes.to_dict() == from_dir.dtypes.to_dict()


def test_load_rebuilds_a_sweep_whose_table_was_never_written(tmp_path):
    root = sweep(tmp_path / "s", "hidden_size=4,6,8")
    whole = rnnexp.load(root)
    (root / "results.csv").unlink()
    pd.testing.assert_frame_equal(rnnexp.load(root), whole)
    (root / "2" / "results.csv").unlink()  # an interrupted job: loaded, with a warning naming it
    with pytest.warns(UserWarning, match="1 of 3 jobs have no row"):
        assert list(rnnexp.load(root).hidden_size) == [4, 6]


def test_load_errors_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        rnnexp.load(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="missing.csv"):
        rnnexp.load(sweep(tmp_path / "s", "hidden_size=4,6"), tmp_path / "missing.csv")
    (tmp_path / "empty").mkdir()
    bad = {"empty": tmp_path / "empty", "text": tmp_path / "notes.txt", "blank": tmp_path / "blank.csv"}
    bad["text"].write_text("not,a\nresults,table\n")
    bad["blank"].write_text("")
    for path in bad.values():
        with pytest.raises(ValueError) as caught:
            rnnexp.load(path)
        assert str(path) in str(caught.value) and "\n" not in str(caught.value)
        assert not isinstance(caught.value, KeyError)
