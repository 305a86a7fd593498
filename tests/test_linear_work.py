"""The linear cells' work model in a row: bytes against the measured bandwidth, and the crossover finder."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from rnnexp.config import Cell, Mode, RunConfig, Scan
from rnnexp.linear import bandwidth, crossover, work


def test_bandwidth_is_the_best_rounds_copy_rate_with_a_fake_clock():
    ticks = iter(np.arange(0, 100, 0.5))  # every copy takes 0.5 s on this clock
    record = bandwidth.measure_bandwidth(1, size_bytes=8 << 10, clock=lambda: next(ticks))
    assert record["gbytes_per_s"] == pytest.approx(2 * (8 << 10) / 0.5 / 1e9)
    assert record["method"] == "stream_copy" and record["size_bytes"] == 8 << 10


def test_bandwidth_is_measured_once_per_dir(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(bandwidth, "measure_bandwidth", lambda t: calls.append(t) or {"gbytes_per_s": 5.0})
    assert bandwidth.bandwidth(1, tmp_path)["gbytes_per_s"] == 5.0
    assert bandwidth.bandwidth(1, tmp_path)["gbytes_per_s"] == 5.0
    assert calls == [1] and len(list(tmp_path.glob("bandwidth_*_1t.json"))) == 1


def test_row_columns_divide_the_modelled_bytes(monkeypatch):
    monkeypatch.setattr(bandwidth, "bandwidth", lambda threads, cache_dir: {"gbytes_per_s": 10.0})
    cfg = RunConfig(cell=Cell.s6, timesteps=100, scan=Scan.chunked)
    cols = bandwidth.columns(cfg, 0.001, "cpu", None)
    assert cols["scan_bytes"] == work.forward_bytes(cfg) == 7 * 100 * 16 * 8 * 4
    assert cols["scan_gbytes_per_s"] == pytest.approx(cols["scan_bytes"] / 1e-3 / 1e9)
    assert cols["bandwidth_frac"] == pytest.approx(cols["scan_gbytes_per_s"] / 10.0)
    trained = bandwidth.columns(
        RunConfig(cell=Cell.s6, timesteps=100, scan=Scan.chunked, mode=Mode.training), 1, "cpu", None
    )
    assert trained["scan_bytes"] == 2 * cols["scan_bytes"]
    assert bandwidth.columns(cfg, 0.001, "cuda", None)["peak_gbytes_per_s"] is None


def _table(times: dict[tuple[str, str], list[float]], steps=(16, 64, 256, 1024)) -> pd.DataFrame:
    rows = [
        {"backend": b, "scan": s, "timesteps": t, "time_median_ms": ms, "status": "ok"}
        for (b, s), series in times.items()
        for t, ms in zip(steps, series, strict=True)
    ]
    return pd.DataFrame(rows)


def test_crossover_is_where_a_scan_wins_from_then_on():
    table = _table(
        {
            ("numpy", "sequential"): [1, 4, 16, 64],
            ("numpy", "chunked"): [2, 3, 17, 30],  # wins at 64, loses at 256, wins from 1024 on
            ("numpy", "associative"): [3, 9, 40, 200],  # never
        }
    )
    found = crossover.crossovers(table).set_index("scan")
    assert found.loc["chunked", "crossover_timesteps"] == 1024
    assert math.isnan(found.loc["associative", "crossover_timesteps"])
    assert found.loc["chunked", "speedup_at_longest"] == pytest.approx(64 / 30)


def test_crossover_cli_writes_its_plot_and_refuses_a_bad_table(tmp_path, capsys):
    table = _table({("torch", "sequential"): [1, 2, 3, 4], ("torch", "associative"): [2, 1, 1, 1]})
    path = tmp_path / "results.csv"
    table.to_csv(path, index=False)
    assert crossover.main([str(path), "--out", str(tmp_path)]) == 0
    assert (tmp_path / "crossover.png").stat().st_size > 0
    assert "64" in capsys.readouterr().out
    table.drop(columns="scan").to_csv(path, index=False)
    assert crossover.main([str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "scan" in err
