"""Hidden-state statistics: hand computations on small arrays, the step table's bound, agreement
across backends, and the gate recomputation against torch's own weights and cells."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from rnnexp import backends, stats
from rnnexp.backends import Outputs
from rnnexp.backends.numpy_ref import reference
from rnnexp.backends.torch_nn import build_module
from rnnexp.params import make_inputs, make_params
from rnnexp.stats import gate_activations, kept_steps, layer_stats, state_stats, step_table


def sig(a: float) -> float:
    return 1 / (1 + math.exp(-a))


def run(cfg):
    params, x = make_params(cfg), make_inputs(cfg)
    return params, x, reference(cfg, params, x)


def part(table, layer=0, direction="forward", gate=""):
    """The one layer_stats row of (layer, direction, gate) as a dict."""
    rows = table[(table.layer == layer) & (table.direction == direction) & (table.gate == gate)]
    assert len(rows) == 1, (layer, direction, gate)
    return rows.iloc[0].to_dict()


# --- the h_* columns, by hand ---------------------------------------------------------------------

# Time-major (T=2, B=2, H=2): eight values, two of them zero, two beyond 0.99 in magnitude (0.99 is not).
HAND = np.array([[[0.6, 0.8], [0.0, 0.0]], [[0.995, -0.985], [-1.0, 0.99]]])


@pytest.mark.parametrize("batch_first", [False, True])
def test_h_columns_by_hand(cfg_of, batch_first):
    cfg = cfg_of("hidden_size=2", "timesteps=2", "batch_size=2", f"batch_first={str(batch_first).lower()}")
    params, x, ref = run(cfg)
    out = Outputs(HAND.swapaxes(0, 1) if batch_first else HAND, HAND[-1:])
    got = state_stats(cfg, out, ref, params, x)
    # sum 0.6+0.8+0.995-0.985-1.0+0.99 = 1.4; |.| sum 5.37; squares 0.36+0.64+0.990025+0.970225+1+0.9801
    assert got["h_mean"] == pytest.approx(1.4 / 8)
    assert got["h_std"] == pytest.approx(math.sqrt(4.94035 / 8 - (1.4 / 8) ** 2))
    assert (got["h_min"], got["h_max"]) == (-1.0, 0.995)
    assert got["h_abs_mean"] == pytest.approx(5.37 / 8)
    assert got["h_saturation_frac"] == 2 / 8
    assert got["h_dead_frac"] == 2 / 8
    # first step: norms 1.0 (0.6, 0.8) and 0; last (h_n): sqrt(0.995^2 + 0.985^2) and sqrt(1 + 0.99^2)
    last = (math.sqrt(1.96025) + math.sqrt(1.9801)) / 2
    assert got["h_norm_first"] == pytest.approx(0.5)
    assert got["h_norm_last"] == pytest.approx(last)
    assert got["h_norm_growth"] == pytest.approx(last / 0.5)


def test_thresholds_by_hand():
    """Dead means exactly zero (-0.0 too); saturated means |h| strictly above 0.99."""
    got = stats.output_stats(np.array([0.0, -0.0, 1e-12, -1e-300, 0.99, -0.99, 0.990001, -0.999]))
    assert (got["h_dead_frac"], got["h_saturation_frac"]) == (2 / 8, 2 / 8)
    assert math.isnan(stats.output_stats(np.ones(3), bounded=False)["h_saturation_frac"])


def test_norm_last_reads_the_top_layer_of_h_n(cfg_of):
    cfg = cfg_of("hidden_size=2", "timesteps=2", "layers=2", "batch_first=false")
    params, x, ref = run(cfg)
    output = np.array([[[0.6, 0.8]], [[0.0, 0.5]]])
    h_n = np.array([[[0.9, 1.2]], [[0.0, 0.5]]])  # layer 0's final state, then the top layer's
    got = state_stats(cfg, Outputs(output, h_n), ref, params, x)
    assert (got["h_norm_first"], got["h_norm_last"], got["h_norm_growth"]) == pytest.approx((1.0, 0.5, 0.5))


def test_norms_follow_each_directions_processing_order(cfg_of):
    """Bidirectional: the reverse direction's first state is at t = T-1 and its last (in h_n) at t = 0."""
    cfg = cfg_of("hidden_size=1", "timesteps=3", "batch_first=false", "bidirectional=true")
    params, x, ref = run(cfg)
    fwd, rev = [0.3, 0.1, 0.6], [0.8, 0.2, 0.4]
    output = np.array([fwd, rev]).T.reshape(3, 1, 2)
    h_n = np.array([[[0.6]], [[0.8]]])  # forward's last step, reverse's last step (t = 0)
    got = state_stats(cfg, Outputs(output, h_n), ref, params, x)
    assert got["h_norm_first"] == pytest.approx(0.5)  # |(0.3, 0.4)|
    assert got["h_norm_last"] == pytest.approx(1.0)  # |(0.6, 0.8)|
    assert got["h_norm_growth"] == pytest.approx(2.0)


