"""``report.html``: one self-contained page to browse a run in (no network when viewed, opens from file://).

The results table holds every row (failures first, configuration columns first), sortable and filterable
by a small script of our own (page.js); the interactive plots are plotly's, with plotly.js inlined once.
Every value from a table, an env.json or a path is escaped here (``html.escape``); the plots' specs are
JSON inside ``<script type="application/json">`` with every ``<`` written as ``\\u003c``, so no value can
end its script block.
"""

from __future__ import annotations

import base64
import html
import json
import numbers
import os
from importlib import resources
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pandas as pd

from rnnexp import schema
from rnnexp.fileio import write_text_atomic
from rnnexp.review import axes, figures
from rnnexp.review.inputs import ENV_FILE, Results, source_names
from rnnexp.review.keys import SOURCE, key_columns, order_rows, text, varying

NAME = "report.html"
FIRST = ["status", "error", "parity_ok", "max_abs_err_vs_ref", "parity_tol", "grad_parity_ok",
         "grad_max_abs_err_vs_ref", "grad_parity_tol", "time_median_ms", "time_iqr_ms", "noisy", "gflops",
         "peak_frac"]  # fmt: skip  # after the configuration: whether it ran, parity, its speed
ALWAYS = {"status", "parity_ok", "grad_parity_ok"}  # in the table even when every row has the same value
ENV_SHOWN = ("git_commit", "git_dirty", "start_time_utc", "hostname", "cpu_model", "cores_usable", "platform",
             "python_version", "numpy_version", "torch_version", "rnnexp_version", "torch_num_threads",
             "slurm_job_id")  # fmt: skip


def esc(value) -> str:
    return html.escape(text(value), quote=True)


def _asset(name: str) -> str:
    return resources.files("rnnexp.review").joinpath(name).read_text(encoding="utf-8")


def _folder(path: Path) -> Path | None:
    """The dir an input's env.json and job dirs are in: the input dir, or a results.csv's own dir (any other CSV,
    a baseline say, may sit anywhere: nothing beside it is its own)."""
    if path.is_dir():
        return path
    return path.parent if path.name == schema.RESULTS else None


def _read_env(path: Path) -> dict:
    if _folder(path) is None:
        return {}
    try:
        env = json.loads((_folder(path) / ENV_FILE).read_text())
    except (OSError, ValueError):  # missing or unreadable: the page says there is none
        return {}
    return env if isinstance(env, dict) else {}


def _job_dirs(path: Path) -> dict[int, Path]:
    """Each job's dir by its number: from the manifest when there is one, else the numbered dirs beside it."""
    folder = _folder(path)
    if folder is None:
        return {}
    try:
        jobs = json.loads((folder / "manifest.json").read_text()).get("jobs", [])
        found = {int(j["num"]): folder / j["dir"] for j in jobs}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):  # none, or not rnnexp's: look beside it
        found = {}
    return found or {int(p.name): p for p in folder.iterdir() if p.is_dir() and p.name.isdigit()}


def source_labels(df: pd.DataFrame, paths: list[Path]) -> tuple[dict[str, str], dict[str, dict]]:
    """Per input name: its label in legends (the name, with its commit when the inputs' commits differ) and env."""
    names = source_names(paths) if len(paths) > 1 else [""]
    envs = {n: _read_env(p) for n, p in zip(names, paths, strict=True)}
    labels = axes.source_labels(df, {n: str(e.get("git_commit") or "") for n, e in envs.items()})
    return {n: labels.get(n, n) for n in names}, envs


