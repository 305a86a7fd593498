"""report.html (rnnexp.review.html, figures): one self-contained page, every row, every value escaped."""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from conftest import ROOT
from rnnexp import schema
from rnnexp.fileio import write_csv_atomic, write_json_atomic
from rnnexp.review import figures, html, report
from rnnexp.review.inputs import load, load_many

HOSTILE = ["<script>alert(1)</script>", "=cmd|' /C calc'!A0", '"><img src=x onerror=alert(2)>', "</script><b>x",
           "a & b <!-- c"]  # fmt: skip


def sweep_rows(n_sizes: int, cells=("rnn", "lstm", "gru"), backends=("numpy", "torch"), commit="abc") -> list[dict]:
    """A size sweep's rows: time grows with the size, every value finite."""
    rows = []
    for num, (cell, backend, h) in enumerate(itertools.product(cells, backends, range(4, 4 + 4 * n_sizes, 4))):
        t = 0.01 + h * h / 2e5 * (1 if backend == "numpy" else 0.6)
        rows.append({"cell": cell, "backend": backend, "hidden_size": h, "input_size": h, "timesteps": 3,
                     "time_median_ms": t, "time_iqr_ms": t / 10, "noisy": False, "gflops": h * h * 8e-6 / t,
                     "max_abs_err_vs_ref": 1e-8 * h, "parity_tol": 1e-5, "parity_ok": True, "status": "ok",
                     "error": "", "job_num": num, "flops": h * h * 8, "git_commit": commit})  # fmt: skip
    return rows


def make_sweep(folder: Path, rows: list[dict], env: dict | None = None, job_dirs: bool = True) -> Path:
    """A sweep dir as rnnexp leaves it: results.csv, env.json, a dir per job."""
    folder.mkdir(parents=True, exist_ok=True)
    write_csv_atomic(schema.coerce(schema.conform_frame(pd.DataFrame(rows))), folder / schema.RESULTS)
    write_json_atomic(folder / "env.json", env or {"git_commit": rows[0].get("git_commit", ""), "hostname": "h"})
    for row in rows if job_dirs else []:
        (folder / str(row["job_num"])).mkdir(exist_ok=True)
    return folder