def test_growth_from_zero_is_nan(cfg_of):
    cfg = cfg_of("hidden_size=2", "timesteps=2", "batch_first=false")
    params, x, ref = run(cfg)
    output = np.array([[[0.0, 0.0]], [[0.3, 0.4]]])
    got = state_stats(cfg, Outputs(output, output[-1:]), ref, params, x)
    assert (got["h_norm_first"], got["h_norm_last"]) == (0.0, pytest.approx(0.5))
    assert math.isnan(got["h_norm_growth"])


def test_wrong_shapes_give_nan_norms_not_an_error(cfg_of):
    cfg = cfg_of()
    params, x, ref = run(cfg)
    got = state_stats(cfg, Outputs(ref.output[:, :5], ref.h_n), ref, params, x)
    assert math.isnan(got["h_norm_first"]) and got["h_mean"] == pytest.approx(ref.output[:, :5].mean())


@pytest.mark.parametrize(
    "overrides, nan_columns",
    [
        (["nonlinearity=relu"], {"h_saturation_frac", "gate_saturation_frac", "c_abs_max"}),
        (["cell=lstm", "proj_size=3"], {"h_saturation_frac"}),
        (["cell=gru"], {"c_abs_max"}),
        ([], {"c_abs_max"}),
    ],
)
def test_nan_where_a_statistic_does_not_apply(cfg_of, overrides, nan_columns):
    cfg = cfg_of(*overrides)
    params, x, ref = run(cfg)
    got = state_stats(cfg, ref, ref, params, x)
    assert {k for k, v in got.items() if math.isnan(v)} == nan_columns


# --- gates and the cell state, by hand -------------------------------------------------------------


def hand_cfg(cfg_of, cell, **extra):
    items = dict(cell=cell, hidden_size=1, input_size=1, batch_size=1, batch_first="false", dtype="float64") | extra
    return cfg_of(*(f"{k}={v}" for k, v in items.items()))


def hand_params(cfg, weight_ih, weight_hh, bias_hh=None):
    p = make_params(cfg)
    for k in p:
        rows = np.array(weight_ih if k.startswith("weight_ih") else weight_hh, dtype=np.float64)
        p[k] = rows.reshape(-1, 1) if k.startswith("weight") else np.zeros(len(rows))
        if k.startswith("bias_hh") and bias_hh is not None:
            p[k] = np.array(bias_hh, dtype=np.float64)
    return p


def test_rnn_gates_read_the_previous_state(cfg_of):
    """h_t = tanh(3 x_t - 3 h_{t-1}), x = (1, 1, 0): only the first step saturates (read h_t, and none would)."""
    cfg = hand_cfg(cfg_of, "rnn", timesteps=3, bidirectional="true")
    p = hand_params(cfg, [3.0], [-3.0])
    x_fwd = np.array([1.0, 1.0, 0.0])
    h0 = math.tanh(3)
    h1 = math.tanh(3 - 3 * h0)
    want = [h0, h1, math.tanh(-3 * h1)]
    for d, seq in enumerate([x_fwd, x_fwd[::-1]]):  # the reverse direction reads (0, 1, 1) backwards
        x = seq.reshape(3, 1, 1).copy()
        ref = reference(cfg, p, x)
        (chunk,) = gate_activations(cfg, p, ref, x, 0, d)
        np.testing.assert_allclose(chunk["h"].ravel(), want, rtol=1e-12)
    got = state_stats(cfg, ref, ref, p, x)
    assert got["gate_saturation_frac"] == pytest.approx(1 / 3)
    table = layer_stats(cfg, ref, p, x)
    for d in ("forward", "reverse"):
        assert part(table, 0, d)["gate_saturation_frac"] == pytest.approx(1 / 3)
        assert part(table, 0, d, "h")["gate_saturation_frac"] == pytest.approx(1 / 3)  # an rnn's one gate is h