def _columns(df: pd.DataFrame) -> tuple[list[str], list[str], dict[str, str]]:
    """The table's configuration columns (varying, the source first), its other columns, and the columns that
    hold one value in every row (shown once above the table instead)."""
    filled = [c for c in df.columns if df[c].notna().any() and not (df[c].astype("string") == "").all()]
    constant = {c: text(df[c].dropna().iloc[0]) for c in filled
                if c not in ALWAYS and len(df) > 1 and df[c].nunique(dropna=False) == 1}  # fmt: skip
    config = [c for c in [SOURCE, *varying(df)] if c in filled and c not in constant]  # which sweep, first
    config += [c for c in key_columns(df) if c in filled and c not in constant and c not in config]
    config = list(dict.fromkeys(config))
    declared = [c for c in schema.names() if c not in FIRST]
    rest = [c for c in [*FIRST, *declared, *df.columns] if c in filled and c not in constant and c not in config]
    rest = [c for c in dict.fromkeys(rest) if c != "job_num"]
    return config, rest, constant


def _is_false(value) -> bool:
    return isinstance(value, (bool, np.bool_)) and not value


def _cell(column: str, value) -> str:
    classes = []
    if isinstance(value, numbers.Number) and not isinstance(value, (bool, np.bool_)) and not pd.isna(value):
        classes.append("num")
        sort_key = f' data-v="{float(value)!r}"'.replace("inf", "Infinity").replace("nan", "")
    else:
        sort_key = ""
    if (column.endswith("_ok") and _is_false(value)) or (column == "status" and (pd.isna(value) or value != "ok")):
        classes.append("bad")
    if column == "error":
        classes.append("error")
    cls = f' class="{" ".join(classes)}"' if classes else ""
    return f"<td{cls}{sort_key}>{esc(value)}</td>"


def _link(row: pd.Series, dirs: dict[str, dict[int, Path]], out: Path) -> str:
    job = row.get("job_num")
    where = dirs.get(row.get(SOURCE, ""), {}).get(int(job)) if not pd.isna(job) else None
    if where is None or not where.is_dir():
        return f'<td class="num">{esc(job)}</td>'
    href = quote(Path(os.path.relpath(where, out)).as_posix()) + "/"
    return f'<td class="num" data-v="{int(job)}"><a href="{html.escape(href)}">{esc(job)}</a></td>'


