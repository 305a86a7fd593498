"""JAX: the recurrence as ``jax.lax.scan`` over one step, input projection hoisted, compiled by XLA.

``forward(cfg, params, x)`` is a pure function of the parameters (PyTorch's names and layout) and
the input, so ``jax.grad`` can differentiate it as it stands. ``prepare`` compiles it ahead of time
(``jit(...).lower(...).compile()``: ``compile_s``, never in the timings) for the job's device and
dtype; float64 runs with x64 enabled for that job alone (``jax.enable_x64``, held around every call).

Threads: XLA's CPU client sizes its compute pools once, when the client is created, from the
``PJRT_NPROC`` environment variable (else one thread per core); no XLA flag does it in jax 0.10
(``--xla_cpu_multi_thread_eigen=false`` still leaves two busy threads here). So the first job to
use JAX in a process sets ``PJRT_NPROC=threads`` before the client exists, and a later job asking
for another count is refused: the pool cannot change. ``engine_threads`` is the pool's size as
counted from its threads (``tf_XLAEigen``), not the number asked for.

On a CPU each call computes on the calling thread where XLA's pool would not split the work (the
client is made with ``jax_cpu_enable_async_dispatch`` off), and waits for its own result otherwise:
with asynchronous dispatch the Python thread would prepare the next call while the pool computes
this one, a second busy core for ``threads=1``, and every call would pay two thread wake-ups (33
against 20 us for a tiny forward here). torch and ONNX Runtime compute on the calling thread too.
On a GPU calls queue, as torch's do, and ``sync`` waits for the last one before every clock read
(a device runs them in order).
"""

from __future__ import annotations

import functools
import os
import time
from contextlib import AbstractContextManager

import jax
import jax.numpy as jnp
import jaxlib
import numpy as np

from rnnexp.backends import Backend, Outputs, Prepared, PreparedTraining
from rnnexp.config import Cell, ConfigError, Device, Dtype, Nonlinearity, RunConfig
from rnnexp.params import directions, suffix

__all__ = ["check", "forward", "peak_bytes", "pin_threads", "pool_threads", "prepare"]

BACKEND = Backend(
    name="jax",
    extra="jax",
    packages=("jax", "jaxlib"),
    devices=("cpu", "cuda"),
    trains=True,
    linear_cells=True,
    peak_mem={"cpu": "xla_memory_analysis", "cuda": "xla_memory_analysis"},  # ``peak_bytes``
    # XLA's compilation holds about one more copy of the weights while it prepares. Measured on H=1024, B=64,
    # T=100, 2 bidirectional layers, LSTM, float32: the peak resident growth of prepare plus two calls was
    # 763 MiB, against 870 MiB estimated for its share (its copy and its phase).
    weight_copies=1,
    columns=("engine_threads", "jax_version", "jaxlib_version"),
)

POOL_THREAD_NAME = "tf_XLAEigen"  # XLA's intra-op pool, one thread each, named by tsl's ThreadPool
# float32 matmuls at full precision: a GPU would otherwise use TF32 and miss float32 parity.
PRECISION = jax.lax.Precision.HIGHEST


_pinned: list[int] = []  # the count pin_threads gave XLA: the answer where /proc cannot be read


def pool_threads() -> int:
    """Threads in this process's XLA CPU compute pool (0 before JAX's CPU client exists)."""
    if not os.path.isdir("/proc/self/task"):  # not Linux: trust the pin
        return _pinned[0] if _pinned else 0
    count = 0
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/comm") as f:
                count += f.read().strip() == POOL_THREAD_NAME
        except OSError:  # the thread ended while we looked
            continue
    return count


def check(cfg: RunConfig) -> None:
    pool = pool_threads()
    if pool and pool != cfg.threads:
        allowed = f"this process's XLA CPU pool has {pool} threads, fixed when JAX first ran here (use threads={pool})"
        raise ConfigError("threads", cfg.threads, allowed)


def pin_threads(n: int) -> int:
    """Create JAX's CPU client with an ``n``-thread pool, unless it exists; return the pool's size.

    The client also runs a computation that its pool would not split on the calling thread
    (``jax_cpu_enable_async_dispatch`` off while it is created, which is when it is read).
    """
    if not pool_threads():
        before, dispatch = os.environ.get("PJRT_NPROC"), jax.config.values["jax_cpu_enable_async_dispatch"]
        os.environ["PJRT_NPROC"] = str(n)  # read once, by the client created below
        jax.config.update("jax_cpu_enable_async_dispatch", False)
        try:
            jax.devices("cpu")
            _pinned[:] = [n]
        finally:  # the processes this one starts, and JAX's settings, are as they were
            jax.config.update("jax_cpu_enable_async_dispatch", dispatch)
            if before is None:
                del os.environ["PJRT_NPROC"]
            else:
                os.environ["PJRT_NPROC"] = before
    return pool_threads()


