"""Review of tables from elsewhere: hostile cells stay text, and review says what it is (not) looking at.

Hostile cells go through report (report.md and the terminal), compare (the terminal) and the
end-of-run summary; tampered, partial, running and damaged sweeps through report and compare.
"""

from __future__ import annotations

import errno
import re
import sys

import numpy as np
import pandas as pd
import pytest
from filelock import FileLock
from test_compare import base_rows
from test_report import make_rows, make_sweep, samples_for, steps_for

from rnnexp import dirlock, schema
from rnnexp import manifest as mf
from rnnexp.fileio import write_csv_atomic
from rnnexp.review import checks, compare, escape, report, summary

HOSTILE = [
    "<script>alert(1)</script>",
    '<img src=x onerror="alert(1)">',
    "a\n\n## heading\n\nb",
    "![x](http://evil.example/x.png)",
    "[click](javascript:alert(1))",
    "\x1b[2J\x1b[H",  # clear the screen
    "\x1b]0;owned\x07",  # OSC 0: the window title
    "\x1b]52;c;ZWNobyBvd25lZA==\x07",  # OSC 52: write the clipboard
    "\x9b31mred",  # C1 CSI
    "=cmd|' /C calc'!A0",
    "\u202etxt.exe",  # right-to-left override
    "**bold** _em_ `code` ~~s~~ $x^$",
    "a|b\rc\x7f",
    "&lt;script&gt; <http://evil.example> www.evil.example me@evil.example",
]
# Raw sequences that must never reach a terminal or report.md.
RAW = ["\x1b", "\x07", "\x9b", "\u202e", "\r", "\x7f"]
MD_RAW = ["<script", "<img", "<http", "![x](", "](http", "](javascript", "**bold**", "`code`", "~~s", "$x^$"]


def terminal_safe(text: str) -> bool:
    """Nothing a terminal acts on: every character printable, or a line break."""
    return all(ch.isprintable() or ch == "\n" for ch in text)


def hostile_rows() -> list[dict]:
    """make_rows() with a hostile value in every text cell review shows: config keys, backend, shapes, errors."""
    rows = make_rows()
    for i, row in enumerate(rows):
        row["init"] = HOSTILE[i % len(HOSTILE)]
        row["output_shape"] = HOSTILE[(i + 3) % len(HOSTILE)]
        row["hostname"] = HOSTILE[(i + 6) % len(HOSTILE)]
        row["backend"] = "numpy" if row["backend"] == "numpy" else "<b>torch</b>\x1b[31m"
        row["\x1b]0;column\x07<i>"] = "x"  # an undeclared column, named hostilely too
    for row, bad in zip(rows[-3:], HOSTILE[-3:], strict=True):
        row.update(status="error", error=bad + "\n## injected", time_median_ms=None)
    return rows


def test_escape_functions_leave_nothing_raw():
    for cell in HOSTILE:
        assert terminal_safe(escape.terminal_text(cell)) and "\n" not in escape.terminal_text(cell)
        md = escape.markdown_cell(cell)
        assert "\n" not in md and not any(r in md for r in RAW + MD_RAW), md
        assert "<" not in escape.html_text(cell) and terminal_safe(escape.html_text(cell))
    assert escape.markdown_cell("&lt;b&gt;") == "&amp;lt;b&amp;gt;"  # an entity stays the text it is
    assert escape.markdown_cell("time_median_ms") == "time_median_ms"  # intraword: names stay readable
    assert escape.markdown_cell("(1, 10, 8)") == "(1, 10, 8)"
    assert escape.terminal_lines("a\nb\x1b") == "a\nb\\x1b"


def test_spreadsheet_cells_are_defused_numbers_are_not():
    df = pd.DataFrame({"host": ["=cmd|' /C calc'!A0", "+1+1", "-2+3", "@SUM(A1)", "\tx", "ok"], "t": [-1.5] * 6})
    safe = escape.spreadsheet_safe(df)
    assert safe["host"].tolist() == ["'=cmd|' /C calc'!A0", "'+1+1", "'-2+3", "'@SUM(A1)", "'\tx", "ok"]
    assert safe["t"].tolist() == [-1.5] * 6


