"""`make bench`'s one table: figures recorded by the benchmarks come back with ratio and verdict."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import results  # noqa: E402
import summary  # noqa: E402


def test_recorded_figures_make_one_table_with_ratio_and_verdict(tmp_path, monkeypatch, capsys):
    path = tmp_path / "results.jsonl"
    monkeypatch.setenv(results.RESULTS_ENV, str(path))
    results.record("training", 10.0, 45.0, "img/s", ">= 4")
    results.record("predict p50", 20.0, 15.0, "ms", "<= 0.6")
    results.record("demo", None, 300.0, "s", "<= 360")
    assert summary.main([str(path)]) == 0
    table = capsys.readouterr().out
    assert "| training | 10.0 | 45.0 | img/s | 4.50x | >= 4 | yes |" in table
    assert "| predict p50 | 20.0 | 15.0 | ms | 0.75x | <= 0.6 | **no** |" in table
    assert "| demo | - | 300.0 | s | - | <= 360 | yes |" in table


def test_without_figures_it_says_so(tmp_path, capsys):
    assert summary.main([str(tmp_path / "none.jsonl")]) == 1
    assert "no figures recorded" in capsys.readouterr().out


@pytest.mark.parametrize(("ratio", "target", "met"), [(1.5, ">= 1.5", True), (0.61, "<= 0.6", False)])
def test_targets(ratio, target, met):
    assert results.target_met(ratio, target) is met
