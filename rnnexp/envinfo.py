"""The machine and software a result came from, for ``env.json`` and a few columns of every row.

Also how busy the machine was: the load average and :class:`CpuMeter`, which tells the CPU time
other processes took while something ran (all cores' busy time, from /proc/stat via psutil, less
this process's own), so a row can say whether its timings shared the machine.

Nothing here imports torch: its version comes from package metadata, and its build details
(MKL, oneDNN, OpenMP) are added only when torch is already imported, so a NumPy-only job does
not pay for the import.
"""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from rnnexp.fileio import write_json_atomic

ROW_FIELDS = ("hostname", "cpu_model", "git_commit", "git_dirty", "rnnexp_version")
# SLURM's ids of the job running this process: an array task is ARRAYJOB_TASK, else the plain job id.
SLURM_ARRAY_VARS = ("SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID")
SLURM_JOB_VAR = "SLURM_JOB_ID"


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return ""


def _package_version() -> str:
    """rnnexp's own ``__version__``, for a checkout run without installing it (no package metadata)."""
    from rnnexp._version import __version__

    return __version__


def cpu_model() -> str:
    """The CPU's marketing name from /proc/cpuinfo (Linux), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cores() -> dict[str, int | None]:
    """Physical and logical cores of the machine, and the cores this process may run on."""
    import psutil

    from rnnexp.threads import usable_cores

    usable = usable_cores()
    return {
        "cores_physical": psutil.cpu_count(logical=False),
        "cores_logical": psutil.cpu_count(logical=True),
        "cores_usable": usable,
    }


def memory() -> dict[str, int]:
    import psutil

    vm = psutil.virtual_memory()
    return {"memory_total_bytes": int(vm.total), "memory_available_bytes": int(vm.available)}


def load_avg() -> dict[str, float | None]:
    """The 1-, 5- and 15-minute load averages (runnable processes, this one included); None where unknown."""
    import psutil

    try:
        one, five, fifteen = psutil.getloadavg()
    except (OSError, AttributeError):
        return dict.fromkeys(("load_avg_1m", "load_avg_5m", "load_avg_15m"))
    return {"load_avg_1m": one, "load_avg_5m": five, "load_avg_15m": fifteen}


def load_avg_1m() -> float | None:
    return load_avg()["load_avg_1m"]


def slurm_job_id(environ: dict[str, str] | None = None) -> str:
    """``ARRAYJOB_TASK`` for a SLURM array task, else ``SLURM_JOB_ID``; '' outside SLURM."""
    environ = os.environ if environ is None else environ
    array_job, task = (environ.get(k, "") for k in SLURM_ARRAY_VARS)
    if array_job and task:
        return f"{array_job}_{task}"
    return environ.get(SLURM_JOB_VAR, "")


def _busy_cpu_s() -> float:
    """CPU seconds all cores have spent busy since boot (guest time is inside user already)."""
    import psutil

    t = psutil.cpu_times()
    return sum(getattr(t, k, 0.0) for k in ("user", "nice", "system", "irq", "softirq"))


def _own_cpu_s() -> float:
    """CPU seconds this process (all its threads) has used; finished children are not counted."""
    import psutil

    t = psutil.Process().cpu_times()
    return t.user + t.system


class CpuMeter:
    """CPU time used by other processes between construction and :meth:`other_cpu_s`.

    The machine's busy time (/proc/stat, in clock ticks of 10 ms) less this process's own: 0 on a
    quiet machine, about N x wall seconds when N other cores were busy. Small negative differences
    from tick rounding read as 0.
    """

    def __init__(self) -> None:
        self.busy0, self.own0 = _busy_cpu_s(), _own_cpu_s()

    def other_cpu_s(self) -> float:
        return max(0.0, (_busy_cpu_s() - self.busy0) - (_own_cpu_s() - self.own0))


def git_state(path: Path | None = None) -> dict[str, Any]:
    """Commit and dirty flag of the git checkout holding ``path`` (rnnexp's own by default); '' when none."""
    where = Path(path) if path is not None else Path(__file__).resolve().parent

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=where, capture_output=True, text=True, timeout=10, check=True)
        return done.stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return {"git_commit": "", "git_dirty": None}
    return {"git_commit": commit, "git_dirty": dirty}


def blas_info() -> list[dict[str, Any]]:
    """The BLAS and OpenMP libraries loaded in this process and their thread counts (threadpoolctl)."""
    from threadpoolctl import threadpool_info

    keep = ("user_api", "internal_api", "prefix", "version", "num_threads", "threading_layer", "architecture")
    return [{k: lib.get(k) for k in keep if k in lib} for lib in threadpool_info()]


def torch_info() -> dict[str, Any]:
    """torch's threads and math libraries, when torch is imported already (never imports it)."""
    torch = sys.modules.get("torch")
    if torch is None:
        return {}
    info: dict[str, Any] = {
        "torch_num_threads": torch.get_num_threads(),
        "torch_num_interop_threads": torch.get_num_interop_threads(),
        "torch_mkl": torch.backends.mkl.is_available(),
        "torch_mkldnn": torch.backends.mkldnn.is_available(),
        "torch_parallel_info": torch.__config__.parallel_info(),
        "torch_config": torch.__config__.show(),
        "torch_cuda": torch.version.cuda or "",
        "cuda_available": torch.cuda.is_available(),
    }
    if info["cuda_available"]:
        info["cuda_device"] = torch.cuda.get_device_name()
        info["cudnn_version"] = torch.backends.cudnn.version()
    return info


def collect(git_path: Path | None = None) -> dict[str, Any]:
    """Everything ``env.json`` records about this process, its machine and its code."""
    return {
        "start_time_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "cpu_model": cpu_model(),
        **cores(),
        **memory(),
        "python_version": platform.python_version(),
        "python_executable": sys.executable,
        "numpy_version": np.__version__,
        "torch_version": _version("torch"),
        "hydra_version": _version("hydra-core"),
        "omegaconf_version": _version("omegaconf"),
        "rnnexp_version": _version("rnnexp") or _package_version(),
        **git_state(git_path),
        **load_avg(),
        "slurm_job_id": slurm_job_id(),
        "blas": blas_info(),
        **torch_info(),
    }


def write_env(path: Path | str, extra: dict[str, Any] | None = None, env: dict[str, Any] | None = None) -> dict:
    """Write ``env`` (default: ``collect()``) plus ``extra`` (e.g. GEMM peaks) as JSON to ``path``, atomically."""
    env = {**(env if env is not None else collect()), **(extra or {})}
    write_json_atomic(path, env)
    return env


def row_fields(env: dict[str, Any]) -> dict[str, Any]:
    """The few environment columns repeated in every row: hostname, cpu_model, git_commit, git_dirty, rnnexp_version."""
    return {k: env.get(k) for k in ROW_FIELDS}
