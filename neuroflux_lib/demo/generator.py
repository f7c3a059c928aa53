"""Synthetic stand-in for the (unavailable) Neuroflux MRI dataset.

The real dataset is 1,296 axial T2/T2* brain slices as `<out>/<CLASS>/*.jpg`; this module writes a
dataset with the same layout, class counts, file-name scheme (subject ids, several images per
subject), odd image sizes and ~1 % broken images, so every pipeline stage can run end to end.

Anatomy comes from the MNI152 grey/white-matter templates bundled with nilearn (read from the
package, no download). Each subject gets its own slice level, and each session its head pose
(rotation, scale, translation) and Rician noise; images of one subject share the subject's anatomy
and come from one to three sessions. Two things follow the acquisition named in the file name (below):

* Scanner characteristics per site (the 3-digit site id of the subject id): a gain (log-normal,
  ``SITE_GAIN_SD``), a contrast gamma applied to the tissue signal (log-normal, ``SITE_GAMMA_SD``) and
  a bias-field strength (``SITE_BIAS_STRENGTH``, a factor on each session's smooth multiplicative
  field), drawn once per site from the seed. Each session adds its own gain (``SESSION_GAIN``) and
  field (``SESSION_BIAS_SD``), narrower than when they were the only source, so the total variation
  stays about the same while images of one site share a gain profile and field strength.
* Tissue contrast per sequence family of the name (``FAMILY_PRESETS`` -> ``CONTRAST_PRESETS``): T2*
  names render as gradient-echo T2* (bright CSF), FLAIR as FLAIR (dark CSF and ventricles, bright
  scalp fat), fat-saturated TSE/FSE as T2 TSE with a suppressed scalp ring, PASL as its
  proton-density-like M0 image, and names without a sequence as T2*, PD/T2 FSE or TSE.

Class signal (what a model can learn), on top of the nuisance variation above:

* Ventricular enlargement with caudate atrophy. Each subject has an atrophy severity drawn from
  ``N(mean[class], SEVERITY_SPREAD)``; the lateral ventricles are dilated by about
  ``VENT_MM_PER_SEVERITY * severity`` mm and the caudate heads are eroded by a further
  ``CAUDATE_MM_PER_SEVERITY * severity`` mm (negative severity shrinks the ventricles, which is
  normal anatomical variation). Means grow EO < IO < LO; PTE and IPTE sit between EO and IO. The
  spread makes neighbouring classes overlap, so no class is separable from atrophy alone.
* Focal T2 hyperintensities in the basal ganglia / thalami: per image a Poisson number of small
  bright blobs, many and bright for PTE, fewer and fainter for IPTE, rare for the other classes.
  They are a few mm wide and sit at random positions, so a linear model on 32x32 thumbnails
  gains little from them while a CNN can count them.

``difficulty`` scales every class-specific difference from the EO baseline by ``1 / difficulty``
(severity means, lesion rates, lesion contrast); the per-subject spread and the nuisance variation
stay fixed, so difficulty 2.0 halves the signal and makes the task harder, 0.5 doubles it. At the
default 1.0 (scale 1.0, seed 0, one subject-grouped 75/25 split, macro-F1) a 4-block CNN on 64x64
inputs reaches 0.66 after 20 CPU epochs, against 0.28 for the thumbnail baseline below (chance 0.2).

Like real collections, the set also holds:

* Protocol variety: ``BRIGHT_SHARE`` (12 %) of the sessions, chosen at random whatever the class, come
  from a brighter, closer-cropped protocol (gain x``BRIGHT_GAIN``, zoom x``BRIGHT_ZOOM``: less
  background; CSF x``BRIGHT_CSF``). Signal above ``ROLL_OFF_KNEE`` rolls off towards
  ``ROLL_OFF_CEILING`` like an export window, so bright sites and sessions never saturate (only the
  deliberately over-exposed images do). These images are legitimate; the dataset-relative outlier
  statistics flag most of them, which is why outliers are kept by default. Under the project's
  robust rule (``neuroflux_lib.data.outliers.flag_images``, |modified z| > 3.5), full-size sets of
  seeds 0 / 1 / 2 have 10.0 / 11.0 / 10.8 % outliers among the legitimate images (real data: ~11 %),
  nearly all of them bright-protocol images flagged on intensity and SNR; 7.9 / 9.0 / 8.8 % are
  outliers on intensity or background fraction alone.
* Duplicates within a subject: ``EXACT_DUPLICATE_SHARE`` of the images are byte copies of another
  image of the same subject re-exported under another image id, and ``REENCODED_SHARE`` are the same
  slice re-saved at a lower JPEG quality (near-duplicates), so dedup has something to group.
* Deliberately broken images (``BAD_KINDS``: blank, near-blank, pure noise, over-exposed, 16 px tiny,
  and one truncated file at scale >= 0.5); every legitimate image is at least ``MIN_SIDE_PX`` wide.

Acquisition metadata in the file names, confounded with class like the real data, where the scan year
alone predicts the class: each subject gets a scan year, a sequence name (mostly T2* spelled seven
ways, some FLAIR, fat-saturated TSE/FSE, a few PASL, a few with none), a separator before the date
(``__br_raw_``, ``_br_raw_``, ``__raw_``) and a site. ``confound`` c sets how much these depend on the
class: every distribution is ``c * p_class + (1 - c) * p_pooled``, with the year distributions of the
real data (``YEAR_COUNTS``), fat-sat sequences more common in IPTE (22 of 171 real images) and a mild
per-class site preference. c = 1.0 (default) is like the real data; c = 0.0 makes acquisition
independent of class. Site and sequence family also shape the pixels (above), so with c > 0 the
acquisition leaks into the pixels through them, as on the real data; with c = 0 nothing in an image
but its class signal depends on the class. The metadata has its own random stream, and site profiles,
protocols, subjects, poses, noise, sizes, bad images and duplicates have streams of their own, so
changing c changes the file names, each subject's site (gain, gamma, field strength) and each
session's contrast preset (weights, scalp) and nothing else.

Calibration (``/work/shared/tools/demo_realism.py``: class-balanced logistic regressions under
subject-grouped 5-fold CV, full-size sets, seeds 0 / 1 / 2; real data in brackets): year alone
0.30 / 0.28 / 0.30 (0.27), year + sequence + site 0.29 / 0.33 / 0.32 (0.36), 32x32 thumbnails
0.28 / 0.33 / 0.34 (0.25). Tying the contrast to the sequence family leaves far fewer sessions with
FLAIR's dark ventricles (6 % instead of 15 %), which raised the thumbnail baseline from ~0.32 to
~0.37; a wider head pose (``POSE_ROTATION_SD`` 7 degrees, ``POSE_SHIFT_SD`` 5 %) brings it back, and
the site effects are scalars rather than per-site field patterns, which a linear model on
standardized thumbnails could read as the site (and so the class). With c = 0 the thumbnails score
0.29 (seed 0) and 0.31 (seed 2): acquisition leaking into the pixels adds at most a few points.
The site preference (``SITE_PREFERENCE_SHAPE`` 6) is what sets the second figure: with shape 2 it
reached 0.39, i.e. the file names gave away more than the real ones do. A full-size set takes about
6-10 s to generate with two worker processes.

Output is deterministic for ``(scale, seed, difficulty, image_size, confound)``: the whole plan (names,
subjects, sites, poses, protocols, bad images) is drawn in the main process, and each image is
rendered from its own ``numpy.random.SeedSequence``, so the bytes do not depend on the number of
worker processes.
"""

