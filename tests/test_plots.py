"""Review plots (rnnexp.review.plots): legend-true styles, panels past MAX_SERIES, readable log axes, no repeats."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from test_report import assert_png, steps_for

from rnnexp import schema
from rnnexp.review import draw, plots
from rnnexp.review.inputs import Results


@pytest.fixture
def figures(monkeypatch):
    """Every figure the plots save: per file name, its panels' drawn line labels and the legend texts."""
    seen: dict[str, dict] = {}
    original = draw.finish

    def spy(fig, axes, styles, out, name, title, per_panel=False):
        path = original(fig, axes, styles, out, name, title, per_panel)
        drawn = [[line.get_label() for line in [*ax.lines, *ax.containers] if not line.get_label().startswith("_")]
                 for ax in axes]  # fmt: skip
        legends = [t.get_text() for leg in [*fig.legends, *(ax.get_legend() for ax in axes)] if leg
                   for t in leg.get_texts()]  # fmt: skip
        styles_drawn = [(tuple(s["color"]), s["marker"], s["linestyle"]) for s in styles.by_label.values()]
        lines = [[(list(ln.get_xdata()), list(ln.get_ydata())) for ln in ax.lines if not ln.get_label().startswith("_")]
                 for ax in axes]  # fmt: skip
        seen[name] = {"drawn": drawn, "legend": legends, "styles": styles_drawn, "panels": len(axes), "path": path,
                      "lines": lines, "title": title}  # fmt: skip
        return path

    monkeypatch.setattr(draw, "finish", spy)
    return seen


def table(rows: list[dict]) -> pd.DataFrame:
    return schema.coerce(schema.conform_frame(pd.DataFrame(rows)))


def test_styles_stay_distinct_past_ten_series():
    styles = draw.Styles()
    combos = [(tuple(s["color"]), s["marker"], s["linestyle"]) for s in (styles(f"s{i}") for i in range(40))]
    assert len(set(combos)) == 40
    assert styles("s3") == styles("s3")  # the same series keeps its style in every panel


def test_log_ticks_label_the_data_range():
    ticks = draw.nice_ticks(0.11, 0.19)  # a time plot whose points sit at 0.12-0.18 ms
    assert len(ticks) >= 3 and all(0.11 <= t <= 0.19 for t in ticks)
    assert len(draw.nice_ticks(0.08, 0.3)) >= 3
    wide = draw.nice_ticks(0.05, 2000)
    assert 0.1 in wide and 1000 in wide and len(wide) <= 12


def saturation_rows() -> list[dict]:
    rows = []
    inits, gains, sizes = (
        ("torch_default", "uniform01", "normal", "xavier_uniform", "orthogonal"),
        (0.5, 1, 2),
        (8, 64, 256),
    )
    for num, (init, gain, hidden) in enumerate(itertools.product(inits, gains, sizes)):
        sat = 0.95 if init == "uniform01" else min(1.0, 0.01 * gain * hidden / 64)
        rows.append({"cell": "rnn", "backend": "numpy", "init": init, "init_gain": float(gain), "hidden_size": hidden,
                     "h_saturation_frac": sat, "time_median_ms": 0.1 + hidden / 2000, "time_iqr_ms": 0.01,
                     "status": "ok", "job_num": num, "layers": 1})  # fmt: skip
    return rows


def test_fifteen_series_become_panels_and_every_line_is_in_the_legend(tmp_path, figures):
    df = table(saturation_rows())
    assert_png(plots.saturation_vs_init(df, tmp_path, "numpy"))
    fig = figures["saturation_vs_init.png"]
    assert fig["panels"] == 3 and all(len(p) == 5 for p in fig["drawn"])  # 5 inits x 3 widths: a panel per width
    assert set(itertools.chain(*fig["drawn"])) == set(fig["legend"]) and len(fig["legend"]) == 5
    assert len(set(fig["styles"])) == len(fig["styles"])


