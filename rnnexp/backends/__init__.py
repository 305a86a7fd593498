"""Backend registry: a name maps to a module, imported only when a job asks for it.

A backend module defines ``prepare(cfg, params, x) -> Prepared`` and may define
``check(cfg)``, which raises ConfigError for a configuration it cannot run. Adding a
backend is one new file and one line in ``_MODULES``.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import numpy as np

_MODULES = {
    "numpy": "rnnexp.backends.numpy_ref",
    "numpy_naive": "rnnexp.backends.numpy_naive",
    "torch": "rnnexp.backends.torch_nn",
    "torch_cell": "rnnexp.backends.torch_cell",
    "torch_compile": "rnnexp.backends.torch_compile",
    "onnxruntime": "rnnexp.backends.onnxrt",
    "jax": "rnnexp.backends.jax_scan",
}
# Backends whose framework is an optional extra: name -> (extra, the top-level packages it installs).
_EXTRAS = {"onnxruntime": ("onnx", ("onnxruntime", "onnx")), "jax": ("jax", ("jax", "jaxlib"))}


@dataclass
class Outputs:
    """What every backend returns, as NumPy arrays: the output sequence and the final states."""

    output: np.ndarray
    h_n: np.ndarray
    c_n: np.ndarray | None = None
    # Every layer's output sequence, time-major (T, B, D*H_out); only the NumPy reference fills it.
    layers: list[np.ndarray] | None = None


def noop() -> None:
    """A backend's default ``sync`` (nothing to wait for on the CPU), and the timer's."""
    return None


@dataclass
class Prepared:
    """A forward pass ready to time: ``call`` runs it, ``fetch`` turns its result into Outputs."""

    call: Callable[[], Any]
    fetch: Callable[[Any], Outputs]
    sync: Callable[[], None] = noop  # waits for the device before each clock read
    context: Callable[[], AbstractContextManager] = contextlib.nullcontext  # held around every call
    device: str = "cpu"
    compile_s: float | None = None  # one-off compile time, never part of the timing
    extra: dict[str, Any] = field(default_factory=dict)  # backend-specific row columns


@dataclass
class PreparedTraining:
    """A training step ready to time. A recording is whatever ``forward`` returns; backends choose."""

    step: Callable[[], Any]  # recording forward + whole backward; ``fetch`` reads its result
    forward: Callable[[], Any]  # the recording forward alone
    backward_data: Callable[[Any], Any]  # recording -> dL/dx alone; callable again on the same recording
    backward_weights: Callable[[Any], Any]  # recording -> dL/d(every parameter) alone; likewise
    fetch: Callable[[Any], tuple[Outputs, dict[str, np.ndarray]]]  # step's result -> outputs, gradients
    fetch_grads: Callable[[Any], dict[str, np.ndarray]]  # a backward phase's result -> gradients
    sync: Callable[[], None] = noop
    context: Callable[[], AbstractContextManager] = contextlib.nullcontext
    device: str = "cpu"
    compile_s: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def names() -> list[str]:
    return list(_MODULES)


def load(name: str) -> ModuleType:
    """The backend's module; ConfigError naming the pip command when its framework's extra is not installed."""
    try:
        return importlib.import_module(_MODULES[name])
    except ModuleNotFoundError as exc:
        extra, packages = _EXTRAS.get(name, ("", ()))
        if (exc.name or "").split(".")[0] not in packages:
            raise  # the backend module itself, or a dependency no extra provides: a bug, not a setup step
        from rnnexp.config import ConfigError

        raise ConfigError("backend", name, f"needs the {extra} extra: pip install 'rnnexp[{extra}]'") from None


def check_supported(cfg) -> None:
    """Let the chosen backend refuse a configuration before any work is done.

    A backend trains only if its module defines ``prepare_training``; ``mode=training`` on any
    other is refused with one line.
    """
    from rnnexp.config import ConfigError, Mode

    module = load(cfg.backend)
    if cfg.mode is Mode.training and not hasattr(module, "prepare_training"):
        trainers = ", ".join(n for n in names() if n != cfg.backend and _can_train(n))
        raise ConfigError("mode", "training", f"backend={cfg.backend} cannot train (backends that can: {trainers})")
    check = getattr(module, "check", None)
    if check is not None:
        check(cfg)


def _can_train(name: str) -> bool:
    from rnnexp.config import ConfigError

    try:
        return hasattr(load(name), "prepare_training")
    except (ImportError, ConfigError):  # an engine whose extra is not installed
        return False
