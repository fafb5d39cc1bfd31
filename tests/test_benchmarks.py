"""Smoke test of the benchmark runner on a few hundred rows (timings are never asserted)."""

from __future__ import annotations

import json

from benchmarks import run


def test_runner_writes_json_and_table(tmp_path, capsys):
    out = tmp_path / "results.json"
    args = ["--configs", "A", "B", "D", "--rows", "400", "--epochs", "2", "--skip-memory", "--out", str(out)]
    assert run.main(args) == 0
    results = json.loads(out.read_text())
    assert results["rows"] == 400
    for name in ("A", "B"):
        row = results[name]
        assert row["epochs_timed"] == 2 and len(row["epoch_seconds"]["nnscratch"]) == 3  # warm-up + 2 timed
        low, high = row["ratio_vs_limit_range"]
        assert 0 < low <= row["ratio_vs_limit"] <= high
    assert "sklearn_s" in results["A"] and "naive_s" in results["B"]
    assert results["D"]["nnscratch_samples_per_s"] > 0
    table = capsys.readouterr().out
    assert table.startswith("| config |") and "| A |" in table and "D (inference" in table