def test_lstm_gates_and_cell_state_by_hand(cfg_of):
    """x = (1, 1): i = f = sigmoid(10) (saturated), g = 0.5, o = sigmoid(5 h_{t-1}) (not saturated)."""
    cfg = hand_cfg(cfg_of, "lstm", timesteps=2)
    p = hand_params(cfg, [10.0, 10.0, math.atanh(0.5), 0.0], [0.0, 0.0, 0.0, 5.0])
    x = np.ones((2, 1, 1))
    ref = reference(cfg, p, x)
    s = sig(10)
    c1 = s * 0.5
    h1 = 0.5 * math.tanh(c1)
    c2 = s * c1 + s * 0.5
    (chunk,) = gate_activations(cfg, p, ref, x, 0, 0)
    np.testing.assert_allclose(chunk["o"].ravel(), [0.5, sig(5 * h1)], rtol=1e-12)
    np.testing.assert_allclose(chunk["c"].ravel(), [c1, c2], rtol=1e-12)
    got = state_stats(cfg, ref, ref, p, x)
    assert got["c_abs_max"] == pytest.approx(c2, rel=1e-12)
    assert got["gate_saturation_frac"] == 0.5
    table = layer_stats(cfg, ref, p, x)
    per_gate = {g: part(table, gate=g)["gate_saturation_frac"] for g in "ifgo"}
    assert per_gate == {"i": 1.0, "f": 1.0, "g": 0.0, "o": 0.0}
    assert part(table)["gate_saturation_frac"] == 0.5


def test_gru_keeps_b_hn_inside_the_reset_product(cfg_of):
    """r = z = 1/2; n_t = tanh(x_t + r (2 h_{t-1} + 1)); h_t = (n_t + h_{t-1}) / 2."""
    cfg = hand_cfg(cfg_of, "gru", timesteps=2)
    p = hand_params(cfg, [0.0, 0.0, 1.0], [0.0, 0.0, 2.0], bias_hh=[0.0, 0.0, 1.0])
    x = np.ones((2, 1, 1))
    ref = reference(cfg, p, x)
    n1 = math.tanh(1 + 0.5)
    h1 = n1 / 2
    (chunk,) = gate_activations(cfg, p, ref, x, 0, 0)
    np.testing.assert_allclose(chunk["n"].ravel(), [n1, math.tanh(1 + 0.5 * (2 * h1 + 1))], rtol=1e-12)
    np.testing.assert_allclose(chunk["r"].ravel(), [0.5, 0.5])
    assert state_stats(cfg, ref, ref, p, x)["gate_saturation_frac"] == 0.0


def test_gate_saturated_margins():
    sigmoid_acts = np.array([0.0, 0.0099, 0.011, 0.5, 0.989, 0.9901])
    assert np.array_equal(stats.gate_saturated("f", sigmoid_acts), [1, 1, 0, 0, 0, 1])
    tanh_acts = np.array([-0.995, -0.98, 0.0, 0.98, 0.995])
    assert np.array_equal(stats.gate_saturated("g", tanh_acts), [1, 0, 0, 0, 1])


# --- layer_stats.csv: per layer, direction and gate ---------------------------------------------


