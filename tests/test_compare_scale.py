"""rnnexp compare at hundreds of configurations: FDR-controlled verdicts, one line over all, --csv, rows on one side.

Timing here is simulated from seeded samples (no wall clock): the statistics are what is under test.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from test_report import make_sweep, samples_for, scaled

from rnnexp.review import compare, evidence, verdicts


def grid(n: int) -> list[dict]:
    """``n`` configurations (hidden sizes), 10 blocks each, as a sweep over hidden_size writes them."""
    return [
        {"cell": "rnn", "hidden_size": 8 + i, "backend": "numpy", "dtype": "float32",
         "output_shape": f"(1, 10, {8 + i})", "shape_ok": True, "time_median_ms": 1.0 + i / 100, "n_blocks": 10,
         "block_size": 1, "max_abs_err_vs_ref": 3e-8, "parity_ok": True, "status": "ok", "error": "", "job_num": i,
         "command": f"python -m rnnexp hidden_size={8 + i}", "overrides": f"hidden_size={8 + i}", "hostname": "host"}
        for i in range(n)
    ]  # fmt: skip


def noisy_pair(rng, ratio: float, n: int = 10, spread: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    base = np.exp(rng.normal(0, spread, n)) * 1e-3
    return base, np.exp(rng.normal(np.log(ratio), spread, n)) * 1e-3


def test_benjamini_hochberg_agrees_with_scipy():
    rng = np.random.default_rng(3)
    for _ in range(20):
        p = np.concatenate([rng.uniform(0, 1, 50), rng.uniform(0, 0.003, rng.integers(0, 10))])
        expected = stats.false_discovery_control(p) <= verdicts.FDR
        assert verdicts.benjamini_hochberg(p).tolist() == expected.tolist()


@pytest.mark.parametrize("confidence", [0.9, 0.99, 0.999])
def test_p_value_inverts_the_interval(confidence):
    """p <= 1 - c exactly when the c-interval lies wholly past the band: the test and the interval agree."""
    rng = np.random.default_rng(7)
    for ratio, m, n in itertools.product((1.0, 1.15, 1.3, 0.8), (6, 10), (5, 12)):
        base, new = noisy_pair(rng, ratio, m)[0], noisy_pair(rng, ratio, n)[1]
        v = evidence.judge(base, new, 1.2, confidence)
        assert (evidence.p_value(base, new, 1.2) <= 1 - confidence) == (v.verdict in verdicts.CHANGES)


def test_null_configurations_at_the_band_edge_flag_by_chance_alone_unless_the_fdr_is_held():
    """400 configurations whose true change sits on --ratio: 99% intervals flag some; BH flags none."""
    rng = np.random.default_rng(11)
    pairs = [noisy_pair(rng, 1.2) for _ in range(400)]
    marginal = sum(evidence.judge(b, n, 1.2).verdict in verdicts.CHANGES for b, n in pairs)
    held = [v.verdict for v in verdicts.decide(pairs, 1.2)]
    assert marginal >= 1  # the multiplicity problem is real for this seed
    assert held.count(evidence.REGRESSION) + held.count(evidence.FASTER) == 0
    assert "not a change at FDR 1% over 400 timings" in {v.reason for v in verdicts.decide(pairs, 1.2)}


def test_a_twofold_slowdown_of_every_configuration_is_found_in_nearly_all():
    rng = np.random.default_rng(5)
    decided = verdicts.decide([noisy_pair(rng, 2.0) for _ in range(200)], 1.2)
    assert sum(v.verdict == evidence.REGRESSION for v in decided) >= 190
    assert all(v.low > 1.2 for v in decided if v.verdict == evidence.REGRESSION)  # its interval lies past the band


def test_geometric_mean_interval():
    mean, low, high = verdicts.geometric_mean([2.0, 2.0, 2.0])
    assert mean == pytest.approx(2.0) and low == pytest.approx(2.0) and high == pytest.approx(2.0)
    mean, low, high = verdicts.geometric_mean([1.0, 4.0] * 20)
    assert mean == pytest.approx(2.0) and low < 2.0 < high
    assert np.isnan(verdicts.geometric_mean([1.5])[1]) and np.isnan(verdicts.geometric_mean([])[0])


@pytest.fixture
def sweeps(tmp_path):
    """Write BASE and NEW sweep dirs from rows (NEW's timings scaled by ``slower``); their paths."""

    def write(base: list[dict], new: list[dict], slower=lambda row: 1.0, seed: int = 2):
        b = make_sweep(tmp_path / "base", base, samples=samples_for(base, seed=1))
        n = make_sweep(tmp_path / "new", scaled(new, slower), samples=samples_for(new, slower, seed=seed))
        return b, n

    return write


def run(capsys, *args) -> tuple[int, str, str]:
    code = compare.main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_two_hundred_configurations_one_summary_line_and_a_verdicts_table(sweeps, tmp_path, capsys):
    rows = grid(200)
    base, new = sweeps(rows, rows, slower=lambda row: 2.0 if row["job_num"] % 2 else 1.0)
    code, out, _ = run(capsys, base, new, "--csv", tmp_path / "v.csv")
    assert code == 1
    [line] = [x for x in out.splitlines() if "configurations matched" in x]
    assert line.startswith("200 configurations matched: geometric mean NEW/BASE time x1.4")
    assert "99% bootstrap CI" in line and "100 slower, 0 faster, 100 same, 0 inconclusive" in line
    table = pd.read_csv(tmp_path / "v.csv")
    assert list(table.columns) == ["cell", "hidden_size", "backend", "dtype", "verdict", "ratio", "ci_low", "ci_high"]
    assert len(table) == 200 and table["hidden_size"].tolist() == list(range(8, 208))  # the sweep's order
    slow = table[table["hidden_size"] % 2 == 1]
    assert (slow["verdict"] == "slower").all() and (slow["ci_low"] > 1.2).all()
    assert (table.loc[table["hidden_size"] % 2 == 0, "verdict"] == "same").all()
    assert out.count("\n") < 60  # the screen: 20 difference lines and a count, not 100
    assert "... and 80 more (80 REGRESSION): --all shows every one" in out
    code, everything, _ = run(capsys, base, new, "--all")
    assert sum(x.endswith("REGRESSION") for x in everything.splitlines()) == 100


def test_deterministic_changes_and_one_sided_rows_in_the_table(sweeps, tmp_path, capsys):
    rows = grid(6)
    new = [{**r, "output_shape": "(9, 9, 9)"} if r["job_num"] == 2 else r for r in rows[1:]]
    new.append({**rows[0], "hidden_size": 999, "job_num": 6})
    base, new_dir = sweeps(rows, new)
    code, out, _ = run(capsys, base, new_dir, "--csv", tmp_path / "v.csv")
    assert code == 1  # the changed shape fails; the rows on one side do not
    table = pd.read_csv(tmp_path / "v.csv")
    assert dict(zip(table["hidden_size"], table["verdict"], strict=True)) == {
        8: "only-in-base", 9: "same", 10: "changed", 11: "same", 12: "same", 13: "same", 999: "only-in-new"
    }  # fmt: skip
    assert "1 only-in-base, 1 only-in-new" in out and "1 changed" in out


@pytest.mark.parametrize("as_file", [False, True])
def test_a_row_recreated_by_its_command_matches_its_sweep(sweeps, tmp_path, capsys, as_file):
    """A re-run is job 0 of its own dir, with its own command, overrides and concurrency: none of that is matched on."""
    rows = grid(4)
    rerun = [{**rows[2], "job_num": 0, "command": rows[2]["command"] + " hydra.run.dir=x", "overrides": "",
              "concurrent_jobs": 1, "hostname": "other"}]  # fmt: skip
    base, new = sweeps(rows, rerun)
    code, out, _ = run(capsys, base, new / "results.csv" if as_file else new, "--csv", tmp_path / "v.csv")
    assert code == 0, out
    verdict = pd.read_csv(tmp_path / "v.csv").set_index("hidden_size")["verdict"]
    assert verdict[10] == "same" and (verdict.drop(10) == "only-in-base").all()
    assert "REGRESSION" not in out
    assert run(capsys, base, new, "--require-same-rows")[0] == 1


@pytest.mark.parametrize("where", ["missing/dir/v.csv", "."])
def test_an_unwritable_csv_path_is_one_line_and_exit_2(sweeps, tmp_path, capsys, where, monkeypatch):
    rows = grid(3)
    base, new = sweeps(rows, rows)
    blocker = tmp_path / "missing"
    blocker.write_text("a file where a dir should be")
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, base, new, "--csv", where)
    assert code == 2 and out == ""
    assert err.startswith("rnnexp compare: error: --csv ") and err.count("\n") == 1
    assert blocker.read_text() == "a file where a dir should be" and not list(tmp_path.glob("*.tmp*"))