def test_time_plot_against_size_has_labelled_ticks_across_the_range(tmp_path, figures):
    rows = [r | {"time_median_ms": 0.12 + 0.03 * (r["hidden_size"] == 64) + 0.06 * (r["hidden_size"] == 256)}
            for r in saturation_rows() if r["init"] == "normal" and r["init_gain"] == 1]  # fmt: skip
    path = plots.time_vs_size(table(rows), tmp_path)
    assert_png(path)
    assert figures["time_vs_size.png"]["drawn"] == [["all rows"]] or len(figures["time_vs_size.png"]["drawn"][0]) == 1


def test_reference_trajectories_of_backends_are_drawn_once(tmp_path, figures):
    rows = []
    for num, (cell, backend) in enumerate(itertools.product(("rnn", "lstm"), ("numpy", "torch"))):
        rows.append({"cell": cell, "backend": backend, "hidden_size": 8, "status": "ok", "job_num": num})
    df = table(rows)
    res = Results(tmp_path, df, {schema.STEPS: schema.coerce(steps_for(rows), schema.STEPS)})
    assert_png(plots.state_norm(res, tmp_path))
    fig = figures["state_norm.png"]
    assert fig["drawn"] == [["rnn", "lstm"]]  # four jobs, two trajectories
    assert set(fig["legend"]) == {"rnn", "lstm"}


def test_shared_layers_merge_and_panels_follow_layer_and_direction(tmp_path, figures):
    rows = [{"cell": "rnn", "backend": "numpy", "hidden_size": 8, "layers": layers, "bidirectional": bidir,
             "status": "ok", "job_num": num}
            for num, (layers, bidir) in enumerate(itertools.product((1, 2), (False, True)))]  # fmt: skip
    steps = []
    for row in rows:
        for layer, direction in itertools.product(
            range(row["layers"]), ("forward", "reverse")[: 1 + row["bidirectional"]]
        ):
            # layer 0 forward is the same net in every job; layer 1 depends on the directions below it
            growth = 1.1 + (0.1 * row["bidirectional"] if layer else 0) + (0.05 if direction == "reverse" else 0)
            steps += [{"job_num": row["job_num"], "layer": layer, "direction": direction, "timestep": t,
                       "h_norm": growth**t} for t in range(8)]  # fmt: skip
    res = Results(tmp_path, table(rows), {schema.STEPS: schema.coerce(pd.DataFrame(steps), schema.STEPS)})
    assert_png(plots.state_norm(res, tmp_path))
    fig = figures["state_norm.png"]
    assert fig["panels"] == 4
    assert fig["drawn"][0] == ["all 4 runs in this panel"]  # layer 0 forward: four jobs, one line
    for drawn in fig["drawn"]:
        assert len(drawn) == len(set(drawn))
    assert set(itertools.chain(*fig["drawn"])) == set(fig["legend"])


BACKENDS = ("numpy", "torch")


def test_structure_sweep_gets_a_categorical_chart(tmp_path, figures):
    rows = [
        {
            "cell": "rnn",
            "backend": backend,
            "hidden_size": 8,
            "layers": layers,
            "bidirectional": bidir,
            "time_median_ms": 0.1 * layers * (1 + bidir),
            "time_iqr_ms": 0.01,
            "status": "ok",
            "job_num": num,
        }
        for num, (backend, layers, bidir) in enumerate(itertools.product(("numpy", "torch"), (1, 2), (False, True)))
    ]
    df = table(rows)
    assert plots.time_vs_size(df, tmp_path) is None  # no size varies: no line against size
    assert_png(plots.time_by_structure(df, tmp_path))
    fig = figures["time_by_structure.png"]
    assert fig["drawn"] == [["numpy", "torch"]] and set(fig["legend"]) == {"numpy", "torch"}