def peak_bytes(call, device: str) -> int | None:
    """Temporaries plus outputs of one execution, from the compiled executable's own buffer assignment
    (``xla_memory_analysis`` in rnnexp.memory); ``prepare`` hangs the executable's ``memory_analysis`` on its call."""
    analysis = getattr(call, "memory_analysis", None)
    stats = analysis() if analysis is not None else None
    if stats is None:  # a call that gives no executable, or a jaxlib that cannot analyse it
        return None
    return max(0, stats.temp_size_in_bytes + stats.output_size_in_bytes - stats.alias_size_in_bytes)


def _device(cfg: RunConfig) -> jax.Device:
    gpus = [d for d in jax.devices() if d.platform == "gpu"]
    if cfg.device is Device.cuda and not gpus:
        raise ConfigError("device", "cuda", "JAX finds no GPU here (install jax[cuda12]; allowed: cpu, auto)")
    if cfg.device is Device.cpu or not gpus:
        return jax.devices("cpu")[0]
    return gpus[0]


def x64(cfg: RunConfig) -> AbstractContextManager:
    """x64 on for a float64 job, off for a float32 one (whatever JAX_ENABLE_X64 says)."""
    return jax.enable_x64(cfg.dtype is Dtype.float64)


def prepare(cfg: RunConfig, params: dict[str, np.ndarray], x: np.ndarray) -> Prepared:
    threads = pin_threads(cfg.threads)
    device = _device(cfg)
    with x64(cfg):
        w, xs = jax.device_put((params, x), device)
        start = time.perf_counter()
        compiled = jax.jit(functools.partial(forward, cfg)).lower(w, xs).compile()
        compile_s = time.perf_counter() - start
    call, sync = _caller(compiled, w, xs, device.platform == "cpu")
    # XLA's buffer assignment for one call: what rnnexp.memory reports as the peak (see there).
    call.memory_analysis = compiled.memory_analysis
    return Prepared(
        call=call,
        fetch=fetch,
        sync=sync,
        context=functools.partial(x64, cfg),
        device="cuda" if device.platform == "gpu" else "cpu",
        compile_s=compile_s,
        extra={"engine_threads": threads, "jax_version": jax.__version__, "jaxlib_version": jaxlib.__version__},
    )


def _caller(compiled, w, xs, blocking: bool):
    """(call, sync): on a CPU each call waits for its result; on a GPU calls queue and sync waits for the last."""
    if blocking:
        return lambda: jax.block_until_ready(compiled(w, xs)), lambda: None
    last: list = []

    def call():
        last[:] = [compiled(w, xs)]
        return last[0]

    def sync() -> None:
        if last:
            jax.block_until_ready(last[0])

    return call, sync


def fetch(result) -> Outputs:
    output, h_n, c_n = result
    return Outputs(np.asarray(output), np.asarray(h_n), None if c_n is None else np.asarray(c_n))


# The step of each cell, PyTorch's gate order and semantics. ``xw`` is x_t W_ih^T + b_ih, hoisted.


def _rnn_step(cfg: RunConfig, w: dict, carry, xw):
    h, c = carry
    a = xw + _dot(h, w["weight_hh"]) + w.get("bias_hh", 0)
    h = jax.nn.relu(a) if cfg.nonlinearity is Nonlinearity.relu else jnp.tanh(a)
    return (h, c), h


def _lstm_step(cfg: RunConfig, w: dict, carry, xw):
    h, c = carry
    i, f, g, o = jnp.split(xw + _dot(h, w["weight_hh"]) + w.get("bias_hh", 0), 4, axis=-1)
    c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
    h = jax.nn.sigmoid(o) * jnp.tanh(c)
    if "weight_hr" in w:
        h = _dot(h, w["weight_hr"])
    return (h, c), h


def _gru_step(cfg: RunConfig, w: dict, carry, xw):
    h, c = carry
    x_r, x_z, x_n = jnp.split(xw, 3, axis=-1)
    h_r, h_z, h_n = jnp.split(_dot(h, w["weight_hh"]) + w.get("bias_hh", 0), 3, axis=-1)
    r = jax.nn.sigmoid(x_r + h_r)
    z = jax.nn.sigmoid(x_z + h_z)
    n = jnp.tanh(x_n + r * h_n)
    h = n + z * (h - n)
    return (h, c), h


_STEPS = {Cell.rnn: _rnn_step, Cell.lstm: _lstm_step, Cell.gru: _gru_step}
_NAMES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr")  # one layer and direction's, sans suffix


def _dot(a: jax.Array, weight: jax.Array) -> jax.Array:
    """a @ weight^T, weight in PyTorch's (out_features, in_features) layout."""
    return jnp.matmul(a, weight.T, precision=PRECISION)


