"""One file per backend: everything specific to a backend is declared in its own module and read through the registry.

No module outside ``rnnexp/backends/`` keys or compares a backend name: the source is scanned for
string constants equal to a registered backend's name (a docstring is a sentence, never equal to
a name; YAML presets and docs are not code and may name backends). ``ALLOWED`` lists the few places
where such a string names something else, each with why; a stale entry fails too.

The declarations themselves are checked against the modules: what the registry reads from the
source without importing a module is what the module holds once imported, and each declared
capability is the module's behaviour (training, the columns it adds).
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from rnnexp import backends

ROOT = Path(__file__).resolve().parent.parent
SCANNED = ("rnnexp", "hydra_plugins")
# (file, name) -> why that string there is not a backend's name.
ALLOWED = {
    ("rnnexp/config.py", "torch"): "the default of the backend key, as conf/config.yaml's: the config sits below "
    "the registry (import-linter) and cannot ask it",
    ("rnnexp/cli.py", "torch"): "the torch distribution, whose version --version prints",
    ("rnnexp/envinfo.py", "torch"): "the torch distribution and module, whose version and threads env.json records",
    ("rnnexp/linear/ops.py", "numpy"): "the array library a linear cell's operations run on (ops.get), not a backend",
    ("rnnexp/linear/ops.py", "torch"): "likewise",
    ("rnnexp/linear/ops.py", "jax"): "likewise",
}


def backend_names_in(path: Path, names: set[str]) -> list[tuple[int, str]]:
    """(line, name) of every string constant in ``path``'s source that equals one of ``names``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in names
    ]


def scan(root: Path, names: set[str]) -> dict[tuple[str, str], list[int]]:
    """(file relative to root, name) -> the lines naming it, for every module outside rnnexp/backends/."""
    found: dict[tuple[str, str], list[int]] = {}
    for top in SCANNED:
        for path in sorted((root / top).rglob("*.py")):
            rel = path.relative_to(root).as_posix()
            if rel.startswith("rnnexp/backends/"):
                continue
            for line, name in backend_names_in(path, names):
                found.setdefault((rel, name), []).append(line)
    return found


def test_no_module_outside_the_backends_names_a_backend():
    found = scan(ROOT, set(backends.names()))
    named = [f"{f}:{n}: {name!r}" for (f, name), lines in found.items() if (f, name) not in ALLOWED for n in lines]
    why = "backend names outside rnnexp/backends/ (declare the fact in its module, read it through the registry)"
    assert not named, why + ":\n" + "\n".join(named)
    stale = sorted(set(ALLOWED) - set(found))
    assert not stale, f"ALLOWED entries that name nothing any more: {stale}"


def test_the_scan_sees_keys_comparisons_and_defaults(tmp_path):
    (tmp_path / "rnnexp" / "backends").mkdir(parents=True)
    (tmp_path / "hydra_plugins").mkdir()
    (tmp_path / "rnnexp" / "m.py").write_text(
        '"""Docs may say torch or numpy."""\n'
        'COST = {"torch_cell": 4e-5}\n'
        'def f(backend="numpy"):\n'
        '    return backend.startswith("numpy") or backend in ("jax",)\n'
    )
    (tmp_path / "rnnexp" / "backends" / "mine.py").write_text('NAME = "torch"\n')  # a backend's own module may
    names = {"numpy", "torch", "torch_cell", "jax"}
    assert scan(tmp_path, names) == {
        ("rnnexp/m.py", "torch_cell"): [2],
        ("rnnexp/m.py", "numpy"): [3, 4],
        ("rnnexp/m.py", "jax"): [4],
    }


