"""rnnexp.torch_compat reads what torch keeps private; each piece is pinned here against torch itself."""

from __future__ import annotations

import pytest

from rnnexp import torch_compat

torch = pytest.importorskip("torch")
MB = 1024 * 1024


def test_allocation_events_are_the_calls_cpu_allocations_and_frees():
    def call():
        a = torch.ones(MB // 8, dtype=torch.float64)  # 1 MB, freed in the call
        del a
        return torch.ones(MB // 4, dtype=torch.float64)  # 2 MB, returned

    events = torch_compat.cpu_allocation_events(call)
    sizes = [size for _, _, size in events]
    assert MB in sizes and -MB in sizes  # the first tensor: allocated, then freed at the same address
    assert 2 * MB in sizes and -2 * MB not in sizes  # the result's free comes after the profiler stopped
    one = {ptr for _, ptr, size in events if abs(size) == MB}
    assert len(one) == 1
    assert all(isinstance(v, int) for event in events for v in event)


def test_allocation_events_of_a_call_that_allocates_nothing():
    x = torch.ones(16)
    assert [e for e in torch_compat.cpu_allocation_events(lambda: x) if abs(e[2]) >= 64] == []


def test_allocation_events_let_the_calls_exception_through():
    with pytest.raises(ZeroDivisionError):
        torch_compat.cpu_allocation_events(lambda: 1 / 0)
    assert torch_compat.cpu_allocation_events(lambda: torch.ones(MB // 4))  # the profiler was stopped: it starts again


def test_kinetos_start_and_stop_lines_are_dropped_and_other_stderr_kept(capfd):
    import os

    torch_compat.cpu_allocation_events(lambda: os.write(2, b"mine\n"))
    err = capfd.readouterr().err
    assert "mine" in err and "USDT:" not in err and "STAGE:" not in err


def test_the_profilers_event_kind_is_where_torch_compat_reads_it():
    from torch._C._profiler import _EventType

    assert hasattr(_EventType, "Allocation")


def test_no_donated_buffers_switches_aotautograds_option_for_the_duration():
    import torch._functorch.config as functorch_config

    before = functorch_config.donated_buffer
    with torch_compat.no_donated_buffers():
        assert functorch_config.donated_buffer is False
    assert functorch_config.donated_buffer == before


def test_importing_the_adapter_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, rnnexp.torch_compat; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"
