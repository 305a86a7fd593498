"""A copy of a composed config, as ``copy.deepcopy`` makes it, in under half the time.

A sweep copies a composed template for every job it plans and runs. OmegaConf's ``__deepcopy__``
walks its nodes in Python, ~60 us a node: ~6-11 ms for rnnexp's config with its ``hydra`` node
(~170 nodes) on the benchmark machine. A pickle round trip (OmegaConf's own ``__getstate__`` and
``__setstate__``, its supported way to ship a config to another process) gives the same nodes,
types, flags and values in ~40% of that. tests/test_launcher.py and tests/test_plan.py check the
composed configs still equal Hydra's own.
"""

from __future__ import annotations

import pickle
from typing import TypeVar

from omegaconf import Container

C = TypeVar("C", bound=Container)


def copy_config(cfg: C) -> C:
    """An independent copy of a whole config (a root node: a sub-node would lose its parent)."""
    return pickle.loads(pickle.dumps(cfg, protocol=pickle.HIGHEST_PROTOCOL))
