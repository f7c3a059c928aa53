"""ONNX export of a model artifact, and the ONNX Runtime session the predictor runs it with.

On this project's 2-core CPU ONNX Runtime runs the models' forward 2.7-4x faster than eager PyTorch
(`benchmarks/bench_predict.py`), so `neuroflux export --format onnx` writes `model.onnx` beside the
weights and `Predictor.from_artifact` uses it. The file records the sha256 of the `model.safetensors` it
was exported from: an export whose weights have since changed is stale and is never run in their place.
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from neuroflux_lib.errors import ArtifactError
from neuroflux_lib.serving.artifacts import WEIGHTS_FILE, load_artifact, read_meta, weights_sha256

logger = logging.getLogger(__name__)

ONNX_FILE = "model.onnx"
#: Key of the ONNX metadata entry holding the sha256 of the weights file the export was made from.
DIGEST_KEY = "neuroflux.weights_sha256"
INPUT_NAME = "input"
OUTPUT_NAME = "logits"
#: Largest difference in logits between ONNX Runtime and eager PyTorch that an export may have.
TOLERANCE = 1e-4


def onnxruntime_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


@contextlib.contextmanager
def _quiet_exporter_logs() -> Iterator[None]:
    """The exporter's graph passes log every step at INFO; keep their warnings only."""
    loggers = [logging.getLogger(name) for name in ("onnxscript", "onnx_ir")]
    levels = [log.level for log in loggers]
    for log in loggers:
        log.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for log, level in zip(loggers, levels, strict=True):
            log.setLevel(level)


def export_onnx(artifact: str | Path) -> Path:
    """Write `<artifact>/model.onnx` (batch size free, logits out) and check that ONNX Runtime gives the
    same logits as PyTorch within `TOLERANCE` on a random batch before it replaces any earlier export."""
    artifact = Path(artifact)
    read_meta(artifact)  # says clearly when the folder is not an artifact
    digest = weights_sha256(artifact)  # before loading: weights replaced meanwhile make it stale, not wrong
    model, meta = load_artifact(artifact)
    channels, size = meta.input_normalization.channels, meta.image_size
    example = torch.zeros(2, channels, size, size)  # batch 2: an example batch of 1 would fix the size
    with warnings.catch_warnings(), _quiet_exporter_logs():
        warnings.simplefilter("ignore")  # the exporter's notes about its own internals
        program = torch.onnx.export(
            model,
            (example,),
            dynamo=True,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_shapes=({0: torch.export.Dim("batch")},),
            verbose=False,
        )
    program.model.metadata_props[DIGEST_KEY] = digest
    program.model.metadata_props["neuroflux.architecture"] = meta.architecture
    target = artifact / ONNX_FILE
    staging = target.with_name(f".{ONNX_FILE}.tmp{os.getpid()}")
    program.save(staging)
    try:
        check = torch.randn(3, channels, size, size, generator=torch.Generator().manual_seed(0))
        with torch.inference_mode():
            expected = model(check).numpy()
        got = session_run(open_session(staging), check.numpy())
        difference = float(np.abs(got - expected).max())
        if not difference <= TOLERANCE:
            raise ArtifactError(
                f"ONNX export of {artifact} differs from PyTorch by {difference:.2e} (more than "
                f"{TOLERANCE:g}): not written"
            )
        os.replace(staging, target)
    finally:
        staging.unlink(missing_ok=True)
    logger.info("exported %s (largest logit difference to PyTorch %.1e)", target, difference)
    return target


def export_for_serving(artifact: str | Path) -> str:
    """Export a folder that is about to serve (the production model), so that `load_predictor()` runs
    ONNX Runtime by default (0.51x of the original's single-image latency vs 0.63x for eager PyTorch,
    benchmarks/README.md). A failed export does not fail the promotion: the folder then serves eager
    PyTorch, and the returned line (for the UI) says why."""
    if not onnxruntime_available():
        return "PyTorch (onnxruntime is not installed, so no ONNX export)"
    try:
        export_onnx(artifact)
    except Exception as error:  # noqa: BLE001 - the exporter raises many kinds; eager PyTorch still serves
        logger.warning("ONNX export of %s failed, serving eager PyTorch: %s", artifact, error)
        return f"PyTorch (ONNX export failed: {type(error).__name__}: {str(error)[:300]})"
    return f"ONNX Runtime ({ONNX_FILE}, logits checked within {TOLERANCE:g} of PyTorch)"


def open_session(path: str | Path) -> Any:
    """An ONNX Runtime CPU session using as many threads as PyTorch does (one setting for both:
    `torch.set_num_threads` or OMP_NUM_THREADS). Its threads sleep between calls instead of spinning:
    spinning ones took the cores from the next image's preprocessing (PyTorch), which then took 45 ms
    instead of 3 ms on the 2-core machine when other processes ran too."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def session_run(session: Any, inputs: np.ndarray) -> np.ndarray:
    """Logits for a (N, C, H, W) float32 batch."""
    return session.run([OUTPUT_NAME], {INPUT_NAME: np.ascontiguousarray(inputs, dtype=np.float32)})[0]


def onnx_session(artifact: str | Path, required: bool = False) -> Any | None:
    """The artifact's ONNX Runtime session, or None when there is no usable export: no `model.onnx`,
    onnxruntime not installed, or an export of other weights (stale: logged as a warning, since the
    PyTorch fallback is slower). With `required` each of these raises ArtifactError instead."""
    artifact = Path(artifact)
    path = artifact / ONNX_FILE
    again = f"`neuroflux export --format onnx --artifact {artifact}`"
    if not path.is_file():
        problem = f"{artifact} has no {ONNX_FILE}: run {again}"
    elif not onnxruntime_available():
        problem = f"{path} needs onnxruntime, which is not installed"
    else:
        read_meta(artifact)  # the folder must still be a whole artifact
        session = open_session(path)
        if session.get_modelmeta().custom_metadata_map.get(DIGEST_KEY) == weights_sha256(artifact):
            return session
        problem = f"{path} was exported from other weights than {WEIGHTS_FILE} (stale): run {again}"
        if not required:
            logger.warning("%s; predicting with PyTorch meanwhile", problem)
    if required:
        raise ArtifactError(problem)
    return None
