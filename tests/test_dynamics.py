"""Hidden-state dynamics: exact theory (a linear map's spectrum, the zero fixed point's W_hh), chaos with
input, a brute-force two-trajectory referee, finite differences and torch.autograd for the one-step
Jacobians, the LSTM's (h, c) state, overflow-safe gradient flow, and the cost guard."""

import dataclasses
import math

import numpy as np
import pytest
import torch

from rnnexp import dynamics as dyn
from rnnexp import jacobians as jac
from rnnexp.backends.numpy_ref import reference
from rnnexp.config import Cell, ConfigError, Dtype, Init, InputDist, Nonlinearity, RunConfig
from rnnexp.params import make_inputs, make_params


def job(**kw):
    """A RunConfig as the CLI composes it (backend numpy, float32 weights unless told), weights, inputs, reference."""
    cfg = RunConfig(backend="numpy", **kw)
    params, x = make_params(cfg), make_inputs(cfg)
    return cfg, params, x, reference(cfg, params, x)


def chaos_job(gain, input_dist=InputDist.normal, **kw):
    """The issue's network: tanh RNN, H=128, T=2000, weights N(0, g^2/H), input 0.1 x N(0, 1).

    input_size = H: each unit's input current W_ih x_t is then N(0, (0.1 g)^2), the issue's plain
    loop's N(0, 0.1^2) at g = 1 (with the default input_size=5 it is ~0.02 g).
    """
    base = {"cell": Cell.rnn, "hidden_size": 128, "input_size": 128, "timesteps": 2000, "init": Init.normal}
    base |= {"input_scale": 0.1, "lyapunov_k": 1, "grad_flow": True}
    return job(**(base | kw | {"init_gain": gain, "input_dist": input_dist}))


def one_system(**kw):
    cfg, params, x, ref = job(**kw)
    return jac.systems(cfg, params, x, ref)[0]


def formed(sys, co_j):
    """J_t as a matrix, from the JVP on the identity (small states only)."""
    return jac.join(jac.jvp(sys, co_j, jac.split(sys, np.eye(sys.size)))).T


# --- the QR method on a linear map: exact ---------------------------------------------------------------


def test_qr_spectrum_of_a_linear_map_is_ln_abs_eigenvalues():
    rng = np.random.default_rng(7)
    eig = np.array([1.9, -1.3, 0.8, -0.45, 0.2, 0.07])  # distinct moduli, both signs
    p = rng.standard_normal((6, 6))
    m = p @ np.diag(eig) @ np.linalg.inv(p)  # not normal: its singular values are not its eigenvalues
    assert not np.allclose(np.linalg.svd(m, compute_uv=False), np.abs(eig), atol=0.1)
    frame = np.linalg.qr(rng.standard_normal((6, 6)))[0].T
    got = dyn.lyapunov_qr([lambda q: q @ m.T] * 600, frame, warmup=300)
    np.testing.assert_allclose(got, np.sort(np.log(np.abs(eig)))[::-1], rtol=0, atol=1e-8)
    got3 = dyn.lyapunov_qr([lambda q: q @ m.T] * 600, frame[:3], warmup=300)  # k < S: the k largest
    np.testing.assert_allclose(got3, np.log(np.abs(eig[:3])), rtol=0, atol=1e-8)


def test_qr_spectrum_of_a_rank_deficient_map_is_minus_inf():
    m = np.diag([2.0, 0.0])
    got = dyn.lyapunov_qr([lambda q: q @ m.T] * 5, np.eye(2), warmup=1)
    assert got[0] == pytest.approx(math.log(2)) and got[1] == -np.inf


@pytest.mark.parametrize(
    "exponents, size, want",
    [
        ([0.5, -0.2, -1.0], 3, 2.3),
        ([-0.1, -0.5], 2, 0.0),  # ordered: a stable fixed point or orbit
        ([0.3, 0.1], 5, math.nan),  # the partial sums never fall below 0 with these 2 of 5
        ([0.3, 0.1], 2, 2.0),  # the whole spectrum, volume-expanding
        ([0.0, -1.0], 2, 1.0),  # a limit cycle
        ([0.2, 0.0, -0.4], 3, 2.5),
    ],
)
def test_kaplan_yorke_by_hand(exponents, size, want):
    got = dyn.kaplan_yorke(np.array(exponents), size)
    assert got == pytest.approx(want, nan_ok=True)