def results_table(df: pd.DataFrame, dirs: dict[str, dict[int, Path]], out: Path) -> str:
    """Every row, failures first then in the reports' row order; a job's number links to its dir."""
    ordered = order_rows(df)
    failed = ~(ordered["status"] == "ok").fillna(False).astype(bool)
    ordered = pd.concat([ordered[failed], ordered[~failed]])
    config, rest, constant = _columns(df)
    shown = [*config, *rest]
    fixed = "".join(f"<li><b>{esc(k)}</b>={esc(v)}</li>" for k, v in constant.items())
    head = "".join(f'<th class="config" aria-sort="none"><button>{esc(c)}</button></th>' if c in config else
                   f'<th aria-sort="none"><button>{esc(c)}</button></th>' for c in ["job", *shown])  # fmt: skip
    inputs = "".join(f'<th><input type="search" aria-label="filter {esc(c)}" placeholder="filter"></th>'
                     for c in ["job", *shown])  # fmt: skip
    body = []
    for (_, row), bad in zip(ordered.iterrows(), failed.loc[ordered.index], strict=True):
        cells = "".join(_cell(c, row[c]) for c in shown)
        body.append(f"<tr{' class=failed' if bad else ''}>{_link(row, dirs, out)}{cells}</tr>")
    return (
        (f"<p>Every row has:</p><ul class=fixed>{fixed}</ul>" if fixed else "")
        + '<div class="controls"><input id="search" type="search" placeholder="search every column" '
        'aria-label="search every column"><label><input id="failed-only" type="checkbox"> failed jobs only</label>'
        '<span id="shown"></span><span class="note">click a heading to sort; a column filter takes text, =exact, '
        "!not, or &gt;x &lt;x on numbers</span></div>"
        f'<div class="scroll"><table id="results" class="results"><thead><tr>{head}</tr><tr>{inputs}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def environment(envs: dict[str, dict], labels: dict[str, str]) -> str:
    parts = []
    for name, env in envs.items():
        heading = f"<h3>{esc(labels.get(name, name))}</h3>" if name else ""
        if not env:
            parts.append(f"{heading}<p class=note>no {ENV_FILE} beside this input</p>")
            continue
        shown = "".join(f"<dt>{esc(k)}</dt><dd>{esc(env[k])}</dd>" for k in ENV_SHOWN if k in env)
        full = html.escape(json.dumps(env, indent=2, default=str))
        parts.append(f"{heading}<dl class=env>{shown}</dl><details><summary>all of {ENV_FILE}</summary>"
                     f"<pre>{full}</pre></details>")  # fmt: skip
    return "".join(parts)


def _script_json(spec: dict) -> str:
    """JSON that stays inside its script block whatever the strings hold."""
    return json.dumps(spec, allow_nan=False, separators=(",", ":")).replace("<", "\\u003c")


def plots_section(charts: list[figures.Chart], pngs: list[Path]) -> str:
    parts = []
    for i, c in enumerate(charts):
        note = f'<p class="note">{html.escape(c.note)}</p>' if c.note else ""
        parts.append(f'<h3>{html.escape(c.title)}</h3>{note}<div id="plot{i}" class="plot"></div>'
                     f'<script type="application/json" class="plot-spec" data-target="plot{i}">'
                     f"{_script_json(c.spec)}</script>")  # fmt: skip
    if pngs:
        imgs = "".join(f'<figure><img alt="{esc(p.stem)}" src="data:image/png;base64,'
                       f'{base64.b64encode(p.read_bytes()).decode("ascii")}"><figcaption>{esc(p.name)}</figcaption>'
                       "</figure>" for p in pngs)  # fmt: skip
        parts.append(f"<details><summary>The static figures of report.md ({len(pngs)})</summary>{imgs}</details>")
    return "".join(parts)


def counts(df: pd.DataFrame) -> str:
    failed = int((~(df["status"] == "ok").fillna(False).astype(bool)).sum())
    items = [f"{len(df)} rows", f"{len(df) - failed} ok"]
    bad = [f"{failed} failed"] if failed else []
    for col, what in (("parity_ok", "forward parity"), ("grad_parity_ok", "gradient parity")):
        n = int((df[col] == False).fillna(False).sum()) if col in df else 0  # noqa: E712 (a boolean column)
        bad += [f"{n} fail {what}"] if n else []
    return "<p class=counts>" + "".join(f"<span>{x}</span>" for x in items) + "".join(
        f"<span class=bad>{x}</span>" for x in bad) + "</p>"  # fmt: skip


def render(res: Results, paths: list[Path], out: Path, pngs: list[Path] = (), plots: bool = True) -> str:
    """The page's HTML."""
    paths = [Path(p) for p in paths]
    labels, envs = source_labels(res.table, paths)
    names = list(labels)
    dirs = {n: _job_dirs(p) for n, p in zip(names, paths, strict=True)}
    charts = figures.make_all(res.table, labels) if plots else []
    plotly_js = ""
    if charts:
        from plotly.offline import get_plotlyjs  # only where there is something to draw

        plotly_js = f"<script>{get_plotlyjs()}</script>"
    inputs = ", ".join(f"<code>{html.escape(str(p))}</code>" for p in paths)
    return (
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>rnnexp report</title>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<style>{_asset('page.css')}</style>{plotly_js}</head><body>"
        f"<h1>rnnexp report</h1><p>Inputs: {inputs}</p>{counts(res.table)}"
        + (f"<h2>Plots</h2>{plots_section(charts, list(pngs))}" if charts or pngs else "")
        + f"<h2>Results</h2>{results_table(res.table, dirs, out)}"
        f"<h2>Environment and commit</h2>{environment(envs, labels)}"
        f"<script>{_asset('page.js')}</script></body></html>\n"
    )


def write(res: Results, paths: list[Path], out: Path, pngs: list[Path] = (), plots: bool = True) -> Path:
    """report.html under ``out``, written atomically."""
    return write_text_atomic(Path(out) / NAME, render(res, paths, Path(out), pngs, plots))
