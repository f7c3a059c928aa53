"""Synthetic demo dataset: layout, naming, subject structure, determinism and refusal to mix."""

from __future__ import annotations

import io
import re
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from neuroflux_lib.demo.generator import (
    CLASS_COUNTS,
    FILENAME_REGEX,
    DemoSummary,
    ImageSpec,
    class_counts,
    generate_demo_dataset,
    load_anatomy,
    plan_dataset,
    render_file,
)

SCALE, SIZE, SEED = 0.05, 32, 0
# Written out independently of the module so a change to its regex cannot hide a naming bug.
NAME_RE = re.compile(r"^neuroflux_(\d{3}_S_\d{4})_MR_[A-Za-z0-9_\-]+?__br_raw_\d{17}_\d+_S\d+_I(\d+)\.jpg$")
SUBJECT_RE = re.compile(r"^\d{3}_S_\d{4}$")


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*.jpg"))}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoSummary:
    out = tmp_path_factory.mktemp("demo") / "nested" / "data"  # missing parents are created
    return generate_demo_dataset(out, scale=SCALE, seed=SEED, image_size=SIZE, workers=2)


@pytest.fixture(scope="module")
def full_plan() -> list[ImageSpec]:
    return plan_dataset(scale=1.0, seed=SEED, image_size=SIZE)


def test_counts_follow_formula(demo: DemoSummary) -> None:
    expected = {"PTE": 29, "LO": 12, "EO": 12, "IPTE": 9, "IO": 4}
    assert class_counts(SCALE) == expected
    assert demo.counts == expected
    on_disk = {c: len(list((demo.out_dir / c).glob("*.jpg"))) for c in CLASS_COUNTS}
    assert on_disk == expected
    assert class_counts(0.001) == dict.fromkeys(CLASS_COUNTS, 2)
    assert class_counts(1.0) == CLASS_COUNTS


def test_names_and_subject_ids(demo: DemoSummary) -> None:
    names = [p.name for p in demo.out_dir.rglob("*.jpg")]
    image_ids = []
    for name in names:
        match = NAME_RE.match(name)
        assert match, name
        assert SUBJECT_RE.match(match.group(1))
        assert FILENAME_REGEX.match(name)["subject"] == match.group(1)
        image_ids.append(match.group(2))
    assert len(set(image_ids)) == len(names)


def test_subjects_stay_in_one_class_and_some_repeat(demo: DemoSummary) -> None:
    classes_of: dict[str, set[str]] = defaultdict(set)
    images_of: Counter[str] = Counter()
    for path in demo.out_dir.rglob("*.jpg"):
        subject = NAME_RE.match(path.name).group(1)
        classes_of[subject].add(path.parent.name)
        images_of[subject] += 1
    assert all(len(classes) == 1 for classes in classes_of.values())
    assert demo.n_subjects == len(classes_of)
    assert any(n > 1 for n in images_of.values())
    assert max(images_of.values()) <= 7


def test_images_are_grayscale_jpegs_of_planned_size(demo: DemoSummary) -> None:
    specs = plan_dataset(scale=SCALE, seed=SEED, image_size=SIZE)
    assert sorted(s.rel_path for s in specs) == sorted(_files(demo.out_dir))
    for spec in specs:
        with Image.open(demo.out_dir / spec.rel_path) as image:
            assert (image.format, image.mode) == ("JPEG", "L")
            assert image.size == (spec.width, spec.height)
    sizes = Counter((s.width, s.height) for s in specs)
    assert sizes.most_common(1)[0][0] == (SIZE, SIZE)
    assert len(sizes) > 1  # odd sizes are present even at small scale
    assert demo.n_bad == sum(s.bad is not None for s in specs) >= 1


def test_same_seed_same_bytes_across_worker_counts(demo: DemoSummary, tmp_path: Path) -> None:
    again = generate_demo_dataset(tmp_path / "again", scale=SCALE, seed=SEED, image_size=SIZE, workers=1)
    assert _files(again.out_dir) == _files(demo.out_dir)