# --- exact: zero input keeps a tanh RNN at its fixed point 0, where J_t = W_hh --------------------------


@pytest.mark.parametrize("gain", [0.5, 0.9, 1.3, 2.0])
def test_zero_input_exponent_and_gradient_slope_are_ln_spectral_radius(gain):
    cfg, params, x, ref = chaos_job(gain, InputDist.zeros)
    assert np.abs(ref.output).max() == 0.0  # at the fixed point all along
    w_hh = params["weight_hh_l0"].astype(np.float64)
    ln_rho = math.log(np.abs(np.linalg.eigvals(w_hh)).max())
    row, lyap, grads = dyn.dynamics_columns(cfg, params, x, ref)
    assert abs(row["lyap_max"] - ln_rho) < 0.01
    assert abs(row["grad_norm_log_slope"] - ln_rho) < 0.02
    # every step's Jacobian is W_hh itself: its largest singular value, every step
    sigma = np.linalg.norm(w_hh, 2)
    assert row["jac_sigma_max_mean"] == pytest.approx(sigma, rel=1e-6)
    assert row["jac_sigma_max_max"] == pytest.approx(sigma, rel=1e-6)
    assert list(lyap.columns) == ["direction", "index", "exponent"] and lyap.exponent[0] == row["lyap_max"]
    assert len(grads) == 2000 and np.isfinite(grads.grad_log_norm).all()


def test_gradient_log_norm_stays_finite_where_the_norm_overflows():
    """Gain 2 over 2000 steps: the norm grows like e^(2000 ln rho) ~ e^1500, far past float64's e^709."""
    cfg, params, x, ref = chaos_job(2.0, InputDist.zeros, lyapunov_k=0)
    row, _, grads = dyn.dynamics_columns(cfg, params, x, ref)
    g = grads.set_index("timestep").grad_log_norm
    assert np.isfinite(g).all()
    assert g[0] > 1000 > 709 and g[1999] == pytest.approx(0.0, abs=1e-12)  # |dL/dh_T| = |u| = 1
    ln_rho = math.log(np.abs(np.linalg.eigvals(params["weight_hh_l0"].astype(np.float64))).max())
    assert g[0] == pytest.approx(1999 * ln_rho, rel=0.01)
    with np.errstate(over="ignore"):
        assert not np.isfinite(np.exp(g[0]))  # the norm itself would not be representable


def test_gradient_log_norm_against_a_float64_product_where_it_fits():
    """At gain 1.3 over 300 steps the norm fits in float64: the plain product W^T...W^T u, no rescaling."""
    cfg, params, x, ref = job(
        cell=Cell.rnn, hidden_size=16, timesteps=300, init=Init.normal, init_gain=1.3,
        input_dist=InputDist.zeros, grad_flow=True,
    )  # fmt: skip
    _, _, grads = dyn.dynamics_columns(cfg, params, x, ref)
    w, adj, want = params["weight_hh_l0"].astype(np.float64), dyn.unit_vector(cfg), []
    for _ in range(300):
        want.append(math.log(np.linalg.norm(adj)))
        adj = adj @ w
    np.testing.assert_allclose(grads.grad_log_norm, want[::-1], rtol=0, atol=1e-9)


# --- chaos: input suppresses it, and a brute-force referee agrees -----------------------------------------


def test_input_keeps_gain_half_ordered_and_gain_two_chaotic():
    low = dyn.dynamics_columns(*chaos_job(0.5))[0]
    high = dyn.dynamics_columns(*chaos_job(2.0))[0]
    assert low["lyap_max"] < -0.3
    assert high["lyap_max"] > 0.05
    # input suppresses chaos: below the zero-input value ln rho (~0.74 for this W_hh)
    cfg, params, *_ = chaos_job(2.0)
    assert high["lyap_max"] < math.log(np.abs(np.linalg.eigvals(params["weight_hh_l0"].astype(float))).max()) - 0.3