def test_dynamics_and_training_plots_when_their_columns_exist(tmp_path, figures):
    rows, steps = [], []
    for num, (cell, gain, seed) in enumerate(itertools.product(("rnn", "gru"), (0.5, 1.0, 2.0, 4.0), (0, 1, 2))):
        rows.append({"cell": cell, "backend": "numpy", "init_gain": gain, "seed": seed, "timesteps": 20,
                     "lyap_max": np.log(gain) + 0.01 * seed, "h_saturation_frac": min(1.0, gain / 4),
                     "status": "ok", "job_num": num})  # fmt: skip
        steps += [{"job_num": num, "layer": 0, "direction": "forward", "timestep": t, "h_norm": 1.0,
                   "grad_log_norm": (20 - 1 - t) * np.log(gain)} for t in range(20)]  # fmt: skip
    res = Results(tmp_path, table(rows), {schema.STEPS: schema.coerce(pd.DataFrame(steps), schema.STEPS)})
    assert_png(plots.dynamics(res, tmp_path, "numpy"))
    fig = figures["dynamics.png"]
    # exponents and saturation by cell; then the gradient flow, a panel per cell, one line per gain
    assert fig["panels"] == 4 and fig["drawn"][0] == fig["drawn"][1] == ["rnn", "gru"]
    gains = [f"init_gain={g}" for g in ("0.5", "1", "2", "4")]
    assert fig["drawn"][2] == fig["drawn"][3] == gains
    assert all(label in fig["legend"] for label in ["rnn", "gru", *gains])
    train = [{"cell": "lstm", "backend": b, "mode": "training", "time_median_ms": 3.0, "fwd_time_median_ms": 1.0,
              "bwd_data_time_median_ms": 1.0, "bwd_weights_time_median_ms": 0.8, "status": "ok", "job_num": i}
             for i, b in enumerate(("numpy", "torch"))]  # fmt: skip
    assert_png(plots.training_phases(table(train), tmp_path))
    assert plots.dynamics(Results(tmp_path, table(train)), tmp_path, None) is None


def test_make_all_on_a_plain_sweep(tmp_path):
    rows = saturation_rows()
    res = Results(tmp_path, table(rows), {schema.STEPS: schema.coerce(steps_for(rows), schema.STEPS)})
    made = {p.name for p in plots.make_all(res, tmp_path, "numpy")}
    assert made == {"time_vs_size.png", "saturation_vs_init.png", "state_norm.png"}


def test_state_norm_averages_seeds_and_thins_a_key_past_eight_lines(tmp_path, figures):
    rows, steps = [], []
    gains = [round(0.5 + 0.1 * i, 1) for i in range(16)]
    for num, (cell, gain, seed) in enumerate(itertools.product(("rnn", "gru"), gains, (0, 1, 2))):
        rows.append({"cell": cell, "backend": "numpy", "init_gain": gain, "seed": seed, "timesteps": 5,
                     "status": "ok", "job_num": num})  # fmt: skip
        steps += [{"job_num": num, "layer": 0, "direction": "forward", "timestep": t, "h_norm": gain * (1 + seed) + t}
                  for t in range(5)]  # fmt: skip
    res = Results(tmp_path, table(rows), {schema.STEPS: schema.coerce(pd.DataFrame(steps), schema.STEPS)})
    assert_png(plots.state_norm(res, tmp_path))
    fig = figures["state_norm.png"]
    assert fig["panels"] == 2  # by cell
    assert all(0 < len(lines) <= draw.MAX_SERIES for lines in fig["drawn"])  # not 48 lines a panel
    assert fig["drawn"][0] == ["init_gain=0.5", "init_gain=1", "init_gain=1.5", "init_gain=2"]
    # the mean over the three seeds is what is drawn: gain * (1 + 1) at timestep 0 for init_gain 0.5
    x, y = fig["lines"][0][0]
    assert x[0] == 0 and y[0] == pytest.approx(0.5 * 2)


def tick_labels(ax, axis: str) -> list:
    """The tick labels drawn inside the axis's range: what a reader sees."""
    which = ax.xaxis if axis == "x" else ax.yaxis
    low, high = sorted(ax.get_xlim() if axis == "x" else ax.get_ylim())
    return [t for t in which.get_ticklabels() if t.get_text() and low <= t.get_position()[axis == "y"] <= high]


