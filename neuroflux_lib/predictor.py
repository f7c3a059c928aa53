"""Prediction from a model artifact alone: no dataset, no augmentation, no training code.

The preprocessing (resize, normalisation: per-image or fixed mean/std, channels, class order) is read
from `model.json`, so it is the same as in training by construction.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from neuroflux_lib.artifacts import ArtifactMeta, load_artifact
from neuroflux_lib.data.imageio import ImageLoadError, decode_grayscale, load_grayscale_or_raise
from neuroflux_lib.data.transforms import image_transform
from neuroflux_lib.errors import ImageError

ImageInput = str | Path | np.ndarray | Image.Image
#: Images decoded and predicted at a time by `predict_stream` (memory stays at one batch).
DEFAULT_BATCH = 64


@dataclass(frozen=True)
class Prediction:
    label: str
    probabilities: dict[str, float]
    source: str

    @property
    def confidence(self) -> float:
        return self.probabilities[self.label]


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


class Predictor:
    """`Predictor.from_artifact(path).predict("scan.jpg")`."""

    def __init__(self, model: torch.nn.Module, meta: ArtifactMeta, device: str = "cpu"):
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.meta = meta
        self.transform = image_transform(meta.image_size)
        self.normalization = meta.input_normalization

    @classmethod
    def from_artifact(cls, path: str | Path, device: str = "cpu") -> Predictor:
        model, meta = load_artifact(path)
        return cls(model, meta, device)

    @property
    def class_names(self) -> list[str]:
        return list(self.meta.class_names)

    @torch.inference_mode()
    def predict_batch(self, images: Sequence[ImageInput]) -> list[Prediction]:
        """Every image is decoded first, so one bad file fails the call before any work is done."""
        decoded = [_to_gray(image) for image in images]
        if not decoded:
            return []
        batch = torch.stack([self.transform(torch.from_numpy(array).unsqueeze(0)) for array, _ in decoded])
        inputs = self.normalization(batch.to(self.device))
        probabilities = torch.softmax(self.model(inputs).float(), dim=1).cpu().numpy()
        names = self.class_names
        return [
            Prediction(names[int(p.argmax())], {n: float(v) for n, v in zip(names, p, strict=True)}, source)
            for p, (_, source) in zip(probabilities, decoded, strict=True)
        ]

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
