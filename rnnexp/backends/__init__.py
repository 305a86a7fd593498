"""Backend registry: every backend's declaration, read without importing it; its module, imported when a job asks.

A backend is one module. It declares everything rnnexp knows about it besides its code as
``BACKEND = Backend(...)`` (name, extra, capabilities, how its memory is measured, its step cost,
the columns it adds), with literal arguments only: the registry reads that declaration from the
module's source (``declared``), as ``rnnexp list`` reads its docstring, so listing the backends,
refusing a configuration, estimating a job's memory or its length never import a framework. The
module itself is imported only by ``load``, when a job runs on it. It defines
``prepare(cfg, params, x) -> Prepared`` and may define ``check(cfg)`` (raises ConfigError for a
configuration its declaration cannot express), ``prepare_training`` (declared ``trains=True``),
``peak_bytes(call, device)`` (its ``peak_mem`` method), ``gemm_call(dtype, size)`` (declared
``gemm=True``) and ``limit_threads(n)`` (declared ``pins_threads=True``).

Adding a backend is one new file and one line in ``_MODULES`` (docs/adding-a-backend.md).
"""

from __future__ import annotations

import ast
import contextlib
import functools
import importlib
import importlib.util
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, fields
from types import ModuleType
from typing import Any

import numpy as np

# The registry: one line per backend, its module. The name and every other fact are the module's own.
_MODULES = (
    "rnnexp.backends.numpy_ref",
    "rnnexp.backends.numpy_naive",
    "rnnexp.backends.torch_nn",
    "rnnexp.backends.torch_cell",
    "rnnexp.backends.torch_compile",
    "rnnexp.backends.onnxrt",
    "rnnexp.backends.jax_scan",
)
DTYPES = ("float32", "float64")


@dataclass(frozen=True)
class Backend:
    """What a backend module declares about itself (``BACKEND = Backend(...)``, literal arguments only)."""

    name: str  # the value of the ``backend`` key
    # The pip extra that installs its framework ("" when rnnexp's own dependencies do), and the top-level
    # packages that the framework's import needs: one of them missing means the extra is not installed.
    extra: str = ""
    packages: tuple[str, ...] = ()
    # Capabilities. A configuration outside them is refused before any work (``check_supported``), with
    # ``refusals[key]`` (device, dtype, proj_size) saying why, where a generic line would not.
    dtypes: tuple[str, ...] = DTYPES
    devices: tuple[str, ...] = ("cpu",)  # "cuda" when it can run on a GPU (its ``check`` says whether one is here)
    projection: bool = True  # runs an LSTM's proj_size
    trains: bool = False  # defines prepare_training: mode=training
    linear_cells: bool = False  # runs the linear recurrences (rnnexp.linear)
    refusals: dict[str, str] = field(default_factory=dict)
    # How ``peak_mem_bytes`` is measured, by the device the forward ran on (``peak_mem_method``; the
    # methods are described in rnnexp.memory). "tracemalloc" is rnnexp.memory's own; any other is the
    # module's ``peak_bytes(call, device)``, and one starting "unmeasured" leaves the figure empty.
    peak_mem: dict[str, str] = field(default_factory=lambda: {"cpu": "tracemalloc"})
    # The resource guard's estimate (rnnexp.memory): weight copies its engine holds while it prepares,
    # and the bytes the peak measurement itself holds per step of each layer and direction.
    weight_copies: int = 0
    measure_bytes_per_step: int = 0
    # Fixed seconds per step of each layer and direction (Python and library calls) in the long-job estimate
    # (rnnexp.runner): 2-10 us for numpy and nn.* on this machine.
    step_cost_s: float = 1e-5
    gemm: bool = False  # its framework's GEMM is one of this machine's peak yardsticks (rnnexp.peak)
    reference: bool = False  # the backend ``rnnexp report`` measures speed-ups against by default (exactly one)
    pins_threads: bool = False  # its module's ``limit_threads(n)`` pins a pool threadpoolctl does not see
    columns: tuple[str, ...] = ()  # what it adds to the row (``Prepared.extra``), each declared in rnnexp.schema

    def __post_init__(self) -> None:  # a literal list is as good as a tuple
        for f in fields(self):
            if isinstance(getattr(self, f.name), list):
                object.__setattr__(self, f.name, tuple(getattr(self, f.name)))

    def peak_mem_method(self, device: str) -> str:
        """The method for a forward on ``device`` (its CPU method where it declares none for that device)."""
        return self.peak_mem.get(device, self.peak_mem["cpu"])


def _declaration_in(module: str) -> Backend:
    """``BACKEND = Backend(...)`` as the module's source declares it, without running the module.

    ModuleNotFoundError where there is no such module (a registry line that is a bug). A module
    installed without its source is imported instead: the same declaration, at its framework's price.
    """
    spec = importlib.util.find_spec(module)
    if spec is None:
        raise ModuleNotFoundError(f"No module named {module!r}", name=module)
    source = spec.loader.get_source(module) if spec.loader and hasattr(spec.loader, "get_source") else None
    if source is None:
        return importlib.import_module(module).BACKEND
    for node in ast.parse(source, spec.origin or module).body:
        if not (isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)):
            continue
        if [getattr(t, "id", None) for t in node.targets] != ["BACKEND"]:
            continue
        call = node.value
        if call.args or any(k.arg is None for k in call.keywords):
            raise TypeError(f"{module}: BACKEND = Backend(...) takes keyword arguments only")
        try:
            return Backend(**{k.arg: ast.literal_eval(k.value) for k in call.keywords})
        except ValueError as exc:
            raise TypeError(f"{module}: BACKEND = Backend(...) takes literal values only ({exc})") from None
    raise TypeError(f"{module} declares no BACKEND = Backend(...)")