from __future__ import annotations

import math
import os
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
from scipy import ndimage as ndi

from neuroflux_lib.config import DEFAULT_SUBJECT_REGEX
from neuroflux_lib.data.broken import MIN_SIDE_PX
from neuroflux_lib.data.discovery import IMAGE_EXTENSIONS
from neuroflux_lib.errors import ConfigError, DataError
from neuroflux_lib.process_pool import spawn_pool

CLASS_COUNTS: dict[str, int] = {"PTE": 580, "LO": 240, "EO": 233, "IPTE": 171, "IO": 72}

SUBJECT_REGEX = DEFAULT_SUBJECT_REGEX
FILENAME_REGEX = re.compile(
    r"^neuroflux_(?P<subject>\d{3}_S_\d{4})_MR_(?P<sequence>[A-Za-z0-9_\-]*?)_+(?:br_)?raw_"
    r"(?P<date>\d{17})_(?P<n>\d+)_S(?P<series>\d+)_I(?P<image>\d+)\.jpg$"
)
IMAGE_SUFFIXES = IMAGE_EXTENSIONS | {".gif", ".webp"}

# Pixel contrast presets: relative T2 weight of CSF, GM, WM and of the scalp fat / skin ring. FLAIR nulls
# CSF, so the ventricles are dark there; fat saturation suppresses the bright scalp ring.
CONTRAST_PRESETS: dict[str, tuple[float, float, float, float]] = {
    "t2star": (1.00, 0.55, 0.36, 1.0),  # gradient-echo T2*
    "pd_t2_fse": (0.90, 0.62, 0.46, 1.0),  # proton-density / T2 fast spin echo
    "tse": (0.95, 0.52, 0.34, 1.0),  # T2 turbo / fast spin echo
    "tse_fat_sat": (0.95, 0.52, 0.34, 0.3),  # the same with fat saturation
    "flair": (0.18, 0.85, 0.58, 1.5),  # windowed on the brain tissue; fat is not nulled
}
# The preset each sequence family of the file names is rendered with (shares per session). PASL series
# come with a proton-density-like M0 image; a series without a sequence name can be any T2-type protocol.
FAMILY_PRESETS: dict[str, tuple[tuple[str, float], ...]] = {
    "t2star": (("t2star", 1.0),),
    "flair": (("flair", 1.0),),
    "fat_sat": (("tse_fat_sat", 1.0),),
    "pasl": (("pd_t2_fse", 1.0),),
    "none": (("t2star", 0.4), ("pd_t2_fse", 0.35), ("tse", 0.25)),
}
CONTRAST_JITTER = 0.03  # per-session relative jitter of each tissue weight

# Scanner characteristics of each site, drawn once per site from the seed: gain (log-normal factor),
# contrast (gamma, log-normal, applied to the tissue signal) and bias-field strength (a factor on every
# session's field). Sessions add their own gain and field on top, narrower than before sites existed so
# the total variation stays about the same (gain 0.75-1.0 and field sd 0.12 per session then).
SITE_GAIN_SD = 0.06
SITE_GAMMA_SD = 0.10
SITE_BIAS_STRENGTH = (0.6, 1.4)
SESSION_GAIN = (0.80, 0.95)
SESSION_BIAS_SD = 0.12  # sd of each coefficient of the session's field polynomial (times the site's factor)
# Head pose of a session: rotation (degrees), zoom, shift (share of the image side).
POSE_ROTATION_SD = 7.0
POSE_ZOOM = (0.9, 1.1)
POSE_SHIFT_SD = 0.05

# Odd sizes as (width, height) relative to the main size, and their share of all images; the two
# 64x64 images of the real dataset become image_size // 4 and are counted absolutely.
ODD_SIZES: tuple[tuple[float, float, float], ...] = (
    (228 / 256, 1.0, 0.015),
    (232 / 256, 1.0, 0.015),
    (288 / 256, 288 / 256, 0.01),
    (336 / 256, 336 / 256, 0.01),
)
N_SMALL_AT_FULL_SCALE = 2
MULTI_IMAGE_SHARE = 0.61  # share of images that belong to subjects with 2..7 images
BAD_SHARE = 0.01
BAD_KINDS: tuple[str, ...] = ("blank", "noise", "overexposed", "tiny", "near_blank")
TRUNCATED_MIN_SCALE = 0.5
TINY_SIZE = 16
OVEREXPOSED_GAIN = 2.5

# Class signal at difficulty 1.0 (see module docstring).
SEVERITY_MEAN: dict[str, float] = {"EO": 0.0, "IPTE": 0.5, "PTE": 0.9, "IO": 1.7, "LO": 2.7}
SEVERITY_SPREAD = 0.5
VENT_MM_PER_SEVERITY = 1.2
CAUDATE_MM_PER_SEVERITY = 1.4
LESION_RATE: dict[str, float] = {"EO": 0.1, "IO": 0.1, "LO": 0.1, "IPTE": 1.6, "PTE": 6.0}
LESION_CONTRAST: dict[str, float] = {"EO": 0.35, "IO": 0.35, "LO": 0.35, "IPTE": 0.45, "PTE": 0.6}

# Protocol variety (pixels, class-independent): a brighter, closer-cropped protocol.
BRIGHT_SHARE = 0.12
BRIGHT_GAIN = 1.35
BRIGHT_ZOOM = 1.3
BRIGHT_CSF = 0.8  # relative CSF weight, so the brighter protocol does not saturate the ventricles
# Export window: signal above the knee is compressed towards the ceiling (1.0 = grey level 255).
ROLL_OFF_KNEE = 0.80
ROLL_OFF_CEILING = 0.96
# Duplicates within a subject: byte copies under another image id, and re-encodings at lower quality.
EXACT_DUPLICATE_SHARE = 0.005
REENCODED_SHARE = 0.005
REENCODED_QUALITY = (60, 75)