def two_trajectory_exponent(sys, warmup, eps=1e-7, seed=5):
    """Benettin's two-trajectory estimate, no Jacobians: the nonlinear step from the reference's state and from
    that state moved by eps along the separation, renormalised to eps every step; the mean log growth."""
    rng = np.random.default_rng(seed)
    sep = rng.standard_normal(sys.size)
    sep *= eps / np.linalg.norm(sep)
    total = 0.0
    for t in range(sys.steps):
        base = jac.state_at(sys, t - 1)
        moved = jac.split(sys, jac.join(base) + sep)
        diff = jac.join(jac.step(sys, t, moved)) - jac.join(jac.step(sys, t, base))
        growth = np.linalg.norm(diff) / eps
        if t >= warmup:
            total += math.log(growth)
        sep = diff * (eps / np.linalg.norm(diff))
    return total / (sys.steps - warmup)


@pytest.mark.parametrize(
    "kw",
    [
        {"cell": Cell.rnn, "init_gain": 2.0},  # chaotic
        {"cell": Cell.rnn, "init_gain": 0.9},
        {"cell": Cell.gru, "init_gain": 3.0, "hidden_size": 64, "input_size": 64},
        {"cell": Cell.lstm, "init_gain": 3.0, "hidden_size": 32, "input_size": 32, "layers": 2},
    ],
    ids=lambda kw: f"{kw['cell'].value}-{kw['init_gain']}",
)
def test_qr_agrees_with_the_two_trajectory_estimate(kw):
    kw = dict(kw)
    cfg, params, x, ref = chaos_job(kw.pop("init_gain"), **kw)
    (sys,) = jac.systems(cfg, params, x, ref)
    qr = dyn.spectrum(sys, 1, cfg.lyapunov_warmup, cfg.seed)[0]
    brute = two_trajectory_exponent(sys, cfg.lyapunov_warmup)
    assert abs(qr - brute) < 0.01, (qr, brute)


# --- the one-step map and its Jacobians -----------------------------------------------------------------

CELLS = [
    {"cell": Cell.rnn},
    {"cell": Cell.rnn, "nonlinearity": Nonlinearity.relu, "init_gain": 0.8},
    {"cell": Cell.gru},
    {"cell": Cell.lstm},
    {"cell": Cell.lstm, "proj_size": 3},
]


def small(kw, **more):
    base = {"hidden_size": 5, "input_size": 4, "timesteps": 9, "layers": 2, "init": Init.normal, "init_gain": 1.5}
    return one_system(**(base | {"dtype": Dtype.float64} | kw | more))


@pytest.mark.parametrize("kw", CELLS, ids=lambda kw: "-".join(str(getattr(v, "value", v)) for v in kw.values()))
@pytest.mark.parametrize("bias", [True, False])
def test_step_reproduces_the_reference_trajectory(kw, bias):
    sys = small(kw, bias=bias, init=Init.torch_default, dtype=Dtype.float64)
    state = jac.initial_state(sys)
    for t in range(sys.steps):
        state = jac.step(sys, t, state)
        np.testing.assert_allclose(jac.join(state), jac.join(jac.state_at(sys, t)), rtol=0, atol=1e-13)


@pytest.mark.parametrize("kw", CELLS, ids=lambda kw: "-".join(str(getattr(v, "value", v)) for v in kw.values()))
def test_jvp_and_vjp_against_finite_differences(kw):
    """J_t v by central differences of the nonlinear step; J_t^T w through <w, J v> = <J^T w, v>."""
    sys = small(kw)
    rng = np.random.default_rng(3)
    eps = 1e-6
    for t in (0, 4, 8):
        co = jac.at(jac.coefficients(sys, 0, sys.steps), t)
        base = jac.join(jac.state_at(sys, t - 1))
        v, w = rng.standard_normal(sys.size), rng.standard_normal(sys.size)
        plus, minus = (jac.join(jac.step(sys, t, jac.split(sys, base + s * eps * v))) for s in (1, -1))
        fd = (plus - minus) / (2 * eps)
        got = jac.join(jac.jvp(sys, co, jac.split(sys, v)))
        np.testing.assert_allclose(got, fd, rtol=1e-6, atol=1e-8)
        assert np.abs(got).max() > 1e-3  # a Jacobian that is not zero, so the check bites
        back = jac.join(jac.vjp(sys, co, jac.split(sys, w))[1])
        assert w @ got == pytest.approx(back @ v, rel=1e-12, abs=1e-14)