def test_layer_stats_per_layer_and_direction(cfg_of):
    cfg = cfg_of("layers=3", "bidirectional=true", "init=uniform01", "input_dist=uniform01", "dtype=float64")
    params, x, ref = run(cfg)
    table = layer_stats(cfg, ref, params, x)
    assert list(table.columns) == list(stats.LAYER_STATS_COLUMNS)
    assert len(table) == 3 * 2 * 2  # per layer and direction: the whole row and the rnn's one gate, h
    for k, seq in enumerate(ref.layers):  # by hand from the reference's layers
        for d, (name, cols) in enumerate([("forward", np.s_[..., :8]), ("reverse", np.s_[..., 8:])]):
            h = seq[cols]
            got = part(table, k, name)
            assert got["h_saturation_frac"] == np.mean(np.abs(h) > 0.99)
            assert got["h_dead_frac"] == np.mean(h == 0)
            first, last = (h[0, 0], h[-1, 0]) if d == 0 else (h[-1, 0], h[0, 0])  # reverse starts at t = T-1
            assert got["h_norm_growth"] == pytest.approx(np.linalg.norm(last) / np.linalg.norm(first))
            # rnn/tanh: the gate is h itself
            assert got["gate_saturation_frac"] == pytest.approx(got["h_saturation_frac"])
            assert part(table, k, name, "h")["gate_saturation_frac"] == got["gate_saturation_frac"]
            assert math.isnan(part(table, k, name, "h")["h_saturation_frac"])  # the gate row has gate figures only
    # Not all zeros, so the checks above bite; and layer 0 (inputs in [0, 1)) saturates less than layer 2.
    assert 0.5 < part(table, 0)["h_saturation_frac"] < part(table, 2)["h_saturation_frac"]


@pytest.mark.parametrize(
    "overrides, parts, gates",
    [
        ([], 1, ["h"]),  # an rnn's one gate is h
        (["cell=lstm", "layers=2", "bidirectional=true"], 4, ["i", "f", "g", "o"]),
        (["cell=gru", "bidirectional=true"], 2, ["r", "z", "n"]),
        (["nonlinearity=relu", "layers=2"], 2, []),  # relu has no bounded activation: the layer rows alone
    ],
)
def test_layer_stats_rows_and_row_columns_for_every_shape(cfg_of, overrides, parts, gates):
    """The row has the same twelve columns whatever the network; the parts live in layer_stats.csv."""
    cfg = cfg_of(*overrides)
    params, x, ref = run(cfg)
    assert list(state_stats(cfg, ref, ref, params, x)) == list(stats.ROW_COLUMNS)
    table = layer_stats(cfg, ref, params, x)
    assert len(table) == parts * (1 + len(gates))
    assert table.gate.tolist() == ([""] + gates) * parts  # each layer-direction's row, then its gates
    assert table.groupby(["layer", "direction"]).size().tolist() == [1 + len(gates)] * parts
    whole = table[table.gate == ""]
    assert whole.h_dead_frac.notna().all() and whole.h_norm_growth.notna().all()
    assert whole.gate_saturation_frac.isna().all() == (not gates)
    assert table[table.gate != ""][["h_saturation_frac", "h_dead_frac", "h_norm_growth"]].isna().all().all()


def test_lstm_gate_rows_by_hand(cfg_of):
    """x = (1, 1) both ways: i and f saturate, g and o do not, in each direction's rows."""
    cfg = hand_cfg(cfg_of, "lstm", timesteps=2, bidirectional="true")
    p = hand_params(cfg, [10.0, 10.0, math.atanh(0.5), 0.0], [0.0, 0.0, 0.0, 5.0])
    x = np.ones((2, 1, 1))
    ref = reference(cfg, p, x)
    table = layer_stats(cfg, ref, p, x)
    for d in ("forward", "reverse"):  # the same weights and a constant input: both directions alike
        assert {g: part(table, 0, d, g)["gate_saturation_frac"] for g in "ifgo"} == {"i": 1, "f": 1, "g": 0, "o": 0}
        assert part(table, 0, d)["gate_saturation_frac"] == 0.5


def test_chunking_changes_nothing(cfg_of, monkeypatch):
    cfg = cfg_of("cell=lstm", "layers=2", "bidirectional=true", "batch_size=3", "timesteps=9")
    params, x, ref = run(cfg)
    whole = state_stats(cfg, ref, ref, params, x)
    monkeypatch.setattr(stats, "CHUNK_ELEMENTS", 1)  # one step per chunk: the cell state crosses chunks
    assert len(list(gate_activations(cfg, params, ref, x, 1, 1))) == 9
    np.testing.assert_allclose(list(state_stats(cfg, ref, ref, params, x).values()), list(whole.values()), rtol=1e-15)


