"""Synthetic demo dataset: layout, naming, subject structure, determinism and refusal to mix."""

from __future__ import annotations

import io
import re
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from neuroflux_lib.data.broken import MIN_SIDE_PX
from neuroflux_lib.demo.generator import (
    CLASS_COUNTS,
    FILENAME_REGEX,
    SEQUENCE_NAMES,
    DemoSummary,
    ImageSpec,
    class_counts,
    generate_demo_dataset,
    load_anatomy,
    plan_dataset,
    render_file,
)
from neuroflux_lib.errors import ConfigError

SCALE, SIZE, SEED = 0.05, 32, 0
# Written out independently of the module so a change to its regex cannot hide a naming bug.
NAME_RE = re.compile(
    r"^neuroflux_(\d{3}_S_\d{4})_MR_[A-Za-z0-9_\-]*?_+(?:br_)?raw_\d{17}_\d+_S\d+_I(\d+)\.jpg$"
)
# How the real data's acquisition fields are read (the measurement tool's regex): site, sequence, year.
REAL_META_RE = re.compile(r"(\d{3})_S_(\d{4})_MR_(.*?)_+(?:br_)?raw_(\d{4})")
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
    assert sum((s.width, s.height) == (64, 64) for s in plan_dataset(scale=1.0, seed=SEED)) == 2
    assert min(min(s.width, s.height) for s in specs if s.bad != "tiny") >= MIN_SIDE_PX
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


def _early_share(specs: list[ImageSpec], label: str) -> float:
    """Share of a class's subjects scanned in 2015-2016 (real data: EO 3 %, IPTE 62 % of images)."""
    years = {s.subject_id: int(REAL_META_RE.search(s.rel_path).group(4)) for s in specs if s.label == label}
    return float(np.mean([year <= 2016 for year in years.values()]))


def test_scan_year_follows_the_class_with_confound_and_not_without(full_plan: list[ImageSpec]) -> None:
    assert _early_share(full_plan, "EO") < 0.1 and _early_share(full_plan, "IPTE") > 0.45
    independent = plan_dataset(scale=1.0, seed=SEED, image_size=SIZE, confound=0.0)
    for label in ("EO", "IPTE"):
        assert 0.12 < _early_share(independent, label) < 0.36
    with pytest.raises(ConfigError, match="confound"):
        plan_dataset(scale=SCALE, seed=SEED, image_size=SIZE, confound=1.5)


def test_confound_changes_file_names_never_pixels() -> None:
    confounded = plan_dataset(scale=SCALE, seed=SEED, image_size=SIZE, confound=1.0)
    independent = plan_dataset(scale=SCALE, seed=SEED, image_size=SIZE, confound=0.0)
    assert [s.rel_path for s in confounded] != [s.rel_path for s in independent]
    anatomy = load_anatomy()
    for a, b in zip(confounded, independent, strict=True):
        assert (a.label, a.width, a.height, a.bad, a.protocol) == (
            b.label,
            b.width,
            b.height,
            b.bad,
            b.protocol,
        )
        assert render_file(a, anatomy) == render_file(b, anatomy)


def test_names_carry_real_sequence_variants_and_separators(full_plan: list[ImageSpec]) -> None:
    known = {name for names in SEQUENCE_NAMES.values() for name, _ in names}
    sequences = Counter(REAL_META_RE.search(s.rel_path).group(3) for s in full_plan)
    assert set(sequences) <= known and sequences.most_common(1)[0][0].lower().startswith(
        ("axial_t2", "ax_t2")
    )
    assert "" in sequences and "Axial_FLAIR" in sequences and "Axial_PASL" in sequences
    assert {"__br_raw_", "_br_raw_", "__raw_"} <= {
        m.group(0) for s in full_plan for m in [re.search(r"_+(br_)?raw_", s.rel_path)]
    }
    assert any("_MR__br_raw_" in s.rel_path for s in full_plan)  # no sequence, as in the real data

    def fat_sat_share(labels: set[str]) -> float:
        return float(np.mean(["Fat_Sat" in s.sequence for s in full_plan if s.label in labels]))

    assert fat_sat_share({"IPTE"}) > 2 * fat_sat_share(set(CLASS_COUNTS) - {"IPTE"})


def test_a_tenth_of_sessions_use_a_brighter_protocol_in_every_class(full_plan: list[ImageSpec]) -> None:
    assert 0.07 < np.mean([s.protocol == "bright" for s in full_plan]) < 0.14
    for label in CLASS_COUNTS:  # drawn per session whatever the class (IO has only ~50 sessions)
        share = np.mean([s.protocol == "bright" for s in full_plan if s.label == label])
        assert 0.03 < share < 0.3, (label, share)
    bright = next(s for s in full_plan if s.protocol == "bright" and not s.bad)
    standard = next(s for s in full_plan if s.protocol == "standard" and s.subject_id != bright.subject_id)
    assert bright.zoom > 1.1 and standard.zoom <= 1.1


def test_duplicates_are_copies_within_one_subject(full_plan: list[ImageSpec]) -> None:
    by_path = {s.rel_path: s for s in full_plan}
    copies = [s for s in full_plan if s.duplicate_of]
    assert Counter(s.duplicate_kind for s in copies) == {"exact": 6, "reencoded": 6}
    anatomy = load_anatomy()
    for copy in copies:
        original = by_path[copy.duplicate_of]
        assert (copy.subject_id, copy.label, copy.bad, original.bad) == (
            original.subject_id,
            original.label,
            None,
            None,
        )
        same_bytes = render_file(copy, anatomy) == render_file(original, anatomy)
        assert same_bytes == (copy.duplicate_kind == "exact")
        assert copy.quality < original.quality or copy.duplicate_kind == "exact"


def test_images_below_the_broken_image_size_are_refused() -> None:
    with pytest.raises(ConfigError, match="image_size must be >= 32"):
        plan_dataset(scale=SCALE, image_size=24)
