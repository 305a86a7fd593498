"""The one place rnnexp depends on how torch works inside, rather than on its public API.

Each piece is small and pinned by ``tests/test_torch_compat.py`` against torch itself, so a torch
release that moves one fails a test that names it. torch is imported inside each function: importing
this module costs nothing on a path that never uses torch.

- :func:`cpu_allocation_events`: every allocation and free of c10's CPU allocator during a call,
  read from the autograd profiler's event tree (its event kind is ``torch._C._profiler._EventType``;
  ``torch.profiler`` has the same data but imports ``torch._inductor``, ~1.5 s, first).
- :func:`no_donated_buffers`: AOTAutograd's ``donated_buffer`` option off, so one recorded forward
  of a compiled graph can be differentiated more than once (``torch._functorch.config``; torch
  offers no public switch).
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from typing import Any


def cpu_allocation_events(call: Callable[[], Any]) -> list[tuple[int, int, int]]:
    """(time ns, address, +size for an allocation / -size for a free) of every CPU allocator event during ``call``.

    The call's result is dropped inside, after the profiler stops: the frees of what it returns are not events.
    """
    from torch._C._profiler import _EventType
    from torch.autograd.profiler import profile

    prof = profile(use_cpu=True, profile_memory=True, use_kineto=True)
    with _without_kineto_chatter():
        prof.__enter__()
    try:
        result = call()
    finally:
        with _without_kineto_chatter():
            prof.__exit__(None, None, None)
    del result
    events = []
    stack = list(prof.kineto_results.experimental_event_tree())
    while stack:
        node = stack.pop()
        if node.tag == _EventType.Allocation and node.extra_fields.device.type == "cpu":
            events.append((node.start_time_ns, node.extra_fields.ptr, node.extra_fields.alloc_size))
        stack.extend(node.children)
    return events


@contextlib.contextmanager
def _without_kineto_chatter() -> Iterator[None]:
    """Drop the lines kineto writes to fd 2 at each profiler start and stop ('USDT: ...'); keep any others."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            lines = tmp.read().decode(errors="replace").splitlines(keepends=True)
            kept = "".join(line for line in lines if not line.startswith(("USDT:", "STAGE:")))
            if kept:
                sys.stderr.write(kept)


def no_donated_buffers() -> contextlib.AbstractContextManager[Any]:
    """AOTAutograd's ``donated_buffer`` off while inside (inductor reads it while it compiles a backward)."""
    import torch._functorch.config

    return torch._functorch.config.patch(donated_buffer=False)
