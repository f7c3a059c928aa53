"""Prediction from a model artifact alone: no dataset, no augmentation, no training code.

The preprocessing (resize, normalisation: per-image or fixed mean/std, channels, class order) is read
from `model.json`, so it is the same as in training by construction. The model runs in ONNX Runtime when
the artifact holds a current export (`neuroflux export --format onnx`: its forward 2.7-4x faster than eager
PyTorch's on this project's 2-core CPU), else as the eager PyTorch model in channels_last (1.25-2x faster
than the default layout there); benchmarks/bench_predict.py measures both.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from neuroflux_lib.data.imageio import ImageLoadError, decode_grayscale, load_grayscale_or_raise
from neuroflux_lib.data.transforms import image_transform
from neuroflux_lib.errors import ImageError
from neuroflux_lib.evaluation.calibration import calibrated_probabilities
from neuroflux_lib.serving.artifacts import ArtifactMeta, load_artifact
from neuroflux_lib.serving.export import onnx_session, session_run

ImageInput = str | Path | np.ndarray | Image.Image
#: Images decoded and predicted at a time by `predict_stream` (memory stays at one batch).
DEFAULT_BATCH = 64
#: "auto": ONNX Runtime when the artifact has a current `model.onnx` and the device is the CPU, else PyTorch.
Backend = Literal["auto", "torch", "onnx"]


@dataclass(frozen=True)
class Prediction:
    label: str
    probabilities: dict[str, float]
    source: str
    # Probabilities are softmax(logits / temperature); calibrated: T was fitted on validation (model.json).
    calibrated: bool = False
    temperature: float = 1.0

    @property
    def confidence(self) -> float:
        return self.probabilities[self.label]

    @property
    def probability_kind(self) -> str:
        """What the probabilities are, in words, for every place that shows them."""
        if self.calibrated:
            return f"calibrated probabilities (temperature {self.temperature:.3g}, fitted on validation)"
        return "uncalibrated probabilities (plain softmax: the model has no fitted temperature)"


def _to_gray(image: ImageInput) -> tuple[np.ndarray, str]:
    if isinstance(image, str | Path):
        return load_grayscale_or_raise(image), str(image)
    if isinstance(image, Image.Image):
        import io

        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        result = decode_grayscale(buffer.getvalue(), "<PIL image>")
        if result.array is None:
            raise ImageLoadError(result)
        return result.array, "<PIL image>"
    array = np.asarray(image)
    if array.ndim == 3 and array.shape[-1] in (3, 4):
        array = np.asarray(Image.fromarray(array.astype(np.uint8)[..., :3]).convert("L"))
    if array.ndim != 2 or array.dtype != np.uint8:
        raise ImageError(f"expected a 2-D uint8 grayscale array, got {array.dtype} {array.shape}")
    return array, "<array>"


@contextlib.contextmanager
def _torch_threads(count: int) -> Iterator[None]:
    """PyTorch's intra-op threads set to `count` for the block (process-wide), then restored."""
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class Predictor:
    """`Predictor.from_artifact(path).predict("scan.jpg")`.

    `model` (the eager PyTorch module) is always there, also when `session` (ONNX Runtime) computes the
    predictions, for what needs gradients (`explain`)."""

    def __init__(
        self, model: torch.nn.Module, meta: ArtifactMeta, device: str = "cpu", session: Any | None = None
    ):
        self.device = torch.device(device)
        if session is not None and self.device.type != "cpu":
            raise ValueError(f"the ONNX Runtime backend runs on the CPU, not {self.device}")
        self.model = model.to(self.device, memory_format=torch.channels_last).eval()
        self.meta = meta
        self.transform = image_transform(meta.image_size)
        self.normalization = meta.input_normalization
        self.session = session

    @classmethod
    def from_artifact(cls, path: str | Path, device: str = "cpu", backend: Backend = "auto") -> Predictor:
        """`backend` "onnx" insists on the artifact's ONNX export (ArtifactError when there is none, it
        is stale or onnxruntime is missing); "torch" ignores it."""
        if backend not in ("auto", "torch", "onnx"):
            raise ValueError(f"backend must be auto, torch or onnx, got {backend!r}")
        model, meta = load_artifact(path)
        use_onnx = backend == "onnx" or (backend == "auto" and torch.device(device).type == "cpu")
        session = onnx_session(path, required=backend == "onnx") if use_onnx else None
        return cls(model, meta, device, session)

    @property
    def backend(self) -> str:
        """What computes the logits: "onnxruntime" or "torch"."""
        return "torch" if self.session is None else "onnxruntime"

    @property
    def class_names(self) -> list[str]:
        return list(self.meta.class_names)

    @torch.inference_mode()
    def predict_batch(self, images: Sequence[ImageInput]) -> list[Prediction]:
        """Every image is decoded first, so one bad file fails the call before any work is done."""
        decoded = [_to_gray(image) for image in images]
        if not decoded:
            return []
        inputs = self.model_input([array for array, _ in decoded])
        probabilities = self.probabilities(self.logits(inputs)).cpu().numpy()
        names = self.class_names
        return [
            Prediction(
                names[int(p.argmax())],
                {n: float(v) for n, v in zip(names, p, strict=True)},
                source,
                calibrated=self.meta.calibrated,
                temperature=self.meta.temperature,
            )
            for p, (_, source) in zip(probabilities, decoded, strict=True)
        ]

    def model_input(self, arrays: Sequence[np.ndarray]) -> torch.Tensor:
        """Grayscale uint8 images -> the normalised (N, C, S, S) model input on the device, each image
        resized straight into its row of one preallocated uint8 batch."""
        size = self.meta.image_size
        # With ONNX Runtime, one PyTorch thread: after a parallel op PyTorch's idle threads spin for a
        # while and took the cores from ONNX Runtime (7.5 -> 6.0 ms per 224 px image on 2 cores).
        with _torch_threads(1) if self.session is not None else contextlib.nullcontext():
            batch = torch.empty((len(arrays), 1, size, size), dtype=torch.uint8)
            for row, array in zip(batch, arrays, strict=True):
                row.copy_(self.transform(torch.from_numpy(array)))
            return self.normalization(batch.to(self.device))

    def logits(self, inputs: torch.Tensor) -> torch.Tensor:
        """(N, classes) float32 logits of a model input, from whichever backend runs the model."""
        if self.session is not None:
            return torch.from_numpy(session_run(self.session, inputs.numpy()))
        return self.model(inputs.contiguous(memory_format=torch.channels_last)).float()

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """The one place logits become probabilities, for every backend: softmax(logits / temperature)."""
        return calibrated_probabilities(logits, self.meta.temperature)

    def predict(self, image: ImageInput) -> Prediction:
        return self.predict_batch([image])[0]

    def predict_stream(
        self, images: Iterable[ImageInput], batch_size: int = DEFAULT_BATCH, progress: bool = False
    ) -> Iterator[Prediction]:
        """Predictions for any number of images in constant memory: `batch_size` images are decoded,
        predicted and released at a time. Every path is checked to exist first; a file that cannot be
        decoded stops the stream with an ImageError naming it, after the predictions before it."""
        images = list(images)
        missing = [str(i) for i in images if isinstance(i, str | Path) and not Path(i).is_file()]
        if missing:
            raise ImageError(f"{len(missing)} image file(s) not found, e.g. {missing[0]}")
        with tqdm(total=len(images), unit="img", desc="predict", disable=not progress) as bar:
            for start in range(0, len(images), batch_size):
                chunk = images[start : start + batch_size]
                yield from self.predict_batch(chunk)
                bar.update(len(chunk))

    def explain(self, image: ImageInput, method: str = "gradcam") -> tuple[Prediction, np.ndarray]:
        """The prediction (as `predict` makes it) and a Grad-CAM heatmap for its label: (H, W) of the
        decoded image, float32 in [0, 1], 1 where the evidence for the label was strongest. The model
        input is preprocessed exactly as for `predict`; `method` "gradcam" or "gradcam++"."""
        from dataclasses import replace

        from neuroflux_lib.serving.gradcam import cam_layer, class_heatmaps, resize_heatmap

        gray, source = _to_gray(image)
        prediction = replace(self.predict_batch([gray])[0], source=source)
        layer = cam_layer(self.model, self.meta.architecture)
        target = self.class_names.index(prediction.label)
        heatmap = class_heatmaps(self.model, self.model_input([gray]), layer, [target], method)
        return prediction, resize_heatmap(heatmap[0], gray.shape)