def _direction(cfg: RunConfig, w: dict, seq: jax.Array, reverse: bool):
    """One layer and direction over the time-major ``seq``: outputs (T, B, H_out), final h and c."""
    xw = _dot(seq, w["weight_ih"]) + w.get("bias_ih", 0)  # every timestep in one product
    batch = seq.shape[1]
    h0 = jnp.zeros((batch, w["weight_hh"].shape[1]), seq.dtype)
    c0 = jnp.zeros((batch, cfg.hidden_size), seq.dtype)
    (h, c), ys = jax.lax.scan(functools.partial(_STEPS[cfg.cell], cfg, w), (h0, c0), xw, reverse=reverse)
    return ys, h, c


def forward(cfg: RunConfig, params: dict[str, jax.Array], x: jax.Array):
    """(output, h_n, c_n or None) in nn.RNN/LSTM/GRU's layout: a pure function, ready for ``jax.grad``."""
    if cfg.cell.value in ("mingru", "minlstm", "lru", "s6"):  # linear in the state: rnnexp.linear's scans
        from rnnexp.linear import jax_backend

        return jax_backend.forward(cfg, params, x)
    seq = jnp.swapaxes(x, 0, 1) if cfg.batch_first else x
    h_n, c_n = [], []
    for layer in range(cfg.layers):
        outs = []
        for d in range(directions(cfg)):
            s = suffix(layer, d)
            w = {name: params[name + s] for name in _NAMES if name + s in params}
            ys, h, c = _direction(cfg, w, seq, reverse=d == 1)
            outs.append(ys)
            h_n.append(h)
            c_n.append(c)
        seq = jnp.concatenate(outs, axis=-1) if len(outs) > 1 else outs[0]
    output = jnp.swapaxes(seq, 0, 1) if cfg.batch_first else seq
    return output, jnp.stack(h_n), jnp.stack(c_n) if cfg.cell is Cell.lstm else None


def prepare_training(
    cfg: RunConfig,
    params: dict[str, np.ndarray],
    x: np.ndarray,
    d_output: np.ndarray,
    d_h_n: np.ndarray,
    d_c_n: np.ndarray | None = None,
) -> PreparedTraining:
    """mode=training: ``jax.grad`` through the scanned forward, a second automatic differentiation.

    The step is ``jax.grad`` of L = sum(output * d_output) + sum(h_n * d_h_n) (+ c_n) with respect to the
    parameters and the input, the outputs kept as its aux. The recording forward is ``jax.vjp`` (its
    residuals returned from the compiled function: a vjp function is a pytree), and each backward phase a
    compiled call of it that returns only its own gradients, so XLA drops the other's products (as
    ``torch.autograd.grad`` with only those inputs does). Every function is compiled ahead of time in
    here (``compile_s``), never in the timings.
    """
    threads = pin_threads(cfg.threads)
    device = _device(cfg)
    model = functools.partial(forward, cfg)
    with x64(cfg):
        w, xs, cot = jax.device_put((params, x, (d_output, d_h_n, d_c_n)), device)

        def loss(w, xs):
            outs = model(w, xs)
            return sum(jnp.vdot(o, c) for o, c in zip(outs, cot, strict=True) if o is not None), outs

        start = time.perf_counter()
        step = jax.jit(jax.grad(loss, argnums=(0, 1), has_aux=True)).lower(w, xs).compile()
        record = jax.jit(lambda w, xs: jax.vjp(model, w, xs)).lower(w, xs).compile()
        recording = record(w, xs)
        data = jax.jit(lambda rec: rec[1](cot)[1]).lower(recording).compile()
        weights = jax.jit(lambda rec: rec[1](cot)[0]).lower(recording).compile()
        compile_s = time.perf_counter() - start
    blocking = device.platform == "cpu"
    run = (lambda f, *a: jax.block_until_ready(f(*a))) if blocking else (lambda f, *a: f(*a))
    last: list = []

    def keep(result):
        last[:] = [result]
        return result

    def sync() -> None:
        if last and not blocking:
            jax.block_until_ready(last[0])

    def fetch_step(result) -> tuple[Outputs, dict[str, np.ndarray]]:
        (dw, dx), outs = result
        return fetch(outs), {"x": np.asarray(dx), **{k: np.asarray(v) for k, v in dw.items()}}

    return PreparedTraining(
        step=lambda: keep(run(step, w, xs)),
        forward=lambda: keep(run(record, w, xs)),
        backward_data=lambda rec: keep({"x": run(data, rec)}),
        backward_weights=lambda rec: keep(run(weights, rec)),
        fetch=fetch_step,
        fetch_grads=lambda grads: {k: np.asarray(v) for k, v in grads.items()},
        sync=sync,
        context=functools.partial(x64, cfg),
        device="cuda" if device.platform == "gpu" else "cpu",
        compile_s=compile_s,
        extra={"engine_threads": threads, "jax_version": jax.__version__, "jaxlib_version": jaxlib.__version__},
    )