@pytest.mark.parametrize("kw", CELLS, ids=lambda kw: "-".join(str(getattr(v, "value", v)) for v in kw.values()))
def test_vjp_agrees_with_the_bptt_step_vjp(kw):
    """The same transpose as the hand-written BPTT's per-step VJP (numpy_grad.step_vjp), layer 1 of two:
    dL/d(state after step t-1) and dL/d(its input), the lower layer's h at t."""
    from rnnexp.backends import numpy_grad

    base = {"hidden_size": 5, "input_size": 4, "timesteps": 9, "layers": 2, "init": Init.normal, "init_gain": 1.5}
    cfg, params, x, ref = job(**(base | {"dtype": Dtype.float64} | kw))
    (sys,) = jac.systems(cfg, params, x, ref)
    net = numpy_grad.prepare_weights(cfg, params)
    tape = numpy_grad.record(cfg, net, x).tapes[1][0]
    co, rng, lstm = jac.coefficients(sys, 0, sys.steps), np.random.default_rng(11), cfg.cell is Cell.lstm
    for t in (0, 4, 8):
        dh = rng.standard_normal((1, sys.out_size))
        dc = rng.standard_normal((1, sys.hidden_size)) if lstm else None
        dh_prev, dc_prev, d_in = numpy_grad.step_vjp(cfg, net[1][0], tape, t, dh, dc)
        below = (np.zeros((1, sys.out_size)), np.zeros((1, sys.hidden_size)) if lstm else None)
        total, previous = jac.vjp(sys, jac.at(co, t), [below, (dh, dc)])
        np.testing.assert_allclose(previous[1][0], dh_prev, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(total[0][0], d_in, rtol=1e-12, atol=1e-14)
        if lstm:
            np.testing.assert_allclose(previous[1][1], dc_prev, rtol=1e-12, atol=1e-14)


def test_coefficient_chunks_change_nothing(monkeypatch):
    sys = small({"cell": Cell.lstm}, timesteps=40, layers=3)
    whole = dyn.spectrum(sys, 4, 10, 0)
    monkeypatch.setattr(dyn, "CHUNK_ELEMENTS", 1)  # one step per chunk
    assert dyn.chunk_len(sys) == 1
    np.testing.assert_allclose(dyn.spectrum(sys, 4, 10, 0), whole, rtol=1e-13)


# --- gradient flow against torch.autograd ---------------------------------------------------------------


def torch_state_grads(cfg, params, x, u):
    """dL/d(state of each layer after each step), L = <u, top layer's last h>, by autograd through a torch cell loop."""
    w = {k: torch.from_numpy(np.asarray(v, np.float64)) for k, v in params.items()}
    seq = torch.from_numpy(np.asarray(x, np.float64))[0]  # batch_first: the first sequence, (T, in)
    hs = cfg.hidden_size
    states = [[] for _ in range(cfg.layers)]
    h = [torch.zeros(cfg.proj_size or hs, dtype=torch.float64, requires_grad=True) for _ in range(cfg.layers)]
    c = [torch.zeros(hs, dtype=torch.float64, requires_grad=True) for _ in range(cfg.layers)]
    for xt in seq:
        inp = xt
        for k in range(cfg.layers):
            a = w[f"weight_ih_l{k}"] @ inp + w[f"bias_ih_l{k}"] + w[f"weight_hh_l{k}"] @ h[k] + w[f"bias_hh_l{k}"]
            if cfg.cell is Cell.lstm:
                i, f, g, o = a.chunk(4)
                c_new = torch.sigmoid(f) * c[k] + torch.sigmoid(i) * torch.tanh(g)
                h[k] = torch.sigmoid(o) * torch.tanh(c_new)
                if cfg.proj_size:
                    h[k] = w[f"weight_hr_l{k}"] @ h[k]
                # The state's c coordinate: a copy that only later steps read. Its gradient holds h_t fixed
                # (c_t's path through h_t is in h_t's gradient), as for any two coordinates of one state.
                c[k] = c_new.clone()
                c[k].retain_grad()
            elif cfg.cell is Cell.gru:
                (xr, xz, xn), (hr, hz, hn) = (
                    (w[f"weight_ih_l{k}"] @ inp + w[f"bias_ih_l{k}"]).chunk(3),
                    (w[f"weight_hh_l{k}"] @ h[k] + w[f"bias_hh_l{k}"]).chunk(3),
                )
                r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
                h[k] = (1 - z) * torch.tanh(xn + r * hn) + z * h[k]
            else:
                h[k] = torch.tanh(a)
            h[k].retain_grad()
            states[k].append((h[k], c[k] if cfg.cell is Cell.lstm else None))
            inp = h[k]
    (torch.from_numpy(u) @ h[-1]).backward()
    return np.array(
        [
            [
                0.5 * math.log(sum(float(s.grad @ s.grad) for s in pair if s is not None and s.grad is not None))
                for pair in layer
            ]
            for layer in states
        ]
    )  # fmt: skip  (a last c feeds no later step: no gradient, 0)


@pytest.mark.parametrize(
    "kw",
    [{"cell": Cell.rnn}, {"cell": Cell.gru}, {"cell": Cell.lstm}, {"cell": Cell.lstm, "proj_size": 3}],
    ids=lambda kw: "-".join(str(getattr(v, "value", v)) for v in kw.values()),
)
def test_grad_log_norm_agrees_with_torch_autograd(kw):
    """Every layer's total gradient (through later steps and the layers above), (h, c) for an LSTM."""
    cfg, params, x, ref = job(
        hidden_size=6, input_size=4, timesteps=15, layers=3, grad_flow=True, init=Init.normal, init_gain=1.2, **kw
    )
    _, _, grads = dyn.dynamics_columns(cfg, params, x, ref)
    want = torch_state_grads(cfg, params, x, dyn.unit_vector(cfg))
    got = grads.pivot(index="layer", columns="timestep", values="grad_log_norm").to_numpy()
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-10)
    assert got[0, -1] > -np.inf  # the bottom layer's last state reaches the loss through the layers above