def test_hostile_cells_through_report(tmp_path, capsys):
    rows = hostile_rows()
    a = make_sweep(tmp_path / "a\x1b]0;dir\x07", rows, samples=samples_for([r for r in rows if r["time_median_ms"]]))
    b = make_sweep(tmp_path / "<b>", make_rows())
    assert report.main([str(a), str(b), "--out", str(tmp_path / "out"), "--no-plots"]) == 0
    out = capsys.readouterr()
    assert terminal_safe(out.out) and terminal_safe(out.err)
    assert "\\x1b]0;owned\\x07" in out.out  # shown, not dropped
    md = (tmp_path / "out" / "report.md").read_text()
    assert not any(r in md for r in RAW + MD_RAW), [r for r in RAW + MD_RAW if r in md]
    headings = [line for line in md.splitlines() if line.startswith("#")]
    assert all(line.startswith(("# rnnexp report", "## ")) for line in headings)
    assert not any("heading" in h or "injected" in h for h in headings)
    for line in md.splitlines():  # a table line stays one table line: a cell broke out nowhere
        assert not line.startswith(("<", "!", "[", "=")) or re.fullmatch(r"!\[\w+\]\(\w+\.png\)", line), line
    assert "&lt;script&gt;" in md and "\\x1b" in md  # the hostile text is there, as text


@pytest.mark.slow
def test_hostile_labels_and_infinite_values_do_not_break_the_plots(tmp_path, capsys):
    rows = hostile_rows()
    for r in rows[:3]:
        r.update(h_std=np.inf, h_saturation_frac=np.inf, max_abs_err_vs_ref=np.inf, gflops=5.0)
    rows[0]["init"] = "$\\frac{$"  # mathtext that does not parse
    steps = steps_for(rows)
    steps.loc[::7, "h_norm"] = np.inf
    sweep = make_sweep(tmp_path / "s", rows, samples=None, **{schema.STEPS: steps})
    assert report.main([str(sweep)]) == 0
    out = capsys.readouterr()
    assert terminal_safe(out.out) and terminal_safe(out.err)
    assert "plots leave out infinite values (results.csv h_std: 3; results.csv h_saturation_frac: 3;" in out.err
    assert "steps.csv h_norm: " in out.err
    for name in ("time_vs_size.png", "state_norm.png", "gflops_vs_size.png"):
        assert (sweep / name).stat().st_size > 10_000


def test_hostile_cells_through_compare(tmp_path, capsys):
    base = base_rows()
    new = [{**r, "hostname": HOSTILE[6], "output_shape": HOSTILE[i], "init": HOSTILE[7]} for i, r in enumerate(base)]
    base = [{**r, "init": HOSTILE[7]} for r in base]
    make_sweep(tmp_path / "base", base, samples=samples_for(base))
    make_sweep(tmp_path / "new\x1b[2J", new, samples=samples_for(new))
    assert compare.main([str(tmp_path / "base"), str(tmp_path / "new\x1b[2J")]) == 1
    out = capsys.readouterr()
    assert terminal_safe(out.out) and terminal_safe(out.err)
    assert "warning: hostname differs: BASE host; NEW \\x1b]0;owned\\x07" in out.out
    assert "<script>alert(1)</script>" in out.out  # a terminal shows markup as text: left as it is


def test_hostile_cells_through_the_summary():
    df = schema.coerce(schema.conform_frame(pd.DataFrame(hostile_rows())))
    text = summary.table(df)
    assert terminal_safe(text)
    assert "error in job 7: " in text and "\\n## injected" in text  # one line per failure, break shown
    assert all(terminal_safe(summary.one_line(r)) for r in hostile_rows())