def test_other_seed_or_difficulty_changes_output(demo: DemoSummary, tmp_path: Path) -> None:
    other = generate_demo_dataset(tmp_path / "other", scale=SCALE, seed=SEED + 1, image_size=SIZE, workers=1)
    assert set(_files(other.out_dir)).isdisjoint(_files(demo.out_dir))
    base = plan_dataset(scale=SCALE, seed=SEED, image_size=SIZE)
    harder = plan_dataset(scale=SCALE, seed=SEED, image_size=SIZE, difficulty=3.0)
    assert [s.rel_path for s in base] == [s.rel_path for s in harder]  # same files, weaker signal
    pte = next(i for i, s in enumerate(base) if s.label == "PTE" and s.bad is None)
    anatomy = load_anatomy()
    assert render_file(base[pte], anatomy) != render_file(harder[pte], anatomy)


def test_refuses_directory_with_images(demo: DemoSummary, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="already contains"):
        generate_demo_dataset(demo.out_dir, scale=SCALE, image_size=SIZE, workers=1)
    stray = tmp_path / "mixed" / "PTE" / "old.JPG"
    stray.parent.mkdir(parents=True)
    stray.write_bytes(b"\xff\xd8")
    with pytest.raises(ValueError, match="refusing to mix"):
        generate_demo_dataset(tmp_path / "mixed", scale=SCALE, image_size=SIZE, workers=1)
    assert [p.name for p in (tmp_path / "mixed").rglob("*") if p.is_file()] == ["old.JPG"]


def test_full_scale_plan_shape(full_plan: list[ImageSpec]) -> None:
    specs = full_plan
    assert Counter(s.label for s in specs) == CLASS_COUNTS
    per_subject = Counter(s.subject_id for s in specs)
    assert 700 <= len(per_subject) <= 900
    assert 250 <= sum(n > 1 for n in per_subject.values()) <= 350
    bad = [s for s in specs if s.bad]
    assert [s.bad for s in bad].count("truncated") == 1
    assert 0.005 <= len(bad) / len(specs) <= 0.02
    assert len({s.label for s in bad}) == len(CLASS_COUNTS)
    assert sum((s.width, s.height) == (SIZE // 4, SIZE // 4) for s in specs) == 2
    assert not any(s.bad == "truncated" for s in plan_dataset(scale=0.3, seed=SEED, image_size=SIZE))


def test_broken_files_are_broken(full_plan: list[ImageSpec]) -> None:
    specs = full_plan
    anatomy = load_anatomy()
    truncated = next(s for s in specs if s.bad == "truncated")
    with pytest.raises(OSError), Image.open(io.BytesIO(render_file(truncated, anatomy))) as image:
        image.load()
    tiny = next(s for s in specs if s.bad == "tiny")
    assert len(render_file(tiny, anatomy)) < 1024
    blank = next(s for s in specs if s.bad == "blank")
    with Image.open(io.BytesIO(render_file(blank, anatomy))) as image:
        assert np.asarray(image).std() < 2


def test_class_signal_orders_classes_and_weakens_with_difficulty(full_plan: list[ImageSpec]) -> None:
    def stats(difficulty: float) -> tuple[dict[str, float], dict[str, float]]:
        specs = full_plan if difficulty == 1.0 else plan_dataset(1.0, SEED, difficulty, SIZE)
        severity = {c: float(np.mean([s.severity for s in specs if s.label == c])) for c in CLASS_COUNTS}
        lesions = {c: float(np.mean([s.lesion_rate for s in specs if s.label == c])) for c in CLASS_COUNTS}
        return severity, lesions

    severity, lesions = stats(1.0)
    assert severity["EO"] < severity["IO"] < severity["LO"]
    assert lesions["PTE"] > lesions["IPTE"] > 2 * max(lesions["EO"], lesions["IO"], lesions["LO"])
    harder, _ = stats(2.0)
    assert harder["LO"] - harder["EO"] < 0.75 * (severity["LO"] - severity["EO"])