# --- an LSTM's state is (h, c) ----------------------------------------------------------------------------


def test_lstm_spectrum_uses_the_h_c_state():
    """2H exponents exist and sum to the mean ln|det J_t| (exact); the h-only Jacobian (c held fixed, as a
    public script does) gives a different, far more negative spectrum."""
    hs = 6
    cfg, params, x, ref = job(
        cell=Cell.lstm, hidden_size=hs, input_size=hs, timesteps=400, init=Init.normal, init_gain=2.0,
        lyapunov_k=2 * hs, lyapunov_warmup=100,
    )  # fmt: skip
    dyn.check(cfg)  # 2H is allowed ...
    with pytest.raises(ConfigError, match=rf"lyapunov_k={2 * hs + 1}: at most the state size {2 * hs}"):
        dyn.check(dataclasses.replace(cfg, lyapunov_k=2 * hs + 1))  # ... 2H + 1 is not
    row, lyap, _ = dyn.dynamics_columns(cfg, params, x, ref)
    assert len(lyap) == 2 * hs and lyap.exponent.is_monotonic_decreasing
    (sys,) = jac.systems(cfg, params, x, ref)
    co = jac.coefficients(sys, 0, sys.steps)
    log_dets = [np.linalg.slogdet(formed(sys, jac.at(co, t)))[1] for t in range(100, sys.steps)]
    assert row["lyap_sum"] == pytest.approx(np.mean(log_dets), abs=1e-9)

    def h_only(t):
        step = jac.at(co, t)
        return lambda v: jac.jvp(sys, step, [(v, np.zeros(v.shape[:-1] + (hs,)))])[0][0]

    frame = np.linalg.qr(np.random.default_rng(0).standard_normal((hs, hs)))[0].T
    wrong = dyn.lyapunov_qr([h_only(t) for t in range(sys.steps)], frame, 100)
    assert wrong[0] < row["lyap_max"] - 0.2


