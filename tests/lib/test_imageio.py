"""The corrupt-file zoo: every bad file gets one clear reason; good files keep their own statistics."""

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from neuroflux_lib.data.imageio import (
    ImageLoadError,
    LoadStatus,
    decode_grayscale,
    load_grayscale,
    load_grayscale_or_raise,
)
from neuroflux_lib.data.quality import compute_quality, image_statistics
from tests.factories import blob_image, write_gray


def make_zoo(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    good = blob_image(48, seed=1)
    paths = {}
    paths["empty"] = folder / "empty.jpg"
    paths["empty"].write_bytes(b"")
    full = write_gray(folder / "full.jpg", good).read_bytes()
    paths["truncated"] = folder / "truncated.jpg"
    paths["truncated"].write_bytes(full[: len(full) // 2])
    paths["text"] = folder / "text.jpg"
    paths["text"].write_text("this is not an image\n" * 10)
    paths["cmyk"] = folder / "cmyk.jpg"
    Image.fromarray(np.dstack([good] * 3)).convert("CMYK").save(paths["cmyk"])
    paths["16bit"] = folder / "deep.png"
    Image.fromarray(good.astype(np.uint16) * 200).save(paths["16bit"])
    assert Image.open(paths["16bit"]).mode.startswith("I")
    paths["alpha"] = folder / "alpha.png"
    Image.fromarray(good).convert("LA").save(paths["alpha"])
    paths["palette"] = folder / "palette.png"
    Image.fromarray(np.dstack([good] * 3)).convert("P").save(paths["palette"])
    paths["bomb"] = folder / "bomb.png"
    Image.new("L", (3000, 3000)).save(paths["bomb"])
    return paths


@pytest.fixture
def zoo(tmp_path: Path) -> dict[str, Path]:
    return make_zoo(tmp_path / "zoo")


EXPECTED = {
    "empty": LoadStatus.EMPTY_FILE,
    "truncated": LoadStatus.TRUNCATED,
    "text": LoadStatus.NOT_AN_IMAGE,
    "cmyk": LoadStatus.CONVERTED,
    "16bit": LoadStatus.CONVERTED,
    "alpha": LoadStatus.CONVERTED,
    "palette": LoadStatus.CONVERTED,
    "bomb": LoadStatus.TOO_LARGE,
}


def test_each_bad_file_gets_its_own_reason(zoo):
    results = {name: load_grayscale(path, max_pixels=1_000_000) for name, path in zoo.items()}
    for name, result in results.items():
        assert result.status == EXPECTED[name], (name, result)
        assert result.reason, name
        assert result.path == str(zoo[name])
    reasons = [results[name].reason for name in ("cmyk", "16bit", "alpha", "palette")]
    assert len(set(reasons)) == 4, "each conversion names what it did"
    for name in ("cmyk", "16bit", "alpha", "palette"):
        array = results[name].array
        assert array is not None and array.dtype == np.uint8 and array.shape == (48, 48)


def test_sixteen_bit_keeps_its_contrast(zoo):
    array = load_grayscale(zoo["16bit"]).array
    assert array.min() == 0 and array.max() == 255


def test_missing_file_and_raise_variant(tmp_path, zoo):
    assert load_grayscale(tmp_path / "absent.png").status == LoadStatus.MISSING
    with pytest.raises(ImageLoadError, match=r"text\.jpg.*not a recognised image"):
        load_grayscale_or_raise(zoo["text"])


def test_exif_rotation_is_applied(tmp_path):
    tall = np.zeros((40, 20), np.uint8)
    tall[:5] = 255  # bright band on top
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    Image.fromarray(tall).save(path, exif=exif, quality=100)
    array = load_grayscale(path).array
    assert array.shape == (20, 40)
    assert array[:, -5:].mean() > 200, "top band must end up on the right"


def test_bad_files_never_shift_statistics(tmp_path, zoo):
    """Interleave good and bad files; every good file's row holds exactly its own statistics."""
    goods = [write_gray(tmp_path / "good" / f"g{i}.png", blob_image(48, seed=10 + i)) for i in range(6)]
    bad = [zoo[name] for name in ("empty", "truncated", "text", "bomb")]
    order = [str(p) for pair in zip(goods, bad + bad[:2], strict=True) for p in pair]

    table = compute_quality(order, workers=2, max_pixels=1_000_000, min_images_per_worker=1)

    assert list(table.index) == order
    for path in goods:
        expected = image_statistics(np.asarray(Image.open(path)))
        row = table.loc[str(path)]
        assert row["readable"]
        assert row["intensity"] == pytest.approx(expected["intensity"])
        assert row["entropy"] == pytest.approx(expected["entropy"])
    for path in bad:
        assert not table.loc[[str(path)], "readable"].any()
        assert table.loc[[str(path)], "intensity"].isna().all()


def _pillow_decode(data: bytes) -> np.ndarray | None:
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            return np.asarray(image)
    except OSError:
        return None


@pytest.mark.parametrize(
    "save", [{"quality": 10}, {"quality": 95}, {"progressive": True}, {"optimize": True}]
)
def test_grayscale_jpeg_pixels_are_pillows(tmp_path, save):
    """Plain grayscale JPEGs take the fast decoder; the pixels must be exactly Pillow's."""
    path = write_gray(tmp_path / "slice.jpg", blob_image(61, seed=4), **save)
    result = load_grayscale(path)
    assert result.status == LoadStatus.OK
    assert np.array_equal(result.array, _pillow_decode(path.read_bytes()))


def test_damaged_jpeg_keeps_pillows_verdict(tmp_path):
    """Every single-byte corruption of a small JPEG: readable exactly when Pillow reads it, same pixels."""
    data = write_gray(tmp_path / "slice.jpg", blob_image(48, seed=1)).read_bytes()
    for position in range(len(data)):
        for value in (0x00, 0xFF, 0x5A):
            damaged = bytearray(data)
            damaged[position] = value
            expected = _pillow_decode(bytes(damaged))
            array = decode_grayscale(bytes(damaged), "damaged.jpg").array
            if expected is None:
                assert array is None, (position, value)
            else:
                assert array is not None and np.array_equal(array, expected), (position, value)
