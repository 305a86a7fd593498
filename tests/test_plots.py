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
                      "lines": lines}  # fmt: skip
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