# --- directions, batch, columns ---------------------------------------------------------------------------


def test_bidirectional_reverse_direction_is_the_time_reversed_forward_network():
    kw = {"cell": Cell.gru, "hidden_size": 8, "input_size": 3, "timesteps": 60, "lyapunov_k": 3, "grad_flow": True}
    kw |= {"lyapunov_warmup": 10, "init": Init.normal, "init_gain": 2.5, "dtype": Dtype.float64}
    cfg, params, x, ref = job(bidirectional=True, **kw)
    row, lyap, grads = dyn.dynamics_columns(cfg, params, x, ref)

    def alone(direction: str):
        """One direction as layer 0 of a unidirectional network (the reverse one reading the input reversed)."""
        one = RunConfig(backend="numpy", **kw)
        reverse = direction == "reverse"
        p1 = {k.replace("_reverse", ""): v for k, v in params.items() if k.endswith("_reverse") == reverse}
        x1 = x[:, ::-1] if reverse else x
        ref1 = reference(one, p1, x1)
        return dyn.dynamics_columns(one, p1, x1, ref1)[:2] + (jac.systems(one, p1, x1, ref1)[0],)

    fwd, rev = alone("forward"), alone("reverse")
    for name, (_, lyap1, _) in {"forward": fwd, "reverse": rev}.items():
        np.testing.assert_allclose(lyap[lyap.direction == name].exponent, lyap1.exponent, rtol=1e-12)
    assert fwd[0]["lyap_max"] != pytest.approx(rev[0]["lyap_max"], abs=1e-3)  # two different systems
    # the row: both directions as one block-diagonal system
    joint = np.sort(np.concatenate([fwd[1].exponent, rev[1].exponent]))[::-1][:3]
    assert row["lyap_max"] == pytest.approx(joint[0]) and row["lyap_sum"] == pytest.approx(joint.sum())
    assert row["jac_sigma_max_max"] == pytest.approx(max(fwd[0]["jac_sigma_max_max"], rev[0]["jac_sigma_max_max"]))
    # gradient flow: u split across the directions; the reverse direction's last state is at timestep 0
    assert set(grads.direction) == {"forward", "reverse"} and len(grads) == 2 * 60
    u = dyn.unit_vector(cfg)
    for name, sys1, part in (("forward", fwd[2], u[:8]), ("reverse", rev[2], u[8:])):
        got = grads[grads.direction == name].sort_values("timestep").grad_log_norm.to_numpy()
        want = dyn.grad_log_norms(sys1, part)[0]  # in processing order
        np.testing.assert_allclose(got, want[::-1] if name == "reverse" else want, rtol=1e-12)
    assert grads[(grads.direction == "reverse") & (grads.timestep == 0)].grad_log_norm.item() == pytest.approx(
        math.log(np.linalg.norm(u[8:]))
    )
    top = [grads[grads.direction == n].sort_values("timestep").grad_log_norm.to_numpy() for n in ("forward", "reverse")]
    both = 0.5 * np.log(np.exp(2 * top[0][::-1]) + np.exp(2 * top[1]))  # by distance to each direction's end
    assert row["grad_norm_log_slope"] == pytest.approx(np.polyfit(np.arange(60), both, 1)[0], rel=1e-10)


def test_only_the_first_sequence_of_the_batch_counts():
    cfg, params, x, ref = job(
        cell=Cell.lstm, hidden_size=6, batch_size=3, timesteps=30, lyapunov_k=2, lyapunov_warmup=5, grad_flow=True
    )
    row, lyap, grads = dyn.dynamics_columns(cfg, params, x, ref)
    x2 = x.copy()
    x2[1:] = 5.0  # the other sequences changed beyond recognition
    row2, lyap2, grads2 = dyn.dynamics_columns(cfg, params, x2, reference(cfg, params, x2))
    assert row == row2 and lyap.equals(lyap2) and grads.equals(grads2)