def test_reading_every_declaration_imports_no_framework():
    import subprocess
    import sys

    code = (
        "import sys\nfrom rnnexp import backends as b, memory\nfrom rnnexp.config import RunConfig\n"
        "facts = [b.declared(n) for n in b.names()], b.reference(), b.gemm_yardsticks()\n"
        "memory.estimate_job_bytes(RunConfig(backend='jax')), memory.peak_method('cpu', 'onnxruntime')\n"
        "print(sorted(m for m in ('torch', 'jax', 'onnxruntime', 'onnx') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("name", backends.names())
def test_the_declaration_read_from_source_is_the_modules_own(name):
    if not backends.installed(name):
        pytest.skip(f"{name}'s framework is not installed")
    module = backends.load(name)
    assert backends.declared(name) == module.BACKEND
    assert module.BACKEND.name == name


@pytest.mark.parametrize("name", backends.names())
def test_the_declared_capabilities_are_the_modules(name):
    """What the registry reads is what the module does: it trains exactly when it declares so; the methods
    its declaration promises exist; its peak methods are known."""
    if not backends.installed(name):
        pytest.skip(f"{name}'s framework is not installed")
    backend, module = backends.declared(name), backends.load(name)
    assert hasattr(module, "prepare")
    assert backend.trains == hasattr(module, "prepare_training")
    assert not backend.gemm or hasattr(module, "gemm_call")
    assert not backend.pins_threads or hasattr(module, "limit_threads")
    by_module = {m for m in backend.peak_mem.values() if m != "tracemalloc" and not m.startswith("unmeasured")}
    assert not by_module or hasattr(module, "peak_bytes")
    assert set(backend.devices) <= {"cpu", "cuda"} and "cpu" in backend.peak_mem
    assert set(backend.dtypes) <= set(backends.DTYPES) and backend.dtypes
    assert set(backend.refusals) <= {"device", "dtype", "proj_size"}
    assert not backend.extra or backend.packages  # an extra names the packages whose absence means it is missing


@pytest.fixture(scope="module")
def peak_dir(tmp_path_factory):
    """A GEMM peak cache filled beforehand (the figure is not under test): a job reads it instead of measuring."""
    from rnnexp import peak

    path = tmp_path_factory.mktemp("peak")
    for dtype in backends.DTYPES:
        record = {"dtype": dtype, "threads": 1, "gflops": 1.0, "libraries": {}}
        peak.cache_path(path, dtype, 1).write_text(json.dumps(record))
    return path


@pytest.mark.parametrize("mode", ["inference", "training"])
@pytest.mark.parametrize("name", backends.names())
def test_every_backend_runs_a_job_as_it_declares(name, mode, peak_dir, monkeypatch):
    """One small job on each registered backend in each mode it declares: an ok row within parity, its peak
    memory measured by its declared method, exactly its declared columns added (each one of the schema's)."""
    from rnnexp import schema
    from rnnexp.config import Cell, Device, Dtype, Mode, RunConfig, TimingConfig
    from rnnexp.runner import JobContext, run_job

    backend = backends.declared(name)
    if mode == "training" and not backend.trains:
        pytest.skip(f"{name} does not train")
    if not backends.installed(name):
        pytest.skip(f"{name}'s framework is not installed")
    timing = TimingConfig(warmup=0, min_run_time_s=0.001, max_run_time_s=0.01, min_blocks=1, block_min_s=0.0001)
    cfg = RunConfig(
        backend=name, mode=Mode(mode), device=Device.cpu, dtype=Dtype(backend.dtypes[0]), cell=Cell.gru,
        hidden_size=3, input_size=2, timesteps=3, threads=1, timing=timing,
    )  # fmt: skip
    module, extras = backends.load(name), []
    prepare = "prepare_training" if mode == "training" else "prepare"
    original = getattr(module, prepare)

    def spy(*args, **kwargs):
        prepared = original(*args, **kwargs)
        extras.append(set(prepared.extra))
        return prepared

    monkeypatch.setattr(module, prepare, spy)
    row = run_job(cfg, JobContext(peak_dir=peak_dir)).row
    assert row["status"] == "ok", row["error"]
    assert extras and all(e == set(backend.columns) for e in extras)
    assert row["parity_ok"] and row["shape_ok"]
    assert row["peak_mem_method"] == backend.peak_mem_method("cpu")
    if backend.peak_mem_method("cpu").startswith("unmeasured"):
        assert row["peak_mem_bytes"] is None  # an empty figure, never a 0
    elif mode == "inference":  # (jax's training step hangs no memory analysis on its call: empty too)
        assert row["peak_mem_bytes"] is not None
    assert all(schema.column(c) is not None and row.get(c) is not None for c in backend.columns)


def test_exactly_one_reference_and_it_is_measured_by_tracemalloc():
    refs = [n for n in backends.names() if backends.declared(n).reference]
    assert refs == [backends.reference()]
    assert backends.declared(backends.reference()).peak_mem_method("cpu") == "tracemalloc"


def test_a_new_backend_is_one_file_and_one_registry_line(extra_backend):
    """A module declaring itself, added to ``_MODULES``: validation, the refusal of what it cannot run and
    the memory and time estimates read it, with nothing else edited."""
    from rnnexp import memory, runner
    from rnnexp.config import ConfigError, Dtype, Mode, RunConfig
    from rnnexp.validation import validate

    extra_backend(
        "my_backend",
        '"""My backend: the NumPy reference under another name."""\n'
        "from rnnexp.backends import Backend\n"
        "from rnnexp.backends.numpy_ref import prepare\n"
        'BACKEND = Backend(name="mine", dtypes=("float64",), weight_copies=2, step_cost_s=1.0)\n',
    )
    assert "mine" in backends.names()
    cfg = RunConfig(backend="mine", dtype=Dtype.float64)
    validate(cfg)
    refused = r"^dtype=float32: backend=mine: it runs float64 only \(allowed: float64\)"
    with pytest.raises(ConfigError, match=refused):
        validate(RunConfig(backend="mine"))
    with pytest.raises(ConfigError, match="backend=mine cannot train"):
        validate(RunConfig(backend="mine", dtype=Dtype.float64, mode=Mode.training))
    numpy = RunConfig(backend=backends.reference(), dtype=Dtype.float64)
    phase = memory.job_bytes_breakdown(cfg)["backend_phase"] - memory.job_bytes_breakdown(numpy)["backend_phase"]
    assert phase == 2 * memory.param_bytes(cfg)  # its two weight copies
    steps = cfg.timesteps * cfg.layers
    assert runner.expected_forward_s(cfg, 1.0) - runner.expected_forward_s(numpy, 1.0) == pytest.approx(
        steps * (1.0 - backends.declared(backends.reference()).step_cost_s)
    )
    assert memory.peak_method("cpu", "mine") == "tracemalloc"