@pytest.mark.parametrize("proj", [0, 3])
def test_cell_state_trajectory_ends_at_the_references_c_n(cfg_of, proj):
    cfg = cfg_of("cell=lstm", "layers=2", "bidirectional=true", f"proj_size={proj}", "dtype=float64", "batch_size=2")
    params, x, ref = run(cfg)
    peak = 0.0
    for k in range(2):
        for d in range(2):
            c = np.concatenate([chunk["c"] for chunk in gate_activations(cfg, params, ref, x, k, d)])
            np.testing.assert_allclose(c[-1], ref.c_n[2 * k + d], rtol=1e-12, atol=1e-15)
            peak = max(peak, np.abs(c).max())
    got = state_stats(cfg, ref, ref, params, x)["c_abs_max"]
    assert got == peak and got >= np.abs(ref.c_n).max()


# --- step_table ------------------------------------------------------------------------------------


def test_step_table_by_hand(cfg_of):
    cfg = cfg_of("hidden_size=2", "timesteps=2", "batch_size=2", "bidirectional=true")
    layer = np.concatenate([HAND, -HAND[::-1]], axis=-1)  # reverse: HAND negated, time flipped
    table = step_table(cfg, Outputs(None, None, layers=[layer]))
    assert list(table.columns) == [
        "layer",
        "direction",
        "timestep",
        "h_mean",
        "h_std",
        "h_norm",
        "h_saturation_frac",
    ]
    assert list(zip(table.direction, table.timestep, strict=True)) == [
        ("forward", 0),
        ("forward", 1),
        ("reverse", 0),
        ("reverse", 1),
    ]
    # forward t=0: (0.6, 0.8, 0, 0): mean 0.35, E[h^2] = 0.25, norms 1 and 0; none saturated
    np.testing.assert_allclose(table.h_mean[:2], [0.35, 0.0], atol=1e-15)
    assert table.h_std[0] == pytest.approx(math.sqrt(0.25 - 0.35**2))
    assert table.h_norm[0] == pytest.approx(0.5)
    np.testing.assert_allclose(table.h_saturation_frac, [0.0, 0.5, 0.5, 0.0])
    assert table.h_std[3] == pytest.approx(table.h_std[0]) and table.h_norm[3] == pytest.approx(0.5)


def test_step_table_rows_for_a_deep_bidirectional_lstm(cfg_of):
    cfg = cfg_of("cell=lstm", "layers=2", "bidirectional=true", "timesteps=7")
    table = step_table(cfg, run(cfg)[2])
    assert len(table) == 2 * 2 * 7
    groups = table.groupby(["layer", "direction"]).timestep.apply(list)
    assert len(groups) == 4 and all(steps == list(range(7)) for steps in groups)
    assert table.h_saturation_frac.between(0, 1).all()


def test_step_table_nan_saturation_for_relu(cfg_of):
    cfg = cfg_of("nonlinearity=relu")
    table = step_table(cfg, run(cfg)[2])
    assert table.h_saturation_frac.isna().all() and table.h_norm.notna().all()


@pytest.mark.parametrize("steps, rows", [(1, 1), (199, 199), (200, 200), (201, 200), (1000, 200), (12345, 200)])
def test_kept_steps_bound(steps, rows):
    keep = kept_steps(steps)
    assert len(keep) == rows and keep[0] == 0 and keep[-1] == steps - 1
    gaps = set(np.diff(keep).tolist()) or {1}
    assert min(gaps) >= 1 and max(gaps) - min(gaps) <= 1  # distinct, evenly spaced up to rounding


def test_step_table_is_bounded_and_reads_the_kept_steps(cfg_of):
    cfg = cfg_of("hidden_size=1", "timesteps=1000", "batch_first=false")
    layer = np.arange(1000, dtype=np.float64).reshape(1000, 1, 1) / 1000  # h_t = t / 1000
    table = step_table(cfg, Outputs(None, None, layers=[layer]))
    assert len(table) == 200 and table.timestep.iloc[-1] == 999
    np.testing.assert_allclose(table.h_mean, table.timestep / 1000)