# Acquisition metadata in the file names (see the module docstring). Images per scan year and class
# in the real data.
YEAR_COUNTS: dict[int, dict[str, int]] = {
    2015: {"EO": 5, "IO": 0, "IPTE": 38, "LO": 66, "PTE": 43},
    2016: {"EO": 1, "IO": 0, "IPTE": 68, "LO": 40, "PTE": 51},
    2017: {"EO": 23, "IO": 2, "IPTE": 26, "LO": 53, "PTE": 126},
    2018: {"EO": 84, "IO": 20, "IPTE": 19, "LO": 31, "PTE": 204},
    2019: {"EO": 99, "IO": 44, "IPTE": 17, "LO": 39, "PTE": 123},
    2020: {"EO": 21, "IO": 6, "IPTE": 3, "LO": 11, "PTE": 33},
}
SEQUENCE_NAMES: dict[str, tuple[tuple[str, float], ...]] = {
    "t2star": (
        ("Axial_T2_Star", 0.30),
        ("AX_T2_STAR", 0.20),
        ("Axial_T2_STAR", 0.15),
        ("Axial_T2-Star", 0.15),
        ("Axial_T2_Star_REPEAT", 0.07),
        ("Axial_T2_Star_straight", 0.07),
        ("AXIAL_T2__STAR", 0.06),
    ),
    "flair": (("Axial_FLAIR", 1.0),),
    "fat_sat": (("T2_TSE_with_Fat_Sat", 0.6), ("T2_FSE_with_Fat_Sat", 0.4)),
    "pasl": (("Axial_PASL", 1.0),),
    "none": (("", 1.0),),
}
SEQUENCE_SHARES: dict[str, float] = {
    "t2star": 0.87,
    "flair": 0.06,
    "fat_sat": 0.03,
    "pasl": 0.01,
    "none": 0.03,
}
FAT_SAT_SHARE_IPTE = 0.13
SEPARATORS: tuple[tuple[str, float], ...] = (("__br_raw_", 0.75), ("_br_raw_", 0.15), ("__raw_", 0.10))
SITE_PREFERENCE_SHAPE = 6.0  # gamma shape of each class's site weights: lower = stronger preference

MNI_Z_OFFSET = 72  # voxel index of MNI z = 0 mm in the 1 mm template
SLAB_MM = (0, 26)  # axial levels kept: third ventricle / basal ganglia up to the ventricle bodies
FOV_MM = 205.0


@dataclass(frozen=True)
class DemoSummary:
    """What `generate_demo_dataset` wrote: files per class, distinct subjects, bad images, time."""

    out_dir: Path
    counts: dict[str, int]
    n_subjects: int
    n_bad: int
    seconds: float
    n_duplicates: int = 0


@dataclass(frozen=True)
class ImageSpec:
    """Everything needed to render one file; built in the main process, rendered anywhere."""

    rel_path: str
    label: str
    subject_id: str
    sequence: str
    width: int
    height: int
    z_mm: float
    severity: float
    lesion_rate: float
    lesion_contrast: float
    rotation_deg: float
    zoom: float
    shift: tuple[float, float]
    bias: tuple[float, ...]
    contrast: tuple[float, float, float]
    gain: float
    noise: float
    quality: int
    bad: str | None
    seed: np.random.SeedSequence
    protocol: str = "standard"  # "bright": the brighter, closer-cropped protocol
    family: str = "t2star"  # sequence family of the file name (a key of FAMILY_PRESETS)
    preset: str = "t2star"  # contrast preset the pixels are rendered with (a key of CONTRAST_PRESETS)
    scalp: float = 1.0  # weight of the scalp fat / skin ring (low with fat saturation)
    gamma: float = 1.0  # the site's contrast: the tissue signal is raised to this power
    duplicate_of: str | None = None  # rel_path of the image this one copies
    duplicate_kind: str | None = None  # "exact" (same bytes) or "reencoded" (other JPEG quality)


@dataclass(frozen=True)
class Anatomy:
    """Per-level 2-D maps of the template slab (index 0 = SLAB_MM[0]), precomputed once."""

    gm: np.ndarray
    wm: np.ndarray
    csf: np.ndarray
    scalp: np.ndarray
    vent_sd: np.ndarray  # signed distance (mm) to the lateral/third ventricles, negative inside
    caudate: np.ndarray  # smooth 0..1 weight around the caudate heads/bodies
    deep_gm: np.ndarray  # 0/1 where basal-ganglia / thalamic lesions may sit
    centre: tuple[float, float]  # (x, y) pixel centre of the brain in the slab plane


def class_counts(scale: float) -> dict[str, int]:
    """Images per class for `scale`: never below 2 so every class can be split."""
    if scale <= 0:
        raise ConfigError(f"scale must be > 0, got {scale}")
    return {name: max(2, round(count * scale)) for name, count in CLASS_COUNTS.items()}


# --------------------------------------------------------------------------------------- planning


def _split_into_subjects(n_images: int, rng: np.random.Generator) -> list[int]:
    """Images per subject for one class: ~61 % of images in subjects with 2..7, the rest singles."""
    weights = 0.42 ** np.arange(6)
    sizes_2_to_7 = np.arange(2, 8)
    target = round(n_images * MULTI_IMAGE_SHARE)
    groups: list[int] = []
    while sum(groups) < target:
        groups.append(int(rng.choice(sizes_2_to_7, p=weights / weights.sum())))
    overflow = sum(groups) - target
    if overflow and groups:
        groups[-1] -= overflow
        if groups[-1] < 2:
            groups.pop()
    groups += [1] * (n_images - sum(groups))
    rng.shuffle(groups)
    return groups


def _session_stamp(rng: np.random.Generator, year: int) -> str:
    """17-digit acquisition stamp like 20150106121009713 (date in `year`, time, milliseconds)."""
    day = np.datetime64(f"{year}-01-01") + int(rng.integers(0, 15 * 365)) % 365
    seconds = int(rng.integers(7 * 3600, 19 * 3600))
    ymd = str(day).replace("-", "")
    hms = f"{seconds // 3600:02d}{seconds % 3600 // 60:02d}{seconds % 60:02d}"
    return f"{ymd}{hms}{int(rng.integers(0, 1000)):03d}"


