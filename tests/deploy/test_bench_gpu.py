"""benchmarks/bench_gpu.py keeps working between the rare runs on a GPU machine."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_gpu.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_gpu", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_without_a_gpu_it_says_so_and_succeeds(bench, monkeypatch, capsys) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert bench.main([]) == 0
    output = capsys.readouterr().out
    assert "no CUDA GPU" in output and "img/s" not in output


@pytest.mark.usefixtures("one_torch_thread")
def test_cpu_smoke_run_measures_train_and_inference(bench, capsys) -> None:
    """The GPU code path on the CPU, tiny: both passes of run_epoch, with and without the loader."""
    args = ["--cpu", "--images", "8", "--size", "32", "--batch", "4", "--models", "neuroflux_cnn"]
    assert bench.main(args) == 0
    line = capsys.readouterr().out.splitlines()[-1]
    assert line.startswith("neuroflux_cnn") and line.count("img/s") == 2 and "model alone" in line


@pytest.mark.usefixtures("one_torch_thread")
def test_cpu_smoke_run_measures_the_feature_cache_for_frozen_models(bench, capsys) -> None:
    args = ["--cpu", "--images", "8", "--size", "32", "--batch", "4", "--models", "resnet50", "--views", "2"]
    assert bench.main(args) == 0
    line = capsys.readouterr().out.splitlines()[-1]
    assert line.startswith("resnet50") and line.count("img/s") == 3 and "with the feature cache" in line