def assert_legible(path) -> None:
    """Every panel of every figure drawn so far: numeric axes with at most MAX_TICKS labels that never touch."""
    figure = draw.plt.figure(figsize=(1, 1))  # a renderer to measure text with
    renderer = figure.canvas.get_renderer()
    draw.plt.close(figure)
    for ax in LEGIBLE[path]:
        for axis in ("x", "y"):
            labels = tick_labels(ax, axis)
            assert len(labels) <= draw.MAX_TICKS, (path, axis, [t.get_text() for t in labels])
            boxes = sorted((t.get_window_extent(renderer) for t in labels), key=lambda b: b.x0 if axis == "x" else b.y0)
            for a, b in itertools.pairwise(boxes):
                assert not a.overlaps(b), (path, axis, [t.get_text() for t in labels])


LEGIBLE: dict = {}


@pytest.fixture
def legible(monkeypatch):
    """Keep each saved figure's axes for assert_legible."""
    original = draw.finish

    def keep(fig, axes, styles, out, name, title, per_panel=False):
        path = original(fig, axes, styles, out, name, title, per_panel)
        LEGIBLE[path] = list(axes)
        return path

    monkeypatch.setattr(draw, "finish", keep)
    LEGIBLE.clear()
    return LEGIBLE


def size_rows(sizes, cells=("rnn",), backends=("numpy", "torch")) -> list[dict]:
    rows = []
    for num, (cell, backend, h) in enumerate(itertools.product(cells, backends, sizes)):
        t = 0.05 + h * h / 2e5 * (1 if backend == "numpy" else 0.6)
        rows.append({"cell": cell, "backend": backend, "hidden_size": h, "input_size": h, "time_median_ms": t,
                     "time_iqr_ms": t / 10, "gflops": h * h * 8e-6 / t, "status": "ok", "job_num": num})  # fmt: skip
    return rows


@pytest.mark.slow
@pytest.mark.parametrize(
    "sizes, cells",
    [(range(4, 1204, 4), ("rnn",)), (range(4, 4 + 4 * 167, 4), ("rnn", "lstm", "gru")), ((8, 64, 256), ("rnn",)),
     (range(100, 160, 5), ("rnn",))],  # 300 sizes; 1,002 rows; three sizes; twelve sizes under 10x (linear)
)  # fmt: skip
def test_size_axes_stay_legible_at_any_number_of_sizes(tmp_path, legible, sizes, cells):
    rows = size_rows(sizes, cells)
    for made in (plots.time_vs_size, plots.gflops_vs_size):
        path = made(table(rows), tmp_path)
        assert_png(path)
        assert_legible(path)
        ax = legible[path][0]
        assert ax.get_xscale() == ("log" if max(sizes) / min(sizes) > 10 else "linear")
        labels = [t.get_text() for t in tick_labels(ax, "x")]
        assert all(float(v) for v in labels)  # plain numbers, not categories or 10^x
        if len(sizes) <= draw.MAX_TICKS:
            assert [float(v) for v in labels] == [float(s) for s in sizes]  # few sizes: each one run


@pytest.mark.slow
def test_many_structures_become_panels_of_legible_categories(tmp_path, legible):
    rows = []
    for num, (backend, layers, bidir, dtype, init) in enumerate(itertools.product(
            ("numpy", "torch"), (1, 2, 3, 4), (False, True), ("float32", "float64"),
            ("torch_default", "orthogonal", "normal", "xavier_uniform", "uniform01"))):  # fmt: skip
        rows.append({"cell": "rnn", "backend": backend, "layers": layers, "bidirectional": bidir, "dtype": dtype,
                     "init": init, "time_median_ms": 0.1 * layers, "time_iqr_ms": 0.01, "status": "ok",
                     "job_num": num})  # fmt: skip
    path = plots.time_by_structure(table(rows), tmp_path)
    assert_png(path)
    assert_legible(path)
    assert 1 < len(legible[path]) <= draw.MAX_PANELS
    assert all(len(ax.get_xticklabels()) <= plots.MAX_CATEGORIES for ax in legible[path])