def test_columns_and_tables_when_off_or_partly_on():
    cfg, params, x, ref = job(hidden_size=4, timesteps=20)
    row, lyap, grads = dyn.dynamics_columns(cfg, params, x, ref)
    assert row == {} and lyap.empty and grads.empty
    cfg, params, x, ref = job(hidden_size=4, timesteps=20, lyapunov_k=2, lyapunov_warmup=5)
    row, lyap, grads = dyn.dynamics_columns(cfg, params, x, ref)
    assert list(row) == ["lyap_max", "lyap_sum", "lyap_dim", "jac_sigma_max_mean", "jac_sigma_max_max"]
    assert lyap["index"].tolist() == [0, 1] and grads.empty
    cfg, params, x, ref = job(hidden_size=4, timesteps=20, grad_flow=True, layers=2)
    row, lyap, grads = dyn.dynamics_columns(cfg, params, x, ref)
    assert list(row) == ["grad_norm_log_slope"] and lyap.empty
    assert list(grads.columns) == ["layer", "direction", "timestep", "grad_log_norm"] and len(grads) == 2 * 20


def test_a_diverged_trajectory_gives_nan_columns():
    cfg, params, x, ref = job(
        nonlinearity=Nonlinearity.relu, hidden_size=8, timesteps=400, init=Init.uniform01, init_gain=50.0,
        lyapunov_k=2, grad_flow=True, dtype=Dtype.float64,
    )  # fmt: skip
    assert not np.isfinite(ref.output).all()
    row, lyap, grads = dyn.dynamics_columns(cfg, params, x, ref)
    assert row and all(math.isnan(v) for v in row.values()) and lyap.empty and grads.empty


# --- the largest singular value of each step --------------------------------------------------------------


@pytest.mark.parametrize(
    "kw",
    [
        {"cell": Cell.rnn, "init_gain": 1.0},
        {"cell": Cell.rnn, "init": Init.uniform01, "input_dist": InputDist.uniform01, "input_scale": 1.0},  # 1e-200
        {"cell": Cell.gru, "init_gain": 0.5},  # slow: many singular values near the top
        {"cell": Cell.lstm, "init_gain": 2.0},
        {"cell": Cell.lstm, "init_gain": 1.0, "layers": 2},
    ],
    ids=lambda kw: "-".join(str(getattr(v, "value", v)) for v in kw.values()),
)
def test_sigma_max_against_the_svd(kw):
    kw = {"hidden_size": 72, "input_size": 72, "timesteps": 40, "init": Init.normal, "input_scale": 0.1} | kw
    sys = one_system(**kw)
    assert sys.size > dyn.LANCZOS_MAX  # an estimate, not the exhausted Krylov space
    got = dyn.sigma_max(sys, 28, seed=0)
    co = jac.coefficients(sys, 28, sys.steps)
    want = np.array([np.linalg.norm(formed(sys, jac.at(co, j)), 2) for j in range(sys.steps - 28)])
    assert want.min() > 0
    np.testing.assert_allclose(got, want, rtol=1e-5)
    assert np.all(got <= want * (1 + 1e-12))  # a lower bound


# --- the cost guard and refusals ---------------------------------------------------------------------------


def test_cost_guard_refuses_hours_and_names_the_sizes():
    big = RunConfig(cell=Cell.lstm, hidden_size=2048, timesteps=100_000, lyapunov_k=256)
    assert dyn.estimate_seconds(big) > dyn.MAX_SECONDS
    with pytest.raises(ConfigError) as err:
        dyn.check(big)
    msg = str(err.value)
    assert msg.startswith("lyapunov_k=256: dynamics would take about") and "\n" not in msg
    assert all(s in msg for s in ("hidden_size=2048", "timesteps=100000", "lyapunov_k=256", "layers=1"))
    with pytest.raises(ConfigError, match=r"^grad_flow=True: dynamics would take"):
        dyn.check(RunConfig(hidden_size=8192, layers=8, timesteps=1_000_000, grad_flow=True))


