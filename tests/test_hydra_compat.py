"""rnnexp.hydra_compat mirrors what Hydra keeps private; each piece is pinned here against Hydra's own code.

Only these tests (and the adapter) touch ``hydra._internal``: if a Hydra release changes any of it,
a test here fails and names the piece to update.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import setup_globals
from hydra.types import RunMode
from omegaconf import OmegaConf, open_dict, read_write

from rnnexp import hydra_compat
from rnnexp.plan import conf_dir

ROOT = Path(__file__).resolve().parent.parent
SWEEPS = [
    ["a=1,2", "b=x,y,z"],
    ["a=range(3)", "b=choice(p,q)", "c=5"],
    ["a=1,2", "b=3", "a=7,8,9"],  # a later override of a key replaces the earlier in its place
    ["+grp=glob(*)", "x=1"],
    ["a='s p a c e',\"q,u\"", "b=[1,2]"],  # quoted values with a comma, a list value
    ["a=range(0,10,3)", "b=true,false"],
    [],
]


def parse(specs):
    return OverridesParser.create().parse_overrides(specs)


@pytest.mark.parametrize("specs", SWEEPS, ids=lambda s: " ".join(s) or "empty")
def test_expand_sweep_equals_basic_sweeper(specs):
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

    if any("glob" in s for s in specs):
        pytest.skip("glob needs a config loader: covered through the CLI (deepbench preset)")
    want = [job for batch in BasicSweeper.split_arguments(parse(specs), None) for job in batch]
    assert hydra_compat.expand_sweep(parse(specs)) == want


@pytest.mark.parametrize("specs", [*SWEEPS, ["a=range(10,0,-3)", "b=range(0,1,0.25)"], ["a=range(-5,5)", "b=2"]])
def test_a_sweep_space_indexes_the_basic_sweepers_order(specs):
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

    if any("glob" in s for s in specs):
        pytest.skip("glob needs a config loader: covered through the CLI (deepbench preset)")
    want = [job for batch in BasicSweeper.split_arguments(parse(specs), None) for job in batch]
    space = hydra_compat.SweepSpace(parse(specs))
    assert space.size == len(want) and [space[i] for i in range(space.size)] == want and space[-1] == want[-1]


def test_a_sweep_space_is_sized_without_expanding():
    space = hydra_compat.SweepSpace(parse(["a=range(0,10000000000000000000000)", "b=x,y", "c=range(0,1e15,0.5)"]), 10)
    assert space.size == 10**22 * 2 * 2 * 10**15  # a list of these would not fit in any memory
    with pytest.raises(IndexError):  # the float range above the bound was never expanded
        space[0]
    space = hydra_compat.SweepSpace(parse(["a=range(0,10000000000000000000000)", "b=x,y"]))
    assert space[0] == ["a=0", "b=x"] and space[-1] == ["a=9999999999999999999999", "b=y"]


@pytest.mark.parametrize(
    "spec, says",
    [
        ("x=interval(0.5,2.0)", "not interval"),
        ("x=range(8,4)", "0 jobs"),
        ("x=range(8,9,0)", "non-zero step"),
    ],
)
def test_expand_sweep_refuses_what_has_no_finite_job_list(spec, says):
    with pytest.raises(hydra_compat.SweepSyntaxError) as err:
        hydra_compat.expand_sweep(parse([spec, "y=1,2"]))
    assert says in str(err.value) and err.value.override.key_or_group == "x"


@pytest.mark.parametrize(
    "overrides",
    [["a=1", "b=x"], ["b=x", "a=1", "c=null"], ["z=1"], [], ["seed=3", "timing.warmup=2", "p='a b'"]],
)
@pytest.mark.parametrize("exclude", [[], ["seed", "b"]])
@pytest.mark.parametrize("seps", [(",", "="), ("/", "_")])
def test_override_dirname_equals_hydra(overrides, exclude, seps):
    from hydra._internal.config_loader_impl import get_overrides_dirname

    item_sep, kv_sep = seps
    parsed = parse(overrides)
    want = get_overrides_dirname(overrides=parsed, exclude_keys=exclude, item_sep=item_sep, kv_sep=kv_sep)
    assert hydra_compat.override_dirname(parsed, exclude, item_sep, kv_sep) == want


@pytest.fixture(scope="module")
def loader_and_master():
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    setup_globals()
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        hydra = GlobalHydra.instance().hydra
        master = hydra.compose_config("config", ["seed=range(3)"], run_mode=RunMode.MULTIRUN)
        yield hydra.config_loader, master


@pytest.mark.parametrize(
    "values",
    [
        ["seed=3"],
        ["hidden_size=16", "bidirectional=true", "init_gain=0.5", "cell=lstm"],
        ["timing.warmup=7", "timing.min_run_time_s=0.05"],
        ["input_dist=zeros", "dtype=float64", "seed=0"],
    ],
)
def test_value_overrides_equal_hydra(loader_and_master, values):
    from hydra._internal.config_loader_impl import ConfigLoaderImpl

    loader, master = loader_and_master
    base = loader.load_sweep_config(master, [])
    mine, theirs = base.copy(), base.copy()
    hydra_compat.apply_value_overrides(mine, parse(values))
    ConfigLoaderImpl._apply_overrides_to_config(parse(values), theirs)
    assert OmegaConf.to_yaml(mine) == OmegaConf.to_yaml(theirs)


@pytest.mark.parametrize("values", [["hidden_size=abc"], ["cell=foo"], ["nokey=1"], ["timing.warmup=x"]])
def test_value_overrides_fail_as_hydra_does(loader_and_master, values):
    from hydra._internal.config_loader_impl import ConfigLoaderImpl

    loader, master = loader_and_master
    base = loader.load_sweep_config(master, [])
    with pytest.raises(Exception) as theirs:
        ConfigLoaderImpl._apply_overrides_to_config(parse(values), base.copy())
    with pytest.raises(type(theirs.value)) as mine:
        hydra_compat.apply_value_overrides(base.copy(), parse(values))
    assert str(mine.value) == str(theirs.value)


def test_args_parser_is_hydras():
    from hydra._internal.utils import get_args_parser

    mine, theirs = hydra_compat.args_parser(), get_args_parser()
    assert [a.option_strings for a in mine._actions] == [a.option_strings for a in theirs._actions]


def test_only_the_adapter_imports_hydra_internals():
    found = subprocess.run(
        ["grep", "-rl", "--include=*.py", "hydra._internal", "rnnexp", "hydra_plugins"],
        cwd=ROOT, capture_output=True, text=True,
    ).stdout.split()  # fmt: skip
    assert found == ["rnnexp/hydra_compat.py"]


def _named(master, name):
    cfg = master.copy()
    with read_write(cfg), open_dict(cfg):
        cfg.hydra.job.name = name
    return cfg


def test_hydra_config_set_to_is_undone_on_exit(loader_and_master):
    from hydra.core.hydra_config import HydraConfig

    _, master = loader_and_master
    before = HydraConfig.initialized() and HydraConfig.get()
    with hydra_compat.hydra_config_set_to(_named(master, "outer")):
        assert HydraConfig.get().job.name == "outer"
        with hydra_compat.hydra_config_set_to(_named(master, "inner")):
            assert HydraConfig.get().job.name == "inner"
            assert OmegaConf.create({"n": "${hydra:job.name}"}).n == "inner"  # the resolver reads it
        assert HydraConfig.get().job.name == "outer"
        with pytest.raises(RuntimeError), hydra_compat.hydra_config_set_to(_named(master, "failed")):
            raise RuntimeError("put back on an exception too")
        assert HydraConfig.get().job.name == "outer"
    assert (HydraConfig.initialized() and HydraConfig.get()) is before  # unset stays unset, a set one is the same


def test_hydra_config_set_to_without_a_copy_answers_from_the_config_itself(loader_and_master):
    """copy=False: what set_config would answer, from the config's own hydra node (read-only, as set_config
    leaves it), a change to that node included; put back on exit as with a copy."""
    from hydra.core.hydra_config import HydraConfig

    _, master = loader_and_master
    before = HydraConfig.initialized() and HydraConfig.get()
    with hydra_compat.hydra_config_set_to(_named(master, "copied")):
        copied = OmegaConf.to_yaml(HydraConfig.get())
    cfg = _named(master, "copied")
    with hydra_compat.hydra_config_set_to(cfg, copy=False):
        assert HydraConfig.get() is cfg.hydra and OmegaConf.is_readonly(cfg.hydra)
        assert OmegaConf.to_yaml(HydraConfig.get()) == copied
        with read_write(cfg.hydra), open_dict(cfg.hydra):
            cfg.hydra.job.name = "changed"
        assert OmegaConf.create({"n": "${hydra:job.name}"}).n == "changed"
    assert (HydraConfig.initialized() and HydraConfig.get()) is before


def test_hydra_config_set_to_leaves_an_unset_config_unset(loader_and_master, monkeypatch):
    from hydra.core.hydra_config import HydraConfig

    _, master = loader_and_master
    monkeypatch.setattr(HydraConfig.instance(), "cfg", None)  # as in a process that never ran a Hydra app
    assert not HydraConfig.initialized()
    with hydra_compat.hydra_config_set_to(_named(master, "x")):
        assert HydraConfig.initialized() and HydraConfig.get().job.name == "x"
    assert not HydraConfig.initialized()
    with pytest.raises(ValueError, match="HydraConfig was not set"):
        HydraConfig.get()