@functools.cache
def _registry() -> dict[str, tuple[str, Backend]]:
    """name -> (module, declaration), in ``_MODULES`` order."""
    found: dict[str, tuple[str, Backend]] = {}
    for module in _MODULES:
        backend = _declaration_in(module)
        if backend.name in found:
            raise TypeError(f"{module} declares backend {backend.name!r}, as {found[backend.name][0]} does")
        found[backend.name] = (module, backend)
    references = [n for n, (_, b) in found.items() if b.reference]
    if len(references) != 1:
        raise TypeError(f"exactly one backend declares reference=True, not {references}")
    return found


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
    return list(_registry())


def declared(name: str) -> Backend:
    """What backend ``name`` declares (KeyError for a name no module declares)."""
    return _registry()[name][1]


def module_of(name: str) -> str:
    return _registry()[name][0]


def installed(name: str) -> bool:
    """Whether every package the backend's framework needs is installed (nothing is imported)."""
    return all(importlib.util.find_spec(p) is not None for p in declared(name).packages)


def reference() -> str:
    """The backend speed-ups are measured against by default, and the one whose measurement is plain tracemalloc."""
    return next(n for n, (_, b) in _registry().items() if b.reference)


def gemm_yardsticks() -> list[str]:
    """The installed backends whose framework's GEMM is one of this machine's peak yardsticks (rnnexp.peak)."""
    return [n for n in names() if declared(n).gemm and installed(n)]


def load(name: str) -> ModuleType:
    """The backend's module; ConfigError naming the pip command when its framework's extra is not installed."""
    backend = declared(name)
    try:
        return importlib.import_module(module_of(name))
    except ModuleNotFoundError as exc:
        if not backend.extra or (exc.name or "").split(".")[0] not in backend.packages:
            raise  # the backend module itself, or a dependency no extra provides: a bug, not a setup step
        from rnnexp.config import ConfigError

        extra = backend.extra
        raise ConfigError("backend", name, f"needs the {extra} extra: pip install 'rnnexp[{extra}]'") from None


def thread_pins() -> Iterator[Callable[[int], AbstractContextManager]]:
    """``limit_threads`` of each backend that pins its framework's own pool, once per framework, for the
    frameworks this process has imported already (pinning a pool never imports a framework)."""
    seen: set[tuple[str, ...]] = set()
    for name, (_, backend) in _registry().items():
        imported = all(sys.modules.get(p) is not None for p in backend.packages)
        if backend.pins_threads and imported and backend.packages not in seen:
            seen.add(backend.packages)
            yield load(name).limit_threads


def check_supported(cfg) -> None:
    """Let the chosen backend refuse a configuration before any work is done: what its declaration
    rules out (linear cells, training, a device, a dtype, a projection), then its own ``check``.

    ``mode=training`` on a backend that does not train is refused with one line naming those
    (installed) that do.
    """
    from rnnexp.config import ConfigError, Mode, is_linear

    backend = declared(cfg.backend)
    if is_linear(cfg) and not backend.linear_cells:
        able = ", ".join(n for n in names() if declared(n).linear_cells)
        raise ConfigError("backend", cfg.backend, f"cannot run cell={cfg.cell.value} (backends that can: {able})")
    module = load(cfg.backend)
    if cfg.mode is Mode.training and not backend.trains:
        trainers = ", ".join(n for n in names() if n != cfg.backend and declared(n).trains and installed(n))
        raise ConfigError("mode", "training", f"backend={cfg.backend} cannot train (backends that can: {trainers})")
    _refuse_outside(cfg, backend)
    check = getattr(module, "check", None)
    if check is not None:
        check(cfg)


def _refuse_outside(cfg, backend: Backend) -> None:
    """ConfigError for a device, projection or dtype outside the backend's declared capabilities."""
    from rnnexp.config import ConfigError

    why, name = backend.refusals, f"backend={backend.name}"
    if cfg.device.value not in (*backend.devices, "auto"):
        runs = why.get("device", f"runs on {', '.join(backend.devices)} only")
        raise ConfigError("device", cfg.device.value, f"{name} {runs} (allowed: {', '.join(backend.devices)}, auto)")
    if cfg.proj_size and not backend.projection:
        runs = why.get("proj_size", "it has no projection")
        raise ConfigError("proj_size", cfg.proj_size, f"{name}: {runs} (allowed: 0)")
    if cfg.dtype.value not in backend.dtypes:
        runs = why.get("dtype", f"it runs {', '.join(backend.dtypes)} only")
        raise ConfigError("dtype", cfg.dtype.value, f"{name}: {runs} (allowed: {', '.join(backend.dtypes)})")