# --- the same statistics whichever backend ran --------------------------------------------------------

BACKEND_CASES = [
    ["init=uniform01", "input_dist=uniform01"],  # saturated: the fractions are not all zero
    ["nonlinearity=relu", "layers=2"],
    ["cell=lstm", "layers=2", "bidirectional=true", "init=normal", "init_gain=3"],
    ["cell=lstm", "proj_size=3", "batch_first=false", "batch_size=3"],
    ["cell=gru", "bidirectional=true", "init=xavier_uniform", "init_gain=4"],
]
OWN_OUTPUT = {"h_mean", "h_std", "h_min", "h_max", "h_abs_mean", "h_saturation_frac", "h_dead_frac"}
OWN_OUTPUT |= {"h_norm_first", "h_norm_last", "h_norm_growth"}
PARITY = 1e-5  # float32's parity tolerance (max_abs_err_vs_ref), for values of size <= 1


@pytest.mark.parametrize("overrides", BACKEND_CASES, ids=lambda o: "-".join(o))
def test_statistics_agree_across_backends(cfg_of, overrides):
    cfg = cfg_of(*overrides, "timesteps=6")
    params, x, ref = run(cfg)
    rows = {}
    for name in ("numpy", "torch", "torch_cell"):
        prepared = backends.load(name).prepare(cfg, params, x)
        with prepared.context():
            out = prepared.fetch(prepared.call())
        rows[name] = state_stats(cfg, out, ref, params, x)
    h = np.abs(ref.output)
    # A fraction may differ by the share of values within the tolerance of its threshold.
    slack = {"h_saturation_frac": np.mean(np.abs(h - 0.99) < PARITY), "h_dead_frac": np.mean((h > 0) & (h < PARITY))}
    want = rows["numpy"]
    if "init=uniform01" in overrides:
        assert want["h_saturation_frac"] > 0.5  # so that agreeing on it means something
    for name, got in rows.items():
        assert got.keys() == want.keys(), name
        for col, v in got.items():
            if col in OWN_OUTPUT:
                assert v == pytest.approx(want[col], rel=1e-4, abs=slack.get(col, PARITY), nan_ok=True), (name, col)
            else:  # from the reference: the very same numbers
                assert v == want[col] or (math.isnan(v) and math.isnan(want[col])), (name, col)


# --- the gate recomputation against torch ---------------------------------------------------------------