@pytest.mark.slow
@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
def test_non_finite_values_never_crash_a_plot(tmp_path, figures, bad):
    rows, steps = [], []
    for num, (gain, h) in enumerate(itertools.product((0.5, 1.0, 2.0), (8, 16, 32))):
        rows.append({"cell": "rnn", "backend": "numpy", "init_gain": gain, "hidden_size": h, "input_size": h,
                     "time_median_ms": 0.1 * h, "time_iqr_ms": 0.01, "gflops": 1.0 * h, "lyap_max": np.log(gain),
                     "h_saturation_frac": gain / 4, "status": "ok", "job_num": num})  # fmt: skip
        steps += [{"job_num": num, "layer": 0, "direction": "forward", "timestep": t, "h_norm": gain**t,
                   "grad_log_norm": -t * gain} for t in range(5)]  # fmt: skip
    steps_df = pd.DataFrame(steps)
    steps_df.loc[3, "h_norm"] = bad
    for row, column in enumerate(["time_median_ms", "gflops", "h_saturation_frac", "lyap_max"]):
        rows[2 * row + 1][column] = bad  # a different row each: every plot keeps some points
    res = Results(tmp_path, table(rows), {schema.STEPS: schema.coerce(steps_df, schema.STEPS)})
    made = {p.name for p in plots.make_all(res, tmp_path, "numpy")}
    assert {"time_vs_size.png", "gflops_vs_size.png", "saturation_vs_init.png", "state_norm.png"} <= made
    if bad == bad:  # nan is a missing value; an inf is left out with a note
        assert all("non-finite" in figures[f]["title"] for f in ("time_vs_size.png", "state_norm.png"))
    for fig in figures.values():
        for lines in fig["lines"]:
            for _, ys in lines:
                assert np.isfinite(np.asarray(ys, float)[~np.isnan(np.asarray(ys, float))]).all()


def test_several_sweeps_are_one_series_each_on_shared_axes(tmp_path, figures):
    a = [r | {"source": "before", "git_commit": "1111111aaaa"} for r in size_rows((8, 16, 32), ("rnn", "lstm"))]
    b = [r | {"source": "after", "git_commit": "2222222bbbb", "job_num": r["job_num"]}
         for r in size_rows((8, 16, 32), ("rnn", "lstm"))]  # fmt: skip
    made = plots.make_all(Results(tmp_path, table(a + b)), tmp_path)
    assert made
    fig = figures["time_vs_size.png"]
    assert fig["panels"] == 4  # cell x backend
    sweeps = ["before (1111111aa)", "after (2222222bb)"]
    assert all(drawn == sweeps for drawn in fig["drawn"]) and fig["legend"] == sweeps


def test_state_norm_over_several_sweeps(tmp_path, figures):
    rows = [r | {"job_num": i} for i, r in enumerate(size_rows((8, 16), ("rnn", "lstm"), ("numpy",)))]
    steps = schema.coerce(steps_for(rows), schema.STEPS)
    a, b = (table(rows).assign(source=s) for s in ("before", "after"))
    sides = {schema.STEPS: pd.concat([steps.assign(source="before"), steps.assign(source="after")])}
    assert_png(plots.state_norm(Results(tmp_path, pd.concat([a, b], ignore_index=True), sides), tmp_path))
    drawn = figures["state_norm.png"]["drawn"]
    labels = list(itertools.chain(*drawn))
    assert len(labels) == 4 and not any("before" in s or "after" in s for s in labels)  # both sweeps, one line each


def test_a_line_standing_for_a_panels_subset_never_says_every_configuration(tmp_path, figures):
    rows = [{"cell": "rnn", "backend": backend, "hidden_size": 8, "layers": layers, "status": "ok", "job_num": num}
            for num, (layers, backend) in enumerate(itertools.product((1, 2), ("numpy", "torch")))]  # fmt: skip
    steps = [{"job_num": r["job_num"], "layer": layer, "direction": "forward", "timestep": t, "h_norm": 1.0 + t * layer}
             for r in rows for layer in range(r["layers"]) for t in range(4)]  # fmt: skip
    res = Results(tmp_path, table(rows), {schema.STEPS: schema.coerce(pd.DataFrame(steps), schema.STEPS)})
    assert_png(plots.state_norm(res, tmp_path))
    drawn = figures["state_norm.png"]["drawn"]
    assert drawn == [["all 4 runs in this panel"], ["all 2 runs in this panel"]]  # layer 1: the two-layer jobs only
    assert "every configuration" not in figures["state_norm.png"]["legend"]