class Page(HTMLParser):
    """What a browser would see: text per element, the results table's cells, links, scripts, external refs."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.rows: list[list[str]] = []
        self.scripts: list[tuple[dict, str]] = []
        self._in_results = False
        self._cell: list[str] | None = None
        self._script: tuple[dict, list[str]] | None = None
        self.text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append((tag, attrs))
        if tag == "table" and attrs.get("id") == "results":
            self._in_results = True
        if self._in_results and tag == "tr":
            self.rows.append([])
        if self._in_results and tag in ("td", "th"):
            self._cell = []
        if tag == "script":
            self._script = (attrs, [])

    def handle_endtag(self, tag):
        if tag == "table":
            self._in_results = False
        if self._in_results and tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append("".join(self._cell))
            self._cell = None
        if tag == "script" and self._script is not None:
            self.scripts.append((self._script[0], "".join(self._script[1])))
            self._script = None

    def handle_data(self, data):
        if self._script is not None:
            self._script[1].append(data)
            return
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)

    def body_rows(self) -> list[list[str]]:
        return [r for r in self.rows[2:]]  # two heading rows: names, then filter boxes

    def header(self) -> list[str]:
        return self.rows[0]


def render(folder: Path, out: Path | None = None, **kw) -> tuple[str, Page]:
    res = load(folder)
    text = html.render(res, [folder], out or folder, **kw)
    return text, Page(text)


def test_page_holds_every_row_failures_first_configuration_columns_first(tmp_path):
    rows = sweep_rows(4)
    rows[5].update(status="error", error="boom", time_median_ms=None)
    rows[9].update(parity_ok=False)
    _, page = render(make_sweep(tmp_path / "s", rows))
    body = page.body_rows()
    assert len(body) == len(rows)
    head = page.header()
    assert head[0] == "job" and set(head[1:5]) == {"cell", "backend", "hidden_size", "input_size"}
    status = head.index("status")
    assert max(head.index(k) for k in ("cell", "backend", "hidden_size")) < status < head.index("time_median_ms")
    assert body[0][status] == "error" and body[0][0] == "5"  # the failure leads
    assert [r[0] for r in body].count("9") == 1
    assert "parity_ok" in head and "max_abs_err_vs_ref" in head


def test_columns_one_value_everywhere_are_named_once_above_the_table(tmp_path):
    _, page = render(make_sweep(tmp_path / "s", sweep_rows(3)))
    assert "timesteps" not in page.header()
    assert "timesteps" in "".join(page.text)


@pytest.mark.parametrize("value", HOSTILE)
@pytest.mark.parametrize("column", ["error", "backend", "init"])
def test_every_value_shows_as_text(tmp_path, value, column):
    rows = sweep_rows(2)
    rows[1][column] = value
    text, page = render(make_sweep(tmp_path / "s", rows, env={"hostname": value, "git_commit": value}))
    cells = list(itertools.chain(*page.body_rows()))
    assert value in cells  # the browser shows exactly the value, as text
    assert sum(value in t for t in page.text) >= 2  # and env.json's copy too
    executable = [(a, s) for a, s in page.scripts if a.get("type") != "application/json"]
    assert len(executable) == (2 if "Plotly" in text else 1)  # plotly.js (when plotted) and page.js: nothing else
    assert not any(t == "img" and "onerror" in a for t, a in page.tags)
    for attrs, spec in page.scripts:
        if attrs.get("type") == "application/json":
            assert "<" not in spec
            json.loads(spec)  # a hover text holding </script> cannot end the block


def test_plot_labels_are_escaped_for_plotly(tmp_path):
    rows = sweep_rows(3, backends=("numpy",))
    for r in rows:
        r["init"] = "<b>bold</b>" if r["cell"] == "rnn" else "plain"
    df = schema.coerce(schema.conform_frame(pd.DataFrame(rows)))
    spec = json.dumps([c.spec for c in figures.make_all(df, {})])
    assert "<b>bold</b>" not in spec and "&lt;b&gt;bold&lt;/b&gt;" in spec


def test_page_is_self_contained_and_plotly_is_inlined_once(tmp_path):
    text, page = render(make_sweep(tmp_path / "s", sweep_rows(5)))
    external = [a for t, a in page.tags for k in ("src", "href") if k in a and re.match(r"\w+://|//", a[k])]
    assert external == []  # nothing fetched when viewed: no script, style, image or font from elsewhere
    assert not any(t == "link" for t, _ in page.tags)
    big = [s for a, s in page.scripts if len(s) > 1e6]
    assert len(big) == 1 and "plotly" in big[0][:2000].lower()  # plotly.js, once for every plot
    specs = [a for a, _ in page.scripts if a.get("class") == "plot-spec"]
    assert len(specs) >= 3  # time, throughput, forward parity
    assert all(any(a.get("id") == s["data-target"] for _, a in page.tags) for s in specs)


def test_each_row_links_to_its_job_dir_relative_to_the_page(tmp_path):
    folder = make_sweep(tmp_path / "s", sweep_rows(2))
    out = tmp_path / "elsewhere" / "deep"
    out.mkdir(parents=True)
    _, page = render(folder, out=out)
    links = [a["href"] for t, a in page.tags if t == "a" and "href" in a]
    assert len(links) == 12
    for href in links:
        assert not href.startswith("/") and (out / href).resolve().parent == folder.resolve()
        assert (out / href).is_dir()


def test_rows_without_a_job_dir_get_no_link(tmp_path):
    _, page = render(make_sweep(tmp_path / "s", sweep_rows(2), job_dirs=False))
    assert not [a for t, a in page.tags if t == "a"]
    assert len(page.body_rows()) == 12


def test_a_csv_of_another_name_claims_nothing_beside_it(tmp_path):
    folder = make_sweep(tmp_path / "s", sweep_rows(2))  # numbered dirs and an env.json beside the CSV
    baseline = (folder / schema.RESULTS).rename(folder / "baseline.csv")
    page = Page(html.render(load(baseline), [baseline], tmp_path))
    assert not [a for t, a in page.tags if t == "a"]
    assert "no env.json beside this input" in "".join(page.text)


def test_several_sweeps_are_series_labelled_by_name_and_commit(tmp_path):
    a = make_sweep(tmp_path / "before", sweep_rows(3, commit="1111111aaaa"))
    b = make_sweep(tmp_path / "after", sweep_rows(3, commit="2222222bbbb"))
    res = load_many([a, b])
    text = html.render(res, [a, b], tmp_path)
    page = Page(text)
    assert len(page.body_rows()) == 2 * 18
    assert page.header()[1] == "source"
    spec = json.loads(next(s for at, s in page.scripts if at.get("class") == "plot-spec"))
    names = {t["name"] for t in spec["data"] if t["showlegend"]}
    assert names == {"before (1111111aa)", "after (2222222bb)"}
    assert {t["xaxis"] for t in spec["data"]} == {f"x{n}" for n in ["", *map(str, range(2, 7))]}
    assert all(spec["layout"][f"yaxis{n}"]["matches"] == "y" for n in range(2, 7))  # shared axes
    assert "2222222bbbb" in "".join(page.text)  # each sweep's environment


def test_facets_by_cell_and_backend_and_hover_names_the_configuration(tmp_path):
    df = schema.coerce(schema.conform_frame(pd.DataFrame(sweep_rows(60))))
    time = figures.make_all(df, {})[0]
    panels = [a["text"] for a in time.spec["layout"]["annotations"]]
    assert sorted(panels) == sorted(f"{c}, {b}" for c in ("rnn", "lstm", "gru") for b in ("numpy", "torch"))
    trace = time.spec["data"][0]
    assert trace["hovertext"][0].startswith("cell=rnn, backend=numpy") and "hidden_size=4" in trace["hovertext"][0]
    assert time.spec["layout"]["yaxis"]["type"] == "log"  # 0.01 to 0.3 ms: more than 10x
    assert not any(t["showlegend"] for t in time.spec["data"])  # one series per panel: its title says what it is


def test_too_many_series_become_points_with_a_note(tmp_path):
    rows = []
    for num, (seed, layers, h) in enumerate(itertools.product(range(3), range(1, 5), (8, 16, 32))):
        rows.append({"cell": "rnn", "backend": "numpy", "init_gain": 0.5 + 0.1 * seed, "layers": layers,
                     "hidden_size": h, "time_median_ms": 0.1 * layers, "status": "ok", "job_num": num})  # fmt: skip
    df = schema.coerce(schema.conform_frame(pd.DataFrame(rows)))
    time = figures.make_all(df, {})[0]
    assert "too many to tell apart" in time.note
    assert all(t["mode"] == "markers" for t in time.spec["data"])


@pytest.mark.parametrize("n_sizes", [4, 60])  # a linear and a log time axis
@pytest.mark.parametrize("bad", [float("inf"), float("-inf"), float("nan"), 0.0])
def test_non_finite_values_are_left_out_of_plots_with_a_note(tmp_path, bad, n_sizes):
    rows = sweep_rows(n_sizes)
    rows[2]["time_median_ms"] = bad
    df = schema.coerce(schema.conform_frame(pd.DataFrame(rows)))
    time = figures.make_all(df, {})[0]
    ys = list(itertools.chain(*(t["y"] for t in time.spec["data"])))
    log = time.spec["layout"]["yaxis"]["type"] == "log"
    assert log == (n_sizes == 60)
    kept = bad == 0.0 and not log  # zero is a value on a linear axis
    assert len(ys) == len(rows) - (not kept) and all(v is not None and (v > 0 or not log) for v in ys)
    if bad == bad and not kept:  # nan is missing, not a value to explain
        assert "1 row with a non-finite" in time.note


@pytest.mark.slow
def test_a_1000_row_sweep_stays_under_25_mb(tmp_path):
    folder = make_sweep(tmp_path / "s", sweep_rows(167), job_dirs=False)
    text, page = render(folder)
    assert len(page.body_rows()) == 1002
    assert len(text.encode()) < 25e6


def test_report_cli_writes_the_page_beside_report_md(tmp_path, capsys):
    folder = make_sweep(tmp_path / "s", sweep_rows(2))
    assert report.main([str(folder), "--no-plots"]) == 0
    assert (folder / "report.md").is_file() and (folder / "report.html").is_file()
    assert "page: " in capsys.readouterr().out
    assert 'class="plot-spec"' not in (folder / "report.html").read_text()  # --no-plots: the table, no plots


@pytest.mark.slow
def test_the_page_is_made_with_torch_hydra_and_the_engines_blocked(tmp_path):
    folder = make_sweep(tmp_path / "s", sweep_rows(3))
    code = (
        "import sys\n"
        "for m in ('torch', 'hydra', 'omegaconf', 'jax', 'jaxlib', 'onnxruntime', 'onnx'):\n"
        "    sys.modules[m] = None  # an import of any of them now raises ImportError\n"
        "from pathlib import Path\n"
        "from rnnexp.review import html, plots\n"
        "from rnnexp.review.inputs import load\n"
        f"folder = Path({str(folder)!r})\n"
        "res = load(folder)\n"
        "html.write(res, [folder], folder, plots.make_all(res, folder))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert 'class="plot-spec"' in (folder / "report.html").read_text()


def test_a_single_run_gets_its_table_and_no_plots(tmp_path):
    rows = sweep_rows(1, cells=("rnn",), backends=("numpy",))
    text, page = render(make_sweep(tmp_path / "s", rows))
    assert len(page.body_rows()) == 1 and 'class="plot-spec"' not in text
    assert max(len(body) for _, body in page.scripts) < 10_000  # page.js alone: no plotly.js