def _pick_contrast(family: str, rng: np.random.Generator) -> tuple[str, tuple[float, float, float], float]:
    """(preset, (CSF, GM, WM) weights, scalp weight) of one session of sequence family `family`.

    Always four draws whatever the family, so the family (which follows `confound`) never shifts the
    subject's other draws."""
    options = FAMILY_PRESETS[family]
    cumulative = np.cumsum([share for _, share in options])
    choice = min(
        int(np.searchsorted(cumulative / cumulative[-1], rng.random(), side="right")), len(options) - 1
    )
    preset = options[choice][0]
    csf, gm, wm, scalp = CONTRAST_PRESETS[preset]
    jitter = rng.normal(1.0, CONTRAST_JITTER, size=3)
    return preset, (csf * jitter[0], gm * jitter[1], wm * jitter[2]), scalp


def _class_signal(label: str, difficulty: float) -> tuple[float, float, float]:
    """(severity mean, lesion rate, lesion contrast) with class differences scaled by 1/difficulty."""
    if difficulty <= 0:
        raise ConfigError(f"difficulty must be > 0, got {difficulty}")
    strength = 1.0 / difficulty
    base = "EO"
    severity = SEVERITY_MEAN[base] + (SEVERITY_MEAN[label] - SEVERITY_MEAN[base]) * strength
    rate = LESION_RATE[base] + (LESION_RATE[label] - LESION_RATE[base]) * strength
    contrast = LESION_CONTRAST[base] + (LESION_CONTRAST[label] - LESION_CONTRAST[base]) * strength
    return severity, max(rate, 0.0), max(contrast, 0.0)


@dataclass(frozen=True)
class SubjectMeta:
    """What a subject's file names say about the acquisition; its site and sequence family also set
    the scanner characteristics and the contrast preset of the pixels."""

    site: int
    year: int
    sequence: str
    separator: str
    family: str = "t2star"  # a key of SEQUENCE_NAMES / FAMILY_PRESETS


def _mix(p_class: np.ndarray, p_pooled: np.ndarray, confound: float) -> np.ndarray:
    p = confound * p_class + (1.0 - confound) * p_pooled
    return p / p.sum()


def _metadata_distributions(
    sites: np.ndarray, confound: float, rng: np.random.Generator
) -> dict[str, dict[str, np.ndarray]]:
    """Per class: year, sequence-family and site probabilities mixed with the pooled ones by `confound`."""
    if not 0.0 <= confound <= 1.0:
        raise ConfigError(f"confound must be between 0 and 1, got {confound}")
    labels = list(CLASS_COUNTS)
    years = np.array([[YEAR_COUNTS[y][label] for y in YEAR_COUNTS] for label in labels], dtype=float)
    families = np.array([[SEQUENCE_SHARES[f] for f in SEQUENCE_SHARES] for _ in labels])
    fat_sat, t2star = list(SEQUENCE_SHARES).index("fat_sat"), list(SEQUENCE_SHARES).index("t2star")
    ipte = labels.index("IPTE")
    families[ipte, t2star] -= FAT_SAT_SHARE_IPTE - families[ipte, fat_sat]
    families[ipte, fat_sat] = FAT_SAT_SHARE_IPTE
    site_weights = rng.gamma(SITE_PREFERENCE_SHAPE, size=(len(labels), len(sites)))
    weights = np.array([CLASS_COUNTS[label] for label in labels], dtype=float)[:, None]
    out: dict[str, dict[str, np.ndarray]] = {}
    for i, label in enumerate(labels):
        out[label] = {}
        for key, table in (("year", years), ("family", families), ("site", site_weights)):
            rows = table / table.sum(axis=1, keepdims=True)
            pooled = (rows * weights).sum(axis=0) / weights.sum()
            out[label][key] = _mix(rows[i], pooled, confound)
    return out


def _pick(options: Sequence[tuple[str, float]], rng: np.random.Generator) -> str:
    shares = np.array([share for _, share in options])
    return options[int(rng.choice(len(options), p=shares / shares.sum()))][0]


def _subject_meta(
    label: str, sites: np.ndarray, distributions: dict[str, dict[str, np.ndarray]], rng: np.random.Generator
) -> SubjectMeta:
    """One subject's site, scan year, sequence name and separator: five draws whatever `confound` is."""
    p = distributions[label]
    site = int(sites[rng.choice(len(sites), p=p["site"])])
    year = list(YEAR_COUNTS)[int(rng.choice(len(YEAR_COUNTS), p=p["year"]))]
    family = list(SEQUENCE_SHARES)[int(rng.choice(len(SEQUENCE_SHARES), p=p["family"]))]
    sequence = _pick(SEQUENCE_NAMES[family], rng)
    separator = _pick(SEPARATORS, rng)
    # A name without a sequence reads `..._MR__br_raw_...` in the real data.
    return SubjectMeta(site, year, sequence, "_br_raw_" if not sequence else separator, family)


@dataclass(frozen=True)
class SiteProfile:
    """Scanner characteristics of one site, shared by every image acquired there."""

    gain: float
    gamma: float
    bias_strength: float  # factor on the bias field of every session


def _site_profiles(sites: np.ndarray, rng: np.random.Generator) -> dict[int, SiteProfile]:
    """One profile per site, drawn in the order of `sites` (which does not depend on `confound`)."""
    profiles = {}
    for site in sites.tolist():
        profiles[int(site)] = SiteProfile(
            gain=float(np.exp(rng.normal(0.0, SITE_GAIN_SD))),
            gamma=float(np.exp(rng.normal(0.0, SITE_GAMMA_SD))),
            bias_strength=float(rng.uniform(*SITE_BIAS_STRENGTH)),
        )
    return profiles


@dataclass
class _Ids:
    """Unique ids and per-image seeds, drawn up front and handed out in plan order."""

    images: Iterator[int]
    series: Iterator[int]
    seeds: Iterator[np.random.SeedSequence]


def _session_pose(rng: np.random.Generator) -> dict[str, object]:
    """Acquisition nuisance shared by the images of one session: head pose, noise, and the session's
    own bias field and gain (combined with its site's in `_subject_images`)."""
    return {
        "rotation_deg": float(rng.normal(0.0, POSE_ROTATION_SD)),
        "zoom": float(rng.uniform(*POSE_ZOOM)),
        "shift": (float(rng.normal(0.0, POSE_SHIFT_SD)), float(rng.normal(0.0, POSE_SHIFT_SD))),
        "bias": tuple(float(b) for b in rng.normal(0.0, SESSION_BIAS_SD, size=5)),
        "gain": float(rng.uniform(*SESSION_GAIN)),
        "noise": float(rng.uniform(0.012, 0.045)),
        "quality": int(rng.integers(85, 97)),
    }