def test_a_hostile_cell_in_an_error_message_is_one_inert_line(tmp_path, capsys):
    path = tmp_path / "r.csv"
    path.write_text('cell,backend,shape_ok\nrnn,torch,"\x1b]52;c;eA==\x07\nyes"\n')
    assert report.main([str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and terminal_safe(err) and "column shape_ok" in err


# --------------------------------------------------------------------------- compare checks its evidence


def _pair(tmp_path, new_samples=None, new_rows=None):
    rows = base_rows()
    make_sweep(tmp_path / "base", rows, samples=samples_for(rows, seed=1))
    new_rows = rows if new_rows is None else new_rows
    make_sweep(
        tmp_path / "new", new_rows, samples=samples_for(new_rows, seed=2) if new_samples is None else new_samples
    )
    return [str(tmp_path / "base"), str(tmp_path / "new")]


def _other_sweep_samples() -> pd.DataFrame:
    other = [{**r, "time_median_ms": r["time_median_ms"] * 25.7} for r in base_rows()]
    return samples_for(other, seed=3)


@pytest.mark.parametrize(
    ("samples", "said"),
    [
        (
            _other_sweep_samples(),
            "job 0: the median of its 10 forward samples is 25.7 ms, its row's time_median_ms is 1 ms",
        ),
        (samples_for(base_rows()).assign(job_num=lambda s: s["job_num"] + 1), "has rows for job 4, which results.csv"),
        (samples_for(base_rows()).assign(job_num=lambda s: (s["job_num"] + 1) % 4), "job 0: the median"),
        (pd.concat([samples_for(base_rows()), samples_for(base_rows()).assign(job_num=9)]), "for job 9, which"),
        (samples_for(base_rows()).iloc[1:], "job 0: it has 9 forward samples, its row's n_blocks is 10"),
        (samples_for(base_rows()).assign(cell="gru"), "job 0: its samples carry cell=gru, its row cell=rnn"),
    ],
    ids=["copied", "shifted", "rotated", "orphan", "short", "config"],
)
def test_samples_that_are_not_their_rows_own_exit_2(tmp_path, capsys, samples, said):
    assert compare.main(_pair(tmp_path, samples)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert f"NEW {tmp_path / 'new'}: samples.csv does not match its results.csv: " in err and said in err


def test_a_job_without_samples_is_inconclusive_and_said(tmp_path, capsys):
    samples = samples_for(base_rows()).query("job_num != 2")
    assert compare.main(_pair(tmp_path, samples)) == 0
    out = capsys.readouterr().out
    assert "NEW: job 2 ran but samples.csv has no samples for it: its timing is inconclusive" in out
    assert re.search(r"time_median_ms .*no samples in NEW.*inconclusive", out)


def test_ignore_timing_does_not_judge_samples(tmp_path):
    assert compare.main([*_pair(tmp_path, _other_sweep_samples()), "--ignore-timing"]) == 0


def test_median_tolerance_is_float_rounding_not_a_real_difference():
    rows = pd.DataFrame(base_rows())
    samples = samples_for(base_rows())
    assert checks.sample_mismatches(rows, samples) == []
    off = rows.assign(time_median_ms=rows["time_median_ms"] * (1 + 1e-6))
    assert len(checks.sample_mismatches(off, samples)) == 4


# --------------------------------------------------------------------------- what review is looking at


def _manifest_sweep(root, rows, keep: set[int]):
    """A sweep whose manifest records every row's job, with only the jobs in ``keep`` written (no root table)."""
    make_sweep(root, rows)
    jobs = [mf.Job(r["job_num"], [f"cell={r['cell']}", f"backend={r['backend']}", f"hidden_size={r['hidden_size']}"],
                   {"cell": r["cell"], "backend": r["backend"], "hidden_size": r["hidden_size"]}, str(r["job_num"]))
            for r in rows]  # fmt: skip
    mf.Manifest("sweep", ["-m", "hidden_size=8,32"], jobs).write(root)
    for name in (schema.RESULTS, schema.SAMPLES):
        (root / name).unlink()
    for r in rows:
        if r["job_num"] not in keep:
            for f in (root / str(r["job_num"])).iterdir():
                f.unlink()
            (root / str(r["job_num"])).rmdir()
    return root


def test_interrupted_sweep_names_its_missing_jobs(tmp_path, capsys):
    rows = make_rows()[:6]
    sweep = _manifest_sweep(tmp_path / "s", rows, keep={0, 1})
    assert report.main([str(sweep), "--no-plots"]) == 0
    err = capsys.readouterr().err
    said = "4 of 6 jobs have no row (not run, interrupted or deleted): job 2 (cell=rnn backend=torch hidden_size=8)"
    assert said in err and "job 5 (cell=lstm backend=numpy hidden_size=32)" in err
    assert escape.markdown_cell(said) in (sweep / "report.md").read_text()
    make_sweep(tmp_path / "base", rows)
    assert compare.main([str(tmp_path / "base"), str(sweep), "--ignore-timing", "--require-same-rows"]) == 1
    assert "warning: NEW: 4 of 6 jobs have no row" in capsys.readouterr().out
    assert compare.main([str(tmp_path / "base"), str(sweep), "--ignore-timing"]) == 0  # listed, not failed (issue 23)
    out = capsys.readouterr().out
    assert "warning: NEW: 4 of 6 jobs have no row" in out and "4 only-in-base" in out


def test_deleted_job_dir_without_root_table_is_named(tmp_path, capsys):
    sweep = _manifest_sweep(tmp_path / "s", make_rows()[:4], keep={0, 1, 3})
    assert report.main([str(sweep), "--no-plots"]) == 0
    assert "1 of 4 jobs have no row (not run, interrupted or deleted): job 2 (" in capsys.readouterr().err


def test_report_refuses_to_write_into_a_running_sweep(tmp_path, capsys):
    sweep = make_sweep(tmp_path / "s", make_rows())
    with FileLock(sweep / dirlock.LOCK):  # a live sweep holds it
        assert report.main([str(sweep), "--no-plots"]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "is still being written by" in err and "--out" in err
        assert not (sweep / "report.md").exists()
        (sweep / "3" / ".hydra").mkdir()  # a job dir of it, as Hydra makes them: the same
        assert report.main([str(sweep / "3"), "--no-plots"]) == 1
        assert not (sweep / "3" / "report.md").exists() and "is still being written" in capsys.readouterr().err
        assert report.main([str(sweep), "--no-plots", "--out", str(tmp_path / "elsewhere")]) == 0
        assert "is still being written by" in capsys.readouterr().err
    assert (tmp_path / "elsewhere" / "report.md").is_file() and not (sweep / "report.md").exists()
    assert report.main([str(sweep), "--no-plots"]) == 0  # a lock file nobody holds: stale, not live
    assert (sweep / "report.md").is_file()


def test_duplicated_job_row_is_refused_never_averaged(tmp_path, capsys):
    rows = make_rows()
    sweep = make_sweep(tmp_path / "s", [*rows, {**rows[3], "time_median_ms": 998.0}])
    assert report.main([str(sweep), "--no-plots"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "job_num 3 has 2 rows (time_median_ms 1.6, 998)" in err
    assert compare.main([str(sweep), str(sweep)]) == 2


def test_samples_without_a_row_are_named_by_report(tmp_path, capsys):
    rows = make_rows()
    sweep = make_sweep(
        tmp_path / "s", rows, samples=pd.concat([samples_for(rows), samples_for(rows[:1]).assign(job_num=42)])
    )
    assert report.main([str(sweep), "--no-plots"]) == 0
    assert "samples.csv has rows for job 42, which results.csv has no row for" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("column", "value", "said"),
    [
        ("time_median_ms", "inf", "column time_median_ms: inf (job 1) (allowed: a finite number >= 0)"),
        ("time_median_ms", "-3", "column time_median_ms: -3.0 (job 1)"),
        ("hidden_size", "-5", "column hidden_size: -5 (job 1) (allowed: a finite number >= 1)"),
        ("layers", "1e400", "column layers: 1e400 is not a whole number within the 64-bit integer range"),
        ("seed", "9" * 30, f"column seed: {'9' * 30} is not a whole number within the 64-bit integer range"),
        ("gflops", "nan", None),  # a missing value, not a bad one
    ],
)
def test_impossible_values_are_named_in_one_line(tmp_path, capsys, column, value, said):
    rows = [{**r, "seed": 0, "layers": 1, "gflops": 1.0} for r in base_rows()]
    cells = pd.DataFrame(rows).astype(str)
    cells.loc[1, column] = value  # as a doctored CSV holds it
    path = write_csv_atomic(cells, tmp_path / "s" / schema.RESULTS)
    other = write_csv_atomic(pd.DataFrame(rows), tmp_path / "other.csv")
    for run in (lambda: report.main([str(path), "--no-plots", "--out", str(tmp_path)]),
                lambda: compare.main([str(other), str(path)])):  # fmt: skip
        code, err = run(), capsys.readouterr().err
        if said is None:
            assert code == 0 and "error" not in err
        else:
            assert code == 2 and err.count("\n") == 1 and said in err and str(path) in err, err


def test_infinite_values_are_never_the_same(tmp_path, capsys):
    inf = {"h_std": {0: np.inf, 1: np.inf}, "max_abs_err_vs_ref": {2: np.inf}}
    base, new = base_rows(), base_rows()
    for column, by_row in inf.items():
        for i, v in by_row.items():
            base[i][column] = new[i][column] = v
    new[1]["h_std"] = -np.inf
    new[3]["h_std"] = np.inf
    make_sweep(tmp_path / "a", base, samples=samples_for(base))
    make_sweep(tmp_path / "b", new, samples=samples_for(new))
    assert compare.main([str(tmp_path / "a"), str(tmp_path / "b")]) == 1
    fields = [re.split(r"\s{2,}", line) for line in capsys.readouterr().out.splitlines()]
    verdict = {(f[0], f[1]): f[-1] for f in fields if len(f) == 6 and f[1] in ("h_std", "max_abs_err_vs_ref")}
    assert verdict[("cell=rnn backend=numpy", "h_std")] == "inconclusive"  # inf and inf: not a number to compare
    assert verdict[("cell=rnn backend=torch", "h_std")] == "REGRESSION"  # inf to -inf
    assert verdict[("cell=lstm backend=torch", "h_std")] == "REGRESSION"  # finite to inf
    assert verdict[("cell=lstm backend=numpy", "max_abs_err_vs_ref")] == "inconclusive"


def test_full_disk_is_one_line(tmp_path, capsys, monkeypatch):
    sweep = make_sweep(tmp_path / "s", make_rows())
    real = report.write_text_atomic
    writes = {"done": 0, "fail_from": 0}

    def full(path, text):
        writes["done"] += 1
        if writes["done"] > writes["fail_from"]:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, text)

    monkeypatch.setattr(report, "write_text_atomic", full)
    for fail_from in (0, 1):  # at the probe, then at report.md
        writes.update(done=0, fail_from=fail_from)
        assert report.main([str(sweep), "--no-plots"]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "no space left" in err.lower(), err
        assert not (sweep / "report.md").exists()


def test_stdout_on_a_full_disk_is_one_line(tmp_path, capsys, monkeypatch):
    sweep = make_sweep(tmp_path / "s", make_rows())

    class Full:
        def write(self, text):
            raise OSError(errno.ENOSPC, "No space left on device")

        def flush(self):
            pass

        def fileno(self):
            return sys.__stdout__.fileno()

    monkeypatch.setattr(sys, "stdout", Full())
    monkeypatch.setattr("rnnexp.review.output.Printer._detach", lambda self: setattr(self, "closed", True))
    assert report.main([str(sweep), "--no-plots"]) == 1
    err = capsys.readouterr().err
    assert err.strip() == "rnnexp report: error: cannot write to stdout: No space left on device"


def test_corrupt_manifest_without_root_table_is_one_line(tmp_path, capsys):
    sweep = _manifest_sweep(tmp_path / "s", make_rows()[:4], keep={0, 1, 2, 3})
    (sweep / mf.MANIFEST).write_text('{"format": 1, "jobs": [')
    assert report.main([str(sweep), "--no-plots"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "manifest.json: not a readable rnnexp manifest" in err
    assert compare.main([str(sweep), str(sweep)]) == 2
    make_sweep(tmp_path / "t", make_rows())
    (tmp_path / "t" / mf.MANIFEST).write_text("[]")  # with a root table: reported, the manifest's loss said
    assert report.main([str(tmp_path / "t"), "--no-plots"]) == 0
    assert "which of its jobs have no row cannot be said" in capsys.readouterr().err