def torch_gates(module, cell, inp, layer, direction):
    """One layer and direction stepped in torch with the module's own weights: gates, c and h per step."""
    sfx = f"_l{layer}" + ("_reverse" if direction else "")
    w = {n: getattr(module, n + sfx, None) for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr")}
    seq = inp.flip(0) if direction else inp
    h = seq.new_zeros(seq.shape[1], w["weight_hh"].shape[1])
    c = seq.new_zeros(seq.shape[1], module.hidden_size)
    steps = []
    for xt in seq:
        gx, gh = xt @ w["weight_ih"].T + w["bias_ih"], h @ w["weight_hh"].T + w["bias_hh"]
        if cell == "lstm":
            i, f, g, o = (gx + gh).chunk(4, dim=1)
            i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
            c = f * c + i * g
            h = o * torch.tanh(c)
            h = h @ w["weight_hr"].T if w["weight_hr"] is not None else h
            steps.append({"i": i, "f": f, "g": g, "o": o, "c": c, "out": h})
        else:
            (xr, xz, xn), (hr, hz, hn) = gx.chunk(3, dim=1), gh.chunk(3, dim=1)
            r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
            n = torch.tanh(xn + r * hn)
            h = (1 - z) * n + z * h
            steps.append({"r": r, "z": z, "n": n, "out": h})
    got = {k: torch.stack([s[k] for s in steps]) for k in steps[0]}
    got["out"] = got["out"].flip(0) if direction else got["out"]
    return got


@pytest.mark.parametrize(
    "overrides",
    [["cell=lstm", "proj_size=3"], ["cell=lstm", "init=uniform01"], ["cell=gru"], ["cell=gru", "init=orthogonal"]],
    ids=lambda o: "-".join(o),
)
def test_gates_agree_with_torch(cfg_of, overrides):
    cfg = cfg_of(*overrides, "layers=2", "bidirectional=true", "batch_first=false", "batch_size=2", "dtype=float64")
    params, x, ref = run(cfg)
    module = build_module(cfg, params, torch.device("cpu"))
    inp = torch.from_numpy(x)
    with torch.no_grad():
        want_out = module(inp)[0]
        for k in range(cfg.layers):
            theirs = [torch_gates(module, cfg.cell.value, inp, k, d) for d in range(2)]
            for d in range(2):
                ours = list(gate_activations(cfg, params, ref, x, k, d))
                for name, t in theirs[d].items():
                    if name != "out":
                        np.testing.assert_allclose(np.concatenate([c[name] for c in ours]), t.numpy(), atol=1e-12)
            inp = torch.cat([t["out"] for t in theirs], dim=-1)
    torch.testing.assert_close(inp, want_out, rtol=0, atol=1e-12)  # the torch loop is nn.LSTM/GRU's own


# --- the gates counted while the reference runs (its step observer) -----------------------------------

OBSERVED_CASES = [
    ["init=uniform01", "input_dist=uniform01", "layers=2"],  # rnn: most of h saturated
    ["cell=lstm", "layers=2", "bidirectional=true", "init=normal", "init_gain=3", "batch_size=3"],
    ["cell=lstm", "proj_size=3", "bidirectional=true", "init=uniform01", "batch_first=false"],
    ["cell=gru", "bidirectional=true", "init=xavier_uniform", "init_gain=4", "layers=2"],
    ["cell=gru", "init=uniform01", "input_dist=ones", "input_scale=3"],
    ["nonlinearity=relu", "layers=2"],
]


@pytest.mark.parametrize("chunk", [1, 1 << 18], ids=["step_by_step", "default_chunk"])
@pytest.mark.parametrize("overrides", OBSERVED_CASES, ids=lambda o: "-".join(o))
def test_observed_counts_equal_recomputed_counts(cfg_of, monkeypatch, overrides, chunk):
    """The observer counts the loop's own activations; recomputing them from the states gives the same counts."""
    monkeypatch.setattr(stats, "OBSERVE_CHUNK_ELEMENTS", chunk)
    cfg = cfg_of(*overrides, "timesteps=12")
    params, x = make_params(cfg), make_inputs(cfg)
    counter = stats.GateCounter(cfg)
    ref = reference(cfg, params, x, observe=counter)
    recount = stats.count_gates(cfg, params, ref, x)
    counter.flush()
    np.testing.assert_array_equal(counter.saturated, recount.saturated)
    np.testing.assert_array_equal(counter.values, recount.values)
    if cfg.cell.value == "lstm":  # the loop's c and the recomputed c agree to rounding
        assert counter.c_abs_max == pytest.approx(recount.c_abs_max, rel=1e-13)
    else:
        assert math.isnan(counter.c_abs_max) and math.isnan(recount.c_abs_max)
    observed_row, observed_table = stats.reference_stats(cfg, ref, counter)
    recount_row, recount_table = stats.reference_stats(cfg, ref, recount)
    assert observed_row["gate_saturation_frac"] == recount_row["gate_saturation_frac"] or not counter.names
    pd.testing.assert_frame_equal(observed_table, recount_table)
    if "uniform01" in overrides or "init_gain=4" in overrides:
        assert counter.saturated.sum() > 0  # so that agreeing means something


def test_the_observer_leaves_the_reference_unchanged(cfg_of):
    cfg = cfg_of("cell=lstm", "layers=2", "bidirectional=true", "batch_size=2", "timesteps=7")
    params, x = make_params(cfg), make_inputs(cfg)
    plain, watched = reference(cfg, params, x), reference(cfg, params, x, observe=stats.GateCounter(cfg))
    for a, b in zip([plain.output, plain.h_n, plain.c_n], [watched.output, watched.h_n, watched.c_n], strict=True):
        assert np.array_equal(a, b)