def _sessions_of(n_images: int, rng: np.random.Generator) -> np.ndarray:
    """Session index (sorted) of each of a subject's images; 1-3 sessions, none empty."""
    n_sessions = int(rng.integers(1, min(n_images, 3) + 1))
    session_of = rng.integers(0, n_sessions, size=n_images)
    session_of[:n_sessions] = np.arange(n_sessions)
    return np.sort(session_of)


def _subject_images(
    label: str,
    subject_id: str,
    n_images: int,
    difficulty: float,
    rng: np.random.Generator,
    ids: _Ids,
    meta: SubjectMeta,
    site: SiteProfile,
) -> list[ImageSpec]:
    """Specs of one subject's images: shared anatomy and severity, 1-3 sessions, distinct slices.

    `rng` draws everything about the pixels that is the subject's own, `meta` names the files and sets
    the contrast preset (sequence family), and `site` sets the scanner characteristics. Every session
    is planned with the standard protocol; `_brighten_sessions` picks the brighter ones afterwards.
    """
    severity_mean, rate, contrast = _class_signal(label, difficulty)
    severity = float(rng.normal(severity_mean, SEVERITY_SPREAD))
    subject_rate = float(rate * rng.gamma(6.0, 1 / 6))
    base_z = float(rng.uniform(5.0, 21.0))
    session_of = _sessions_of(n_images, rng)
    specs = []
    for session in range(int(session_of.max()) + 1):
        preset, weights, scalp = _pick_contrast(meta.family, rng)
        stamp, series, pose = _session_stamp(rng, meta.year), next(ids.series), _session_pose(rng)
        pose["gain"] = pose["gain"] * site.gain
        pose["bias"] = tuple(site.bias_strength * b for b in pose["bias"])
        levels = base_z + rng.uniform(-4.0, 4.0, size=int((session_of == session).sum()))
        first_slice = int(rng.integers(10, 40))
        for k, z_mm in enumerate(levels):
            name = (
                f"neuroflux_{subject_id}_MR_{meta.sequence}{meta.separator}{stamp}_{first_slice + 2 * k}"
                f"_S{series}_I{next(ids.images)}.jpg"
            )
            specs.append(
                ImageSpec(
                    rel_path=f"{label}/{name}",
                    label=label,
                    subject_id=subject_id,
                    sequence=meta.sequence,
                    width=0,  # sizes are set by _assign_variants
                    height=0,
                    z_mm=float(np.clip(z_mm, SLAB_MM[0], SLAB_MM[1])),
                    severity=severity,
                    lesion_rate=subject_rate,
                    lesion_contrast=contrast,
                    contrast=weights,
                    bad=None,
                    seed=next(ids.seeds),
                    family=meta.family,
                    preset=preset,
                    scalp=scalp,
                    gamma=site.gamma,
                    **pose,
                )
            )
    return specs


def _brighten_sessions(specs: list[ImageSpec], rng: np.random.Generator) -> list[ImageSpec]:
    """Move round(BRIGHT_SHARE * sessions) sessions, chosen at random whatever their class, to the
    brighter, closer-cropped protocol. Sessions are taken in plan order, which `confound` leaves alone."""
    sessions = list(dict.fromkeys(FILENAME_REGEX.match(Path(s.rel_path).name)["series"] for s in specs))
    chosen = rng.choice(len(sessions), size=round(BRIGHT_SHARE * len(sessions)), replace=False)
    bright = {sessions[int(i)] for i in chosen}
    return [
        replace(
            spec,
            protocol="bright",
            gain=spec.gain * BRIGHT_GAIN,
            zoom=spec.zoom * BRIGHT_ZOOM,
            contrast=(spec.contrast[0] * BRIGHT_CSF, *spec.contrast[1:]),
        )
        if FILENAME_REGEX.match(Path(spec.rel_path).name)["series"] in bright
        else spec
        for spec in specs
    ]