def test_cost_estimate_scales_and_passes_the_preset(cfg_of):
    for cell in (Cell.rnn, Cell.lstm, Cell.gru):  # the preset's cells; the linear cells' exponents are exact
        preset = cfg_of("+experiment=edge_of_chaos", f"cell={cell.value}")
        assert (preset.lyapunov_k, preset.hidden_size, preset.timesteps) == (64, 256, 1000)
        dyn.check(preset)
        assert dyn.estimate_seconds(preset) < 60  # measured here: 5-13 s a job
    base = RunConfig(hidden_size=256, input_size=256, timesteps=1000, lyapunov_k=64, grad_flow=True)
    assert dyn.estimate_flops(RunConfig()) == 0 and dyn.estimate_seconds(RunConfig()) == 0
    longer = dataclasses.replace(base, timesteps=2000)
    assert dyn.estimate_flops(longer) == pytest.approx(2 * dyn.estimate_flops(base))
    assert dyn.estimate_flops(dataclasses.replace(base, lyapunov_k=128)) > dyn.estimate_flops(base)
    assert dyn.estimate_flops(dataclasses.replace(base, bidirectional=True)) == 2 * dyn.estimate_flops(base)


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"bidirectional": True, "layers": 2, "lyapunov_k": 1}, r"^lyapunov_k=1: needs a causal state.*layers=1"),
        ({"bidirectional": True, "layers": 3, "grad_flow": True}, r"^grad_flow=True: needs a causal state"),
        ({"lyapunov_k": 9, "hidden_size": 8}, r"^lyapunov_k=9: at most the state size 8 \(layers x h\)"),
        ({"lyapunov_k": 17, "hidden_size": 8, "cell": Cell.lstm}, r"at most the state size 16 \(layers x \(h, c\)\)"),
        ({"lyapunov_k": 1, "timesteps": 10}, r"^lyapunov_warmup=200: must be < timesteps \(10\)"),
    ],
)
def test_undefined_dynamics_are_refused_with_one_line(kw, match):
    with pytest.raises(ConfigError, match=match):
        dyn.check(RunConfig(**kw))


def test_warmup_zero_and_grad_flow_alone_need_no_warmup():
    dyn.check(RunConfig(lyapunov_k=1, lyapunov_warmup=0, timesteps=10))
    dyn.check(RunConfig(grad_flow=True, timesteps=10))  # warm-up concerns the exponents only


@pytest.mark.slow
def test_exact_and_chaos_checks_through_the_cli(tmp_path):
    """The issue's checks as a user runs them: one sweep of a tanh RNN, H=128, T=2000, zero and 0.1 x N(0,1) input."""
    import pandas as pd

    from conftest import make_config, run_cli

    gains = [0.5, 0.9, 1.3, 2.0]
    base = ["backend=numpy", "dtype=float64", "init=normal", "hidden_size=128", "input_size=128", "timesteps=2000",
            "batch_size=1", "input_scale=0.1", "lyapunov_k=1", "grad_flow=true", "timing=quick"]  # fmt: skip
    sweep = tmp_path / "sweep"
    args = [
        "-m",
        *base,
        f"init_gain={','.join(map(str, gains))}",
        "input_dist=zeros,normal",
        f"hydra.sweep.dir={sweep}",
    ]
    done = run_cli(args, tmp_path)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    table = pd.read_csv(sweep / "results.csv")
    for _, row in table.iterrows():
        cfg = make_config(*[a for a in base if not a.startswith("timing")], f"init_gain={row.init_gain}")
        ln_rho = math.log(max(abs(np.linalg.eigvals(make_params(cfg)["weight_hh_l0"]))))
        if row.input_dist == "zeros":  # at the fixed point 0 the one-step Jacobian is W_hh: exact
            assert abs(row.lyap_max - ln_rho) < 0.01, (row.init_gain, row.lyap_max, ln_rho)
            assert abs(row.grad_norm_log_slope - ln_rho) < 0.02, (row.init_gain, row.grad_norm_log_slope, ln_rho)
        elif row.init_gain == 0.5:
            assert row.lyap_max < -0.3
        elif row.init_gain == 2.0:
            assert row.lyap_max > 0.05  # input suppresses chaos, but not at gain 2
    steps = pd.read_csv(sweep / "steps.csv")
    assert steps["grad_log_norm"].notna().all() and np.isfinite(steps["grad_log_norm"]).all()
    lyapunov = pd.read_csv(sweep / "lyapunov.csv")
    assert len(lyapunov) == len(table) and set(lyapunov.columns) == {"job_num", "direction", "index", "exponent"}
