"""ONNX Runtime: the job's weights in an ONNX graph of ONNX's own RNN/LSTM/GRU operators, on the CPU provider.

Why build the graph rather than export ``nn.RNN`` with ``torch.onnx``: the exporter of torch 2.x
goes through ``torch.export`` and needs ``onnxscript`` (another dependency) to emit what is, in the
end, these same three operators; building them here costs ~60 lines, needs no torch, and makes
every layout decision visible and tested: the gate order (PyTorch's LSTM i, f, g, o is ONNX's
i, o, f, c; its GRU r, z, n is ONNX's z, r, h), GRU's ``linear_before_reset=1`` (PyTorch applies
the reset gate after the recurrent product, bias included), a bidirectional layer as the
operator's ``direction``, and layers as a chain: each operator's Y (T, D, B, H) transposed and
reshaped to (T, B, D*H) for the next. Biases are W_b and R_b side by side, zero when ``bias=false``.

What ONNX Runtime cannot run is declared in ``BACKEND`` and refused before any work: a projected LSTM
(the ONNX LSTM has no projection) and float64 (its CPU kernels implement the three operators for
float32 only: RNN has no double kernel, LSTM and GRU say "does not support double yet").

Session creation, graph optimisation included, is ``compile_s``. The session's intra-op pool has
``threads`` threads (``SessionOptions.intra_op_num_threads``, the calling thread among them); the
recorded ``engine_threads`` is read back from the session.
"""

from __future__ import annotations

import time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from rnnexp.backends import Backend, Outputs, Prepared
from rnnexp.config import Cell, Dtype, Nonlinearity, RunConfig
from rnnexp.params import directions, expected_c_n_shape, expected_h_n_shape, expected_output_shape, suffix

__all__ = ["build_model", "prepare"]

BACKEND = Backend(
    name="onnxruntime",
    extra="onnx",
    packages=("onnxruntime", "onnx"),
    dtypes=("float32",),
    projection=False,
    refusals={
        "device": "runs on ONNX Runtime's CPU provider",
        "proj_size": "ONNX's LSTM has no projection",
        "dtype": "its CPU RNN/LSTM/GRU kernels run float32 only",
    },
    # ONNX Runtime serves a run from its own arena, invisible to tracemalloc, and exposes neither its
    # size nor its peak: peak_mem_bytes stays empty rather than 0 (rnnexp.memory).
    peak_mem={"cpu": "unmeasured_onnxruntime_arena"},
    # While it prepares: the model proto, its serialised bytes, the session's initialisers (its LSTM/GRU
    # kernels prepack them). Measured on H=1024, B=64, T=100, 2 bidirectional layers, LSTM, float32: the
    # peak resident growth of prepare plus two calls was 843 MiB, against 1190 MiB estimated for its share.
    weight_copies=3,
    columns=("engine_threads", "onnxruntime_version", "onnx_version"),
)

OPSET = 14  # RNN/LSTM/GRU as in every opset since 7; 14 is the newest one ONNX Runtime 1.17 (the floor) runs
IR_VERSION = 8  # the IR that opset 14 shipped with, which ONNX Runtime 1.17 reads
_OPS = {Cell.rnn: "RNN", Cell.lstm: "LSTM", Cell.gru: "GRU"}
# PyTorch's gate blocks in ONNX's order: LSTM i, o, f, c from i, f, g, o; GRU z, r, h from r, z, n.
_GATE_BLOCKS = {Cell.rnn: (0,), Cell.lstm: (0, 3, 1, 2), Cell.gru: (1, 0, 2)}
_ELEM = {Dtype.float32: TensorProto.FLOAT, Dtype.float64: TensorProto.DOUBLE}


def _gates(cfg: RunConfig, a: np.ndarray) -> np.ndarray:
    """Rows of a PyTorch gate-stacked weight or bias, in ONNX's gate order."""
    h = cfg.hidden_size
    return np.concatenate([a[b * h : (b + 1) * h] for b in _GATE_BLOCKS[cfg.cell]])


def _layer_weights(cfg: RunConfig, params: dict[str, np.ndarray], layer: int) -> dict[str, np.ndarray]:
    """W (D, G*H, in), R (D, G*H, H) and B (D, 2*G*H) of one layer, both directions stacked."""
    w, r, b = [], [], []
    for d in range(directions(cfg)):
        s = suffix(layer, d)
        w.append(_gates(cfg, params[f"weight_ih{s}"]))
        r.append(_gates(cfg, params[f"weight_hh{s}"]))
        if cfg.bias:
            b.append(np.concatenate([_gates(cfg, params[f"bias_ih{s}"]), _gates(cfg, params[f"bias_hh{s}"])]))
    out = {"W": np.stack(w), "R": np.stack(r)}
    if b:
        out["B"] = np.stack(b)
    return out