def _odd_sizes(n_total: int, scale: float, image_size: int) -> list[tuple[int, int]]:
    """(width, height) of the odd-sized images: ~1-2 % each, plus the two quarter-size ones."""
    sizes = []
    for rel_w, rel_h, share in ODD_SIZES:
        size = (max(MIN_SIDE_PX, round(rel_w * image_size)), max(MIN_SIDE_PX, round(rel_h * image_size)))
        sizes += [size] * round(share * n_total)
    small = max(MIN_SIDE_PX, image_size // 4)
    return sizes + [(small, small)] * round(N_SMALL_AT_FULL_SCALE * scale)


def _bad_kinds(n_total: int, scale: float, rng: np.random.Generator) -> list[str]:
    """~1 % bad images cycling through BAD_KINDS, plus one truncated file at larger scales."""
    kinds = [BAD_KINDS[i % len(BAD_KINDS)] for i in range(max(1, round(BAD_SHARE * n_total)))]
    kinds += ["truncated"] if scale >= TRUNCATED_MIN_SCALE else []
    return [kinds[i] for i in rng.permutation(len(kinds))]  # shuffled so kinds spread over classes


def _assign_variants(
    specs: list[ImageSpec], scale: float, image_size: int, rng: np.random.Generator
) -> list[ImageSpec]:
    """Set every image's size and mark bad images (round-robin over classes, main-size images only)."""
    specs = [replace(spec, width=image_size, height=image_size) for spec in specs]
    order = rng.permutation(len(specs))
    odd = _odd_sizes(len(specs), scale, image_size)
    for index, (width, height) in zip(order[: len(odd)], odd, strict=True):
        specs[index] = replace(specs[index], width=width, height=height)
    remaining = set(order[len(odd) :].tolist())
    labels = list(CLASS_COUNTS)
    for k, kind in enumerate(_bad_kinds(len(specs), scale, rng)):
        candidates = sorted(i for i in remaining if specs[i].label == labels[k % len(labels)])
        candidates = candidates or sorted(remaining)
        index = candidates[int(rng.integers(len(candidates)))]
        remaining.discard(index)
        size = TINY_SIZE if kind == "tiny" else image_size
        specs[index] = replace(specs[index], bad=kind, width=size, height=size)
    return specs


def _add_duplicates(specs: list[ImageSpec], rng: np.random.Generator) -> list[ImageSpec]:
    """Turn a few images into copies of another image of the same subject: exact (byte) copies under
    another image id, and re-encodings at a lower JPEG quality. Bad images are never copied."""
    by_subject: dict[str, list[int]] = {}
    for index, spec in enumerate(specs):
        if spec.bad is None:
            by_subject.setdefault(spec.subject_id, []).append(index)
    # Plan order, not subject ids: the ids carry the site, which depends on `confound`.
    pool = [subject for subject, indices in by_subject.items() if len(indices) >= 2]
    n_exact = max(1, round(EXACT_DUPLICATE_SHARE * len(specs)))
    n_reencoded = max(1, round(REENCODED_SHARE * len(specs)))
    chosen = rng.choice(len(pool), size=min(n_exact + n_reencoded, len(pool)), replace=False)
    specs = list(specs)
    for k, subject in enumerate(pool[int(j)] for j in chosen):
        source_index, target_index = by_subject[subject][:2]
        source, target = specs[source_index], specs[target_index]
        exact = k < n_exact
        image_id = FILENAME_REGEX.match(Path(target.rel_path).name)["image"]
        rel_path = re.sub(r"_I\d+\.jpg$", f"_I{image_id}.jpg", source.rel_path)
        specs[target_index] = replace(
            source,
            rel_path=rel_path,
            quality=source.quality if exact else int(rng.integers(*REENCODED_QUALITY)),
            duplicate_of=source.rel_path,
            duplicate_kind="exact" if exact else "reencoded",
        )
    return specs


def plan_dataset(
    scale: float = 1.0,
    seed: int = 0,
    difficulty: float = 1.0,
    image_size: int = 256,
    confound: float = 1.0,
) -> list[ImageSpec]:
    """The full, deterministic list of files to write (cheap: no pixels are rendered).

    Subject-level draws use one SeedSequence child per subject and each image gets its own child,
    so rendering can happen in any process, in any order, with identical bytes. File-name metadata,
    site profiles, protocols and duplicates have streams of their own, so `confound` changes names and,
    through each subject's site and sequence family, scanner characteristics and contrast; nothing else.
    """
    if image_size < MIN_SIDE_PX:
        raise ConfigError(
            f"image_size must be >= {MIN_SIDE_PX} (smaller images count as broken), got {image_size}"
        )
    _class_signal("EO", difficulty)  # validates difficulty before any work
    counts = class_counts(scale)
    streams = np.random.SeedSequence(seed).spawn(7)
    plan_seq, subject_seq, image_seq, meta_seq, protocol_seq, duplicate_seq, site_seq = streams
    rng = np.random.default_rng(plan_seq)
    total = sum(counts.values())
    groups = {label: _split_into_subjects(n, rng) for label, n in counts.items()}
    n_subjects = sum(len(g) for g in groups.values())
    numbers = iter(rng.choice(np.arange(1, 10_000), size=n_subjects, replace=False).tolist())
    sites = rng.choice(np.arange(2, 942), size=max(3, round(60 * min(1.0, scale * 4))), replace=False)
    ids = _Ids(
        images=iter(rng.choice(np.arange(100_000, 1_000_000), size=total, replace=False).tolist()),
        series=iter(rng.choice(np.arange(10_000, 400_000), size=total, replace=False).tolist()),
        seeds=iter(image_seq.spawn(total)),
    )
    subject_rngs = iter(np.random.default_rng(s) for s in subject_seq.spawn(n_subjects))
    meta_rng = np.random.default_rng(meta_seq)
    distributions = _metadata_distributions(sites, confound, meta_rng)
    site_profiles = _site_profiles(sites, np.random.default_rng(site_seq))
    specs: list[ImageSpec] = []
    for label, sizes in groups.items():
        for n_images in sizes:
            meta = _subject_meta(label, sites, distributions, meta_rng)
            subject_id = f"{meta.site:03d}_S_{next(numbers):04d}"
            specs += _subject_images(
                label,
                subject_id,
                n_images,
                difficulty,
                next(subject_rngs),
                ids,
                meta,
                site_profiles[meta.site],
            )
    specs = _brighten_sessions(specs, np.random.default_rng(protocol_seq))
    specs = _assign_variants(specs, scale, image_size, rng)
    return _add_duplicates(specs, np.random.default_rng(duplicate_seq))


# --------------------------------------------------------------------------------------- anatomy


def _axial(volume: np.ndarray, z_index: int) -> np.ndarray:
    """Axial slice with anterior up and patient right on the image left (radiological view)."""
    return np.ascontiguousarray(np.rot90(volume[:, :, z_index])[:, ::-1], dtype=np.float32)


def _slice_maps(gm: np.ndarray, wm: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray]:
    """Derive CSF, scalp, ventricle distance, caudate and deep-GM maps for one axial level."""
    csf = np.clip(mask - gm - wm, 0.0, 1.0) * mask
    inside = ndi.distance_transform_edt(mask > 0.5)
    outside = ndi.distance_transform_edt(mask <= 0.5)
    height, width = gm.shape
    x_mm = np.abs(np.arange(width) - (width - 1) / 2)[None, :]
    y_mm = (height - 1 - np.arange(height))[:, None] - 134.0  # MNI y of each row
    central = (inside > 22) & (x_mm < 30)
    labels, n = ndi.label((csf > 0.5) & central)
    sizes = ndi.sum(np.ones_like(labels), labels, range(1, n + 1)) if n else np.zeros(0)
    vent = np.isin(labels, 1 + np.flatnonzero(sizes >= 20))
    vent_sd = ndi.distance_transform_edt(~vent) - ndi.distance_transform_edt(vent)
    caudate = (gm > 0.35) & (vent_sd > 0) & (vent_sd < 8) & central & (y_mm > -10)
    caudate_w = ndi.gaussian_filter(caudate.astype(np.float32), 2.5)
    caudate_w /= max(float(caudate_w.max()), 1e-6)
    deep = (gm > 0.4) & (inside > 26) & (vent_sd > 2) & (x_mm < 35) & (y_mm > -32) & (y_mm < 25)
    # Scalp: dark skull 2-6 mm outside the brain, bright fat/skin 6-11 mm.
    scalp = np.clip(1.0 - np.abs(outside - 8.5) / 2.5, 0.0, 1.0) * 0.55
    return {
        "csf": csf,
        "scalp": scalp.astype(np.float32),
        "vent_sd": vent_sd.astype(np.float32),
        "caudate": np.clip(caudate_w * 1.4, 0, 1).astype(np.float32),
        "deep_gm": deep.astype(np.float32),
    }


@lru_cache(maxsize=1)
def load_anatomy() -> Anatomy:
    """Read the bundled MNI152 templates (no network) and precompute the slab, once per process."""
    from nilearn import datasets  # heavy import, only where the templates are read

    gm_vol = datasets.load_mni152_gm_template(resolution=1).get_fdata(dtype=np.float32)
    wm_vol = datasets.load_mni152_wm_template(resolution=1).get_fdata(dtype=np.float32)
    mask_vol = datasets.load_mni152_brain_mask(resolution=1).get_fdata(dtype=np.float32)
    maps: dict[str, list[np.ndarray]] = {}
    for z_mm in range(SLAB_MM[0], SLAB_MM[1] + 1):
        z = z_mm + MNI_Z_OFFSET
        gm, wm = _axial(gm_vol, z), _axial(wm_vol, z)
        mask = ndi.binary_fill_holes(_axial(mask_vol, z) > 0.5).astype(np.float32)
        tissue = gm + wm
        over = tissue > 1.0
        gm[over], wm[over] = gm[over] / tissue[over], wm[over] / tissue[over]
        derived = _slice_maps(gm, wm, mask)
        for key, value in {"gm": gm * mask, "wm": wm * mask, **derived}.items():
            maps.setdefault(key, []).append(value)
    mask_mid = _axial(mask_vol, MNI_Z_OFFSET + sum(SLAB_MM) // 2)
    ys, xs = np.nonzero(mask_mid)
    stacked = {key: np.stack(value).astype(np.float32) for key, value in maps.items()}
    return Anatomy(**stacked, centre=(float(xs.mean()), float(ys.mean())))


# --------------------------------------------------------------------------------------- rendering


def _level(stack: np.ndarray, z_mm: float) -> np.ndarray:
    """Linear interpolation between the two nearest 1 mm levels."""
    position = z_mm - SLAB_MM[0]
    low = int(min(max(math.floor(position), 0), stack.shape[0] - 1))
    high = min(low + 1, stack.shape[0] - 1)
    t = float(position - low)
    return stack[low] * (1.0 - t) + stack[high] * t


def _atrophied_tissue(
    anatomy: Anatomy, spec: ImageSpec
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(gm, wm, csf, deep-gm) after ventricular enlargement and caudate erosion for `severity`."""
    gm, wm, csf = (_level(getattr(anatomy, k), spec.z_mm) for k in ("gm", "wm", "csf"))
    vent_sd = _level(anatomy.vent_sd, spec.z_mm)
    caudate = _level(anatomy.caudate, spec.z_mm)
    radius = (
        VENT_MM_PER_SEVERITY * spec.severity + CAUDATE_MM_PER_SEVERITY * max(spec.severity, 0.0) * caudate
    )
    new_vent = np.clip(radius - vent_sd + 0.5, 0.0, 1.0)
    old_vent = np.clip(0.5 - vent_sd, 0.0, 1.0)
    new_csf = np.maximum(new_vent, csf * (1.0 - old_vent))
    tissue = gm + wm
    gm_share = np.where(tissue > 0.05, gm / np.maximum(tissue, 1e-6), 0.0)
    brain = np.clip(tissue + csf, 0.0, 1.0)
    remaining = np.clip(brain - new_csf, 0.0, 1.0)
    deep = _level(anatomy.deep_gm, spec.z_mm) * (new_vent < 0.5)
    return remaining * gm_share, remaining * (1.0 - gm_share), new_csf, deep


def _lesions(deep: np.ndarray, spec: ImageSpec, rng: np.random.Generator) -> np.ndarray:
    """Small bright Gaussian blobs at random deep-GM positions (intensity added to the T2 image)."""
    out = np.zeros_like(deep)
    ys, xs = np.nonzero(deep > 0.5)
    count = int(rng.poisson(spec.lesion_rate))
    if count == 0 or len(ys) == 0 or spec.lesion_contrast <= 0:
        return out
    yy, xx = np.mgrid[0 : deep.shape[0], 0 : deep.shape[1]]
    for index in rng.integers(0, len(ys), size=count):
        sigma = rng.uniform(2.5, 4.5)
        amplitude = spec.lesion_contrast * rng.uniform(0.7, 1.3)
        y0, x0 = ys[index], xs[index]
        box = slice(max(0, y0 - 14), y0 + 15), slice(max(0, x0 - 14), x0 + 15)
        blob = np.exp(-((yy[box] - y0) ** 2 + (xx[box] - x0) ** 2) / (2 * sigma**2))
        out[box] = np.maximum(out[box], amplitude * blob)
    return out


def _pose_matrix(anatomy: Anatomy, spec: ImageSpec) -> np.ndarray:
    """2x3 affine from slab pixels (1 mm) to output pixels: FOV scaling, rotation, zoom, shift."""
    width, height = spec.width, spec.height
    px_per_mm = height / FOV_MM * spec.zoom
    angle = math.radians(spec.rotation_deg)
    cos, sin = math.cos(angle) * px_per_mm, math.sin(angle) * px_per_mm
    cx, cy = anatomy.centre
    tx = width / 2 + spec.shift[0] * width
    ty = height / 2 + spec.shift[1] * height
    return np.array(
        [[cos, -sin, tx - cos * cx + sin * cy], [sin, cos, ty - sin * cx - cos * cy]], dtype=np.float64
    )


def _bias_field(spec: ImageSpec, width: int, height: int) -> np.ndarray:
    """Smooth multiplicative field exp(quadratic polynomial) over the image, independent of size."""
    y, x = np.mgrid[-1 : 1 : height * 1j, -1 : 1 : width * 1j]
    a, b, c, d, e = spec.bias
    return np.exp(a * x + b * y + c * x * y + d * x**2 + e * y**2).astype(np.float32)


def _roll_off(image: np.ndarray) -> np.ndarray:
    """The export window's soft shoulder: signal above ROLL_OFF_KNEE approaches ROLL_OFF_CEILING instead
    of clipping, so bright sites and protocols stay legitimate (not saturated) images."""
    span = ROLL_OFF_CEILING - ROLL_OFF_KNEE
    over = image > ROLL_OFF_KNEE
    image[over] = ROLL_OFF_KNEE + span * np.tanh((image[over] - ROLL_OFF_KNEE) / span)
    return image


def render_slice(spec: ImageSpec, anatomy: Anatomy, rng: np.random.Generator) -> np.ndarray:
    """A realistic uint8 slice for `spec` (no bad-image effects)."""
    gm, wm, csf, deep = _atrophied_tissue(anatomy, spec)
    w_csf, w_gm, w_wm = spec.contrast
    lesions = _lesions(deep, spec, rng)
    t2 = w_csf * csf + w_gm * gm + w_wm * wm + lesions + spec.scalp * _level(anatomy.scalp, spec.z_mm)
    if spec.gamma != 1.0:  # the site's contrast
        t2 = np.power(np.maximum(t2, 0.0), spec.gamma, dtype=np.float32)
    width, height = spec.width, spec.height
    matrix = _pose_matrix(anatomy, spec)
    mm_per_px = 1.0 / math.hypot(matrix[0, 0], matrix[1, 0])
    if mm_per_px > 1.0:  # anti-alias before shrinking
        t2 = cv2.GaussianBlur(t2, (0, 0), 0.5 * math.sqrt(mm_per_px**2 - 1.0))
    image = cv2.warpAffine(t2, matrix, (width, height), flags=cv2.INTER_LINEAR, borderValue=0.0)
    image = image * _bias_field(spec, width, height) * spec.gain
    if spec.bad != "overexposed":  # the over-exposed images are the ones exported without the roll-off
        image = _roll_off(image)
    real = image + rng.normal(0.0, spec.noise, size=image.shape)
    imag = rng.normal(0.0, spec.noise, size=image.shape)
    magnitude = np.sqrt(real**2 + imag**2)  # Rician noise, as in magnitude MR images
    return np.clip(magnitude * 255.0, 0, 255).round().astype(np.uint8)


def _bad_pixels(kind: str, spec: ImageSpec, anatomy: Anatomy, rng: np.random.Generator) -> np.ndarray:
    shape = (spec.height, spec.width)
    if kind == "blank":
        return np.zeros(shape, dtype=np.uint8)
    if kind == "near_blank":
        return np.clip(rng.normal(3.0, 1.5, size=shape), 0, 255).astype(np.uint8)
    if kind == "noise":
        return rng.integers(0, 256, size=shape, dtype=np.uint8)
    if kind == "overexposed":
        return render_slice(replace(spec, gain=spec.gain * OVEREXPOSED_GAIN), anatomy, rng)
    return render_slice(spec, anatomy, rng)  # "tiny" (size set in the plan) and "truncated"


def render_file(spec: ImageSpec, anatomy: Anatomy) -> bytes:
    """JPEG bytes of one planned file, bad-image effects included; depends only on its inputs."""
    rng = np.random.default_rng(spec.seed)
    pixels = _bad_pixels(spec.bad, spec, anatomy, rng) if spec.bad else render_slice(spec, anatomy, rng)
    quality = 40 if spec.bad == "tiny" else spec.quality
    ok, encoded = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError(f"JPEG encoding failed for {spec.rel_path}")
    data = encoded.tobytes()
    return data[: len(data) // 2] if spec.bad == "truncated" else data


# --------------------------------------------------------------------------------------- writing

_WORKER_ANATOMY: Anatomy | None = None


def _init_worker(anatomy: Anatomy) -> None:
    """Pool initializer: receive the slab once per worker instead of once per task."""
    global _WORKER_ANATOMY
    _WORKER_ANATOMY = anatomy
    cv2.setNumThreads(1)  # the pool already uses every core


def _write_one(task: tuple[ImageSpec, Path]) -> str:
    spec, out_dir = task
    anatomy = _WORKER_ANATOMY if _WORKER_ANATOMY is not None else load_anatomy()
    (out_dir / spec.rel_path).write_bytes(render_file(spec, anatomy))
    return spec.label


def _write_in_process(tasks: Sequence[tuple[ImageSpec, Path]], anatomy: Anatomy) -> Iterator[str]:
    for spec, out_dir in tasks:
        (out_dir / spec.rel_path).write_bytes(render_file(spec, anatomy))
        yield spec.label


def _write_in_pool(tasks: Sequence[tuple[ImageSpec, Path]], anatomy: Anatomy, workers: int) -> Iterator[str]:
    """Files in task order from a pool whose workers end by sentinel, not SIGTERM (`process_pool`)."""
    chunksize = max(1, len(tasks) // (workers * 8))
    with spawn_pool(workers, initializer=_init_worker, initargs=(anatomy,)) as pool:
        yield from pool.map(_write_one, tasks, chunksize=chunksize)


def _existing_images(out_dir: Path) -> list[Path]:
    if not out_dir.exists():
        return []
    return [p for p in out_dir.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]


def generate_demo_dataset(
    out_dir: str | Path,
    scale: float = 1.0,
    seed: int = 0,
    difficulty: float = 1.0,
    image_size: int = 256,
    workers: int | None = None,
    progress: bool = False,
    confound: float = 1.0,
) -> DemoSummary:
    """Write a synthetic dataset shaped like the real one to `out_dir/<CLASS>/*.jpg`.

    `confound` (0..1) sets how strongly the acquisition metadata in the file names (scan year,
    sequence, site) depends on the class: 1.0 like the real data, 0.0 independent (module docstring);
    site and sequence also set scanner characteristics and tissue contrast, so they reach the pixels.
    Refuses an `out_dir` that already holds images, so two datasets never mix silently.
    """
    start = time.perf_counter()
    out = Path(out_dir)
    existing = _existing_images(out)
    if existing:
        raise DataError(
            f"{out} already contains {len(existing)} image file(s) (e.g. {existing[0]}); "
            "refusing to mix datasets: pass an empty or new directory"
        )
    specs = plan_dataset(
        scale=scale, seed=seed, difficulty=difficulty, image_size=image_size, confound=confound
    )
    for label in CLASS_COUNTS:
        (out / label).mkdir(parents=True, exist_ok=True)
    anatomy = load_anatomy()
    n_workers = max(1, min(workers if workers is not None else (os.cpu_count() or 1), len(specs)))
    tasks = [(spec, out) for spec in specs]
    labels = (
        _write_in_process(tasks, anatomy) if n_workers == 1 else _write_in_pool(tasks, anatomy, n_workers)
    )
    if progress:
        from tqdm import tqdm

        labels = tqdm(labels, total=len(tasks), desc="demo images", unit="img")
    counts = dict.fromkeys(CLASS_COUNTS, 0)
    for label in labels:
        counts[label] += 1
    return DemoSummary(
        out_dir=out,
        counts=counts,
        n_subjects=len({spec.subject_id for spec in specs}),
        n_bad=sum(spec.bad is not None for spec in specs),
        seconds=time.perf_counter() - start,
        n_duplicates=sum(spec.duplicate_of is not None for spec in specs),
    )
