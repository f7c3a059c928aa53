"""Prediction latency and throughput: the original's bare forward vs our Predictor from an image file.

Usage: python benchmarks/bench_predict.py [--rounds 7] [--calls 30]

- original: the original CNN recipe (c=32, 224 px) in eval mode, `with torch.no_grad(): model(x)` on a
  ready (1, 3, 224, 224) tensor: no decoding, no preprocessing.
- ours: `Predictor.from_artifact(...).predict(path)` on a 256x256 JPEG of the demo set: decode, resize,
  per-image normalisation and the model; with the artifact's ONNX export (`neuroflux export`, ONNX
  Runtime) and without it (eager PyTorch, channels_last).
Timed interleaved in one process: each round runs `--calls` calls of every variant in turn; a figure is
the median of all its calls, its spread the lowest and highest round median. Then the forward alone per
variant (what each step buys), batch-of-32 throughput, and resnet18_gray at 64 px.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from results import record

from neuroflux_lib.config import DEFAULT_CLASS_NAMES, DEFAULT_SUBJECT_REGEX
from neuroflux_lib.data.discovery import discover_images
from neuroflux_lib.data.imageio import load_grayscale_or_raise
from neuroflux_lib.data.normalization import InputNormalization
from neuroflux_lib.demo.generator import generate_demo_dataset
from neuroflux_lib.models import build_model
from neuroflux_lib.serving.artifacts import ArtifactMeta, save_artifact
from neuroflux_lib.serving.export import export_onnx, open_session, session_run
from neuroflux_lib.serving.predictor import Predictor

CLASSES = list(DEFAULT_CLASS_NAMES)


def interleaved(variants: dict[str, Callable[[], object]], rounds: int, calls: int) -> dict[str, dict]:
    """ms per call: median over every call, and the range of the round medians."""
    for run in variants.values():  # warm-up: first-call allocations, ONNX Runtime's arena
        for _ in range(3):
            run()
    times: dict[str, list[list[float]]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, run in variants.items():
            block = []
            for _ in range(calls):
                start = time.perf_counter()
                run()
                block.append((time.perf_counter() - start) * 1000)
            times[name].append(block)
    return {
        name: {
            "p50": statistics.median([t for block in blocks for t in block]),
            "low": min(statistics.median(b) for b in blocks),
            "high": max(statistics.median(b) for b in blocks),
        }
        for name, blocks in times.items()
    }


def show(results: dict[str, dict], unit: str = "ms", base: str | None = None) -> None:
    for name, r in results.items():
        ratio = f"  {r['p50'] / results[base]['p50']:.2f}x" if base else ""
        print(f"  {name:<58} {r['p50']:8.2f} {unit} [{r['low']:.2f}, {r['high']:.2f}]{ratio}")


def make_artifact(out: Path, name: str, size: int, normalization: InputNormalization) -> Path:
    hyperparameters = {"conv_channels": 32, "weights": "random"}
    torch.manual_seed(0)
    built = build_model(name, len(CLASSES), hyperparameters, image_size=size)
    meta = ArtifactMeta(name, CLASSES, size, normalization.to_dict(), hyperparameters, "random")
    return save_artifact(out, built.model, meta)


def original_forward(model: torch.nn.Module, x: torch.Tensor) -> Callable[[], object]:
    def run() -> object:
        with torch.no_grad():
            return model(x)

    return run


def cycling(predict: Callable[[str], object], paths: list[str]) -> Callable[[], object]:
    """One image per call, a different file each time (as a server sees them)."""
    state = {"i": 0}

    def run() -> object:
        state["i"] += 1
        return predict(paths[state["i"] % len(paths)])

    return run


def bench_model(name: str, size: int, normalization, paths: list[str], tmp: Path, args, headline: bool):
    artifact = make_artifact(tmp / name, name, size, normalization)
    start = time.perf_counter()
    export_onnx(artifact)
    export_s = time.perf_counter() - start
    start = time.perf_counter()
    onnx = Predictor.from_artifact(artifact)
    onnx.predict(paths[0])
    cold_ms = (time.perf_counter() - start) * 1000
    eager = Predictor.from_artifact(artifact, backend="torch")
    assert (onnx.backend, eager.backend) == ("onnxruntime", "torch")
    # The original's model: the same weights in a plain eval-mode module, contiguous layout.
    original = build_model(name, len(CLASSES), {"conv_channels": 32, "weights": "random"}, image_size=size)
    original.model.load_state_dict(eager.model.state_dict())
    original_model = original.model.eval()
    x = torch.randn(1, normalization.channels, size, size)
    print(f"\n{name} {size} px: export {export_s:.1f} s; cold load + first image (ONNX) {cold_ms:.0f} ms")

    print("warm single image, p50 ms [round-median range]:")
    single = interleaved(
        {
            "original: bare eval forward of a ready tensor": original_forward(original_model, x),
            "ours: predict(file), ONNX Runtime": cycling(onnx.predict, paths),
            "ours: predict(file), PyTorch eager (no export)": cycling(eager.predict, paths),
        },
        args.rounds,
        args.calls,
    )
    base = "original: bare eval forward of a ready tensor"
    show(single, base=base)

    print("what each step buys (forward of a ready tensor unless said):")
    session = open_session(artifact / "model.onnx")
    cl_model, cl_x = eager.model, x.contiguous(memory_format=torch.channels_last)

    def inference_mode_forward() -> object:
        with torch.inference_mode():
            return original_model(x)

    def channels_last_forward() -> object:
        with torch.inference_mode():
            return cl_model(cl_x)

    def preprocessing(path: str) -> object:
        return onnx.model_input([load_grayscale_or_raise(path)])

    steps = interleaved(
        {
            base: original_forward(original_model, x),
            "+ inference_mode": inference_mode_forward,
            "+ channels_last (the eager backend)": channels_last_forward,
            "ONNX Runtime (the exported backend)": lambda: session_run(session, x.numpy()),
            "decode + resize + normalise a 256x256 JPEG (both backends)": cycling(preprocessing, paths),
        },
        max(3, args.rounds // 2),
        args.calls,
    )
    show(steps, base=base)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    one = open_session(artifact / "model.onnx")
    one_thread = interleaved(
        {
            "1 thread: channels_last": channels_last_forward,
            "1 thread: ONNX Runtime": lambda: session_run(one, x.numpy()),
        },
        3,
        args.calls,
    )
    torch.set_num_threads(threads)
    show(one_thread)

    batch_paths = (paths * 2)[:32]
    xb = torch.randn(32, normalization.channels, size, size)
    batch = interleaved(
        {
            "original: bare forward, ready batch of 32": original_forward(original_model, xb),
            "ours: predict_batch(32 files), ONNX Runtime": lambda: onnx.predict_batch(batch_paths),
            "ours: predict_batch(32 files), PyTorch eager": lambda: eager.predict_batch(batch_paths),
        },
        3,
        1,
    )
    per_s = {k: 32_000 / v["p50"] for k, v in batch.items()}
    print("batch of 32, images/s: " + ", ".join(f"{k} {v:.0f}" for k, v in per_s.items()))
    if headline:
        original_ms = single[base]["p50"]
        figure = "CNN c=32 224 px warm single-image predict p50"
        record(
            figure,
            round(original_ms, 2),
            round(single["ours: predict(file), ONNX Runtime"]["p50"], 2),
            "ms",
            target="<= 0.6",
            note="ours: Predictor.predict from a JPEG (decode + preprocessing) with the ONNX export; "
            "original: bare no_grad forward of a ready tensor; interleaved, same process",
        )
        record(
            f"{figure}, PyTorch backend (no export)",
            round(original_ms, 2),
            round(single["ours: predict(file), PyTorch eager (no export)"]["p50"], 2),
            "ms",
            note="eager channels_last: a model folder without an export (production_model exports itself)",
        )
        record(
            "CNN c=32 224 px batch-of-32 predict throughput",
            round(per_s["original: bare forward, ready batch of 32"], 1),
            round(per_s["ours: predict_batch(32 files), ONNX Runtime"], 1),
            "img/s",
            note="ours from files incl. decode + preprocessing, ONNX Runtime; original a ready tensor",
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        generate_demo_dataset(tmp / "data", scale=0.05, seed=0)
        manifest = discover_images(tmp / "data", DEFAULT_CLASS_NAMES, DEFAULT_SUBJECT_REGEX).manifest
        paths = manifest[manifest["size_bytes"] > 2000]["path"].head(16).tolist()  # not the bad files
        print(f"{len(paths)} demo JPEGs, {torch.get_num_threads()} torch threads, torch {torch.__version__}")
        bench_model("neuroflux_cnn", 224, InputNormalization("per_image", 3), paths, tmp, args, headline=True)
        bench_model("resnet18_gray", 64, InputNormalization("per_image", 1), paths, tmp, args, headline=False)


if __name__ == "__main__":
    main()