def _layer_node(cfg: RunConfig, layer: int, inp: str, weights: list[str]) -> onnx.NodeProto:
    n_dir = directions(cfg)
    attrs = dict(hidden_size=cfg.hidden_size, direction="bidirectional" if n_dir == 2 else "forward")
    if cfg.cell is Cell.rnn:
        attrs["activations"] = ["Relu" if cfg.nonlinearity is Nonlinearity.relu else "Tanh"] * n_dir
    if cfg.cell is Cell.gru:
        attrs["linear_before_reset"] = 1
    outputs = [f"Y{layer}", f"Y_h{layer}"] + ([f"Y_c{layer}"] if cfg.cell is Cell.lstm else [])
    return helper.make_node(_OPS[cfg.cell], [inp, *weights], outputs, name=f"{_OPS[cfg.cell]}{layer}", **attrs)


def build_model(cfg: RunConfig, params: dict[str, np.ndarray]) -> onnx.ModelProto:
    """The forward as an ONNX model: input ``x`` in the job's layout; outputs ``output``, ``h_n`` (, ``c_n``)."""
    elem = _ELEM[cfg.dtype]
    inits = [numpy_helper.from_array(np.array([0, 0, -1], np.int64), "merge_directions")]  # (T, B, D, H) -> (T, B, D*H)
    nodes = []
    seq = "x"
    if cfg.batch_first:
        nodes.append(helper.make_node("Transpose", ["x"], ["x_tbi"], perm=[1, 0, 2]))
        seq = "x_tbi"
    for layer in range(cfg.layers):
        names = []
        for key, value in _layer_weights(cfg, params, layer).items():
            inits.append(numpy_helper.from_array(value, f"{key}{layer}"))
            names.append(f"{key}{layer}")
        nodes.append(_layer_node(cfg, layer, seq, names))
        nodes.append(helper.make_node("Transpose", [f"Y{layer}"], [f"Y{layer}_tbdh"], perm=[0, 2, 1, 3]))
        nodes.append(helper.make_node("Reshape", [f"Y{layer}_tbdh", "merge_directions"], [f"seq{layer}"]))
        seq = f"seq{layer}"
    if cfg.batch_first:
        nodes.append(helper.make_node("Transpose", [seq], ["output"], perm=[1, 0, 2]))
    else:
        nodes.append(helper.make_node("Identity", [seq], ["output"]))
    states = [("h_n", "Y_h", expected_h_n_shape(cfg))]
    if cfg.cell is Cell.lstm:
        states.append(("c_n", "Y_c", expected_c_n_shape(cfg)))
    for name, part, _ in states:
        nodes.append(helper.make_node("Concat", [f"{part}{layer}" for layer in range(cfg.layers)], [name], axis=0))
    graph = helper.make_graph(
        nodes,
        f"rnnexp_{cfg.cell.value}",
        [helper.make_tensor_value_info("x", elem, list(_input_shape(cfg)))],
        [helper.make_tensor_value_info("output", elem, list(expected_output_shape(cfg)))]
        + [helper.make_tensor_value_info(name, elem, list(shape)) for name, _, shape in states],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="rnnexp")
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return model


def _input_shape(cfg: RunConfig) -> tuple[int, int, int]:
    t, b = cfg.timesteps, cfg.batch_size
    return (b, t, cfg.input_size) if cfg.batch_first else (t, b, cfg.input_size)


def session_options(threads: int) -> ort.SessionOptions:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1  # sequential execution: the inter-op pool is never used
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3  # errors only: a refused run is the row's error, not a log line
    return opts


def prepare(cfg: RunConfig, params: dict[str, np.ndarray], x: np.ndarray) -> Prepared:
    model = build_model(cfg, params).SerializeToString()
    start = time.perf_counter()
    session = ort.InferenceSession(model, session_options(cfg.threads), providers=["CPUExecutionProvider"])
    compile_s = time.perf_counter() - start
    feed = {"x": np.ascontiguousarray(x)}
    return Prepared(
        call=lambda: session.run(None, feed),
        fetch=lambda out: Outputs(*out) if len(out) == 3 else Outputs(*out, None),
        compile_s=compile_s,
        extra={
            "engine_threads": session.get_session_options().intra_op_num_threads,
            "onnxruntime_version": ort.__version__,
            "onnx_version": onnx.__version__,
        },
    )
