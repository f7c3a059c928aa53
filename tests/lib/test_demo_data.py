"""Synthetic demo dataset: layout, naming, subject structure, site and sequence effects on the pixels,
determinism and refusal to mix."""

from __future__ import annotations

import io
import re
from collections import Counter, defaultdict
from dataclasses import replace
from itertools import combinations
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from neuroflux_lib.data.broken import MIN_SIDE_PX
from neuroflux_lib.demo.generator import (
    BRIGHT_SHARE,
    CLASS_COUNTS,
    FAMILY_PRESETS,
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


# What the acquisition named in the file name sets in the pixels: the site's scanner characteristics and
# the sequence family's contrast preset. Everything else about an image must not depend on `confound`.
ACQUISITION_FIELDS = ("gain", "bias", "gamma", "contrast", "scalp", "preset", "family")


def test_confound_changes_names_site_and_contrast_only() -> None:
    confounded = plan_dataset(scale=SCALE, seed=SEED, image_size=SIZE, confound=1.0)
    independent = plan_dataset(scale=SCALE, seed=SEED, image_size=SIZE, confound=0.0)
    assert [s.rel_path for s in confounded] != [s.rel_path for s in independent]
    assert any(a.gamma != b.gamma for a, b in zip(confounded, independent, strict=True))  # other sites
    anatomy = load_anatomy()
    for a, b in zip(confounded, independent, strict=True):
        assert (a.label, a.width, a.height, a.bad, a.protocol, a.severity, a.z_mm, a.rotation_deg) == (
            b.label,
            b.width,
            b.height,
            b.bad,
            b.protocol,
            b.severity,
            b.z_mm,
            b.rotation_deg,
        )
        # Given a's site and contrast, b renders to a's bytes: nothing else differs.
        b_like_a = replace(b, **{field: getattr(a, field) for field in ACQUISITION_FIELDS})
        assert render_file(b_like_a, anatomy) == render_file(a, anatomy)


def _site(spec: ImageSpec) -> str:
    return spec.subject_id[:3]


def test_images_of_one_site_share_its_scanner_characteristics(full_plan: list[ImageSpec]) -> None:
    specs = [s for s in full_plan if s.protocol == "standard" and s.bad is None]
    gammas: dict[str, set[float]] = defaultdict(set)
    for spec in specs:
        gammas[_site(spec)].add(spec.gamma)
    assert all(len(values) == 1 for values in gammas.values())  # the site's contrast, whoever is scanned
    assert len({g for values in gammas.values() for g in values}) == len(gammas) >= 40
    assert np.std([g for values in gammas.values() for g in values]) > 0.05

    # Gain and bias-field size: images of two subjects are closer when they come from the same site.
    first = {}
    for spec in specs:
        first.setdefault(spec.subject_id, spec)  # one image per subject

    def field_size(spec: ImageSpec) -> float:
        return float(np.sqrt(np.mean(np.square(spec.bias))))

    gain, field = defaultdict(list), defaultdict(list)
    for a, b in combinations(list(first.values()), 2):
        same = _site(a) == _site(b)
        gain[same].append(abs(np.log(a.gain / b.gain)))
        field[same].append(abs(np.log(field_size(a) / field_size(b))))
    assert len(gain[True]) > 1000
    assert np.mean(gain[True]) < 0.8 * np.mean(gain[False])
    assert np.mean(field[True]) < 0.92 * np.mean(field[False])  # ~0.8 with site strengths, ~1.0 without

    # The site's gamma reaches the pixels: a higher gamma darkens the tissue (signal below 1).
    anatomy = load_anatomy()
    spec = replace(specs[0], width=64, height=64)
    means = []
    for gamma in (0.8, 1.0, 1.25):
        with Image.open(io.BytesIO(render_file(replace(spec, gamma=gamma), anatomy))) as image:
            means.append(float(np.asarray(image).mean()))
    assert means[0] > means[1] + 2 > means[2] + 4


def test_sequence_family_sets_the_contrast_preset(full_plan: list[ImageSpec]) -> None:
    family_of = {name: family for family, names in SEQUENCE_NAMES.items() for name, _ in names}
    for spec in full_plan:
        assert spec.family == family_of[spec.sequence]
        assert spec.preset in {preset for preset, _ in FAMILY_PRESETS[spec.family]}
    presets = Counter(s.preset for s in full_plan if s.family == "none")
    assert len(presets) > 1  # an unnamed series can be any T2-type protocol
    fat_sat = [s for s in full_plan if s.family == "fat_sat"]
    assert fat_sat and all(s.scalp < 0.5 for s in fat_sat)  # fat saturation darkens the scalp ring

    # With the confound the pixels of IPTE are fat-saturated more often; without it, no class is.
    def share(specs: list[ImageSpec], labels: set[str]) -> float:
        return float(np.mean([s.preset == "tse_fat_sat" for s in specs if s.label in labels]))

    others = set(CLASS_COUNTS) - {"IPTE"}
    assert share(full_plan, {"IPTE"}) > 2 * share(full_plan, others)
    independent = plan_dataset(scale=1.0, seed=SEED, image_size=SIZE, confound=0.0)
    assert share(independent, {"IPTE"}) < 2 * share(independent, others)


def _centre_to_head(spec: ImageSpec, anatomy: object, size: int = 64) -> float:
    """Mean of the central eighth of the image (ventricles, deep grey matter) over the head's mean."""
    data = render_file(replace(spec, width=size, height=size), anatomy)
    with Image.open(io.BytesIO(data)) as image:
        pixels = np.asarray(image, dtype=np.float64)
    centre, half = size // 2, size // 8
    return float(
        pixels[centre - half : centre + half, centre - half : centre + half].mean()
        / pixels[pixels > 20].mean()
    )


def test_flair_named_images_have_darker_ventricles_than_t2star_named(full_plan: list[ImageSpec]) -> None:
    standard = [s for s in full_plan if s.protocol == "standard" and s.bad is None and s.duplicate_of is None]
    flair = [s for s in standard if "FLAIR" in s.sequence][:8]
    t2star = [s for s in standard if "STAR" in s.sequence.upper()][:8]
    assert len(flair) == len(t2star) == 8
    anatomy = load_anatomy()
    flair_ratio = np.mean([_centre_to_head(s, anatomy) for s in flair])
    t2star_ratio = np.mean([_centre_to_head(s, anatomy) for s in t2star])
    assert flair_ratio < t2star_ratio - 0.15, (flair_ratio, t2star_ratio)


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


def test_an_eighth_of_sessions_use_a_brighter_protocol_in_every_class(full_plan: list[ImageSpec]) -> None:
    protocol_of = {FILENAME_REGEX.match(Path(s.rel_path).name)["series"]: s.protocol for s in full_plan}
    bright_sessions = sum(protocol == "bright" for protocol in protocol_of.values())
    assert bright_sessions == round(BRIGHT_SHARE * len(protocol_of))  # exactly, so seeds agree
    assert 0.09 < np.mean([s.protocol == "bright" for s in full_plan]) < 0.15
    for label in CLASS_COUNTS:  # chosen per session whatever the class (IO has only ~50 sessions)
        share = np.mean([s.protocol == "bright" for s in full_plan if s.label == label])
        assert 0.03 < share < 0.3, (label, share)
    bright = next(s for s in full_plan if s.protocol == "bright" and not s.bad)
    standard = next(s for s in full_plan if s.protocol == "standard" and s.subject_id != bright.subject_id)
    assert bright.zoom > 1.1 and standard.zoom <= 1.1


def test_bright_images_are_bright_but_not_saturated(full_plan: list[ImageSpec]) -> None:
    """The export roll-off keeps bright sites and sessions below the broken-image saturation rule."""
    anatomy = load_anatomy()
    bright = [s for s in full_plan if s.protocol == "bright" and s.bad is None]
    brightest = sorted(bright, key=lambda s: s.gain, reverse=True)[:5]
    standard = [s for s in full_plan if s.protocol == "standard" and s.bad is None][:5]

    def pixels(spec: ImageSpec) -> np.ndarray:
        data = render_file(replace(spec, width=64, height=64), anatomy)
        with Image.open(io.BytesIO(data)) as image:
            return np.asarray(image)

    for spec in brightest:
        assert (pixels(spec) >= 250).mean() < 0.07, spec.rel_path
    assert np.mean([pixels(s).mean() for s in brightest]) > 1.4 * np.mean(
        [pixels(s).mean() for s in standard]
    )
    overexposed = next(s for s in full_plan if s.bad == "overexposed")
    assert (pixels(overexposed) >= 250).mean() > 0.1


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
