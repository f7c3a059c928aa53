"""The bootstrap is pinned: subjects move together, differences are paired, a seed fixes the result."""

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score, f1_score

from neuroflux_lib.evaluation.intervals import Bootstrap, metrics_from_confusion, resample_counts


def test_confusion_metrics_equal_sklearn():
    rng = np.random.default_rng(3)
    y_true, y_pred = rng.integers(0, 5, 300), rng.integers(0, 5, 300)
    y_true[y_true == 4] = 3  # class 4 absent from the truth: macro-F1 still averages it (as 0)
    confusion = np.zeros((5, 5))
    np.add.at(confusion, (y_true, y_pred), 1)
    metrics = metrics_from_confusion(confusion)
    labels = list(range(5))
    assert metrics["macro_f1"] == pytest.approx(f1_score(y_true, y_pred, labels=labels, average="macro"))
    assert metrics["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y_true, y_pred))
    per_class = f1_score(y_true, y_pred, labels=labels, average=None, zero_division=0)
    assert [metrics[f"f1_{i}"] for i in labels] == pytest.approx(per_class)


def test_a_subjects_slices_move_together():
    """Each resample draws whole subjects: a subject's slices appear exactly (draws x slices) times."""
    groups = np.repeat(np.arange(6), [1, 2, 3, 4, 5, 6])
    boot = Bootstrap.of(np.zeros(len(groups), dtype=int), groups, 2, resamples=50, seed=1)
    assert boot.counts.shape == (50, 6)
    assert (boot.counts.sum(axis=1) == 6).all()  # as many subjects drawn as there are
    images_per_resample = boot.counts @ np.bincount(groups)
    assert len(set(images_per_resample.tolist())) > 1  # image totals vary: subjects, not images, are drawn


def test_subject_resampling_is_wider_than_image_resampling_for_correlated_slices():
    """Ten slices per subject, all right or all wrong: treating them as independent understates doubt."""
    rng = np.random.default_rng(0)
    subjects = np.repeat(np.arange(20), 10)
    y_true = np.repeat(rng.integers(0, 2, 20), 10)
    right = np.repeat(rng.random(20) < 0.7, 10)
    y_pred = np.where(right, y_true, 1 - y_true)
    by_subject = Bootstrap.of(y_true, subjects, 2).intervals(y_pred)["accuracy"]
    by_image = Bootstrap.of(y_true, np.arange(200), 2).intervals(y_pred)["accuracy"]
    assert by_subject.high - by_subject.low > 2 * (by_image.high - by_image.low)


def test_paired_difference_uses_the_same_resamples():
    rng = np.random.default_rng(1)
    y_true = rng.integers(0, 3, 120)
    groups = np.repeat(np.arange(40), 3)
    good = np.where(rng.random(120) < 0.8, y_true, (y_true + 1) % 3)
    same = Bootstrap.of(y_true, groups, 3)
    assert same.difference(good, good).as_dict() == {"estimate": 0.0, "low": 0.0, "high": 0.0}
    slightly_worse = good.copy()
    slightly_worse[:6] = (y_true[:6] + 1) % 3
    paired = same.difference(good, slightly_worse)
    unpaired_width = sum(
        same.intervals(p)["macro_f1"].high - same.intervals(p)["macro_f1"].low for p in (good, slightly_worse)
    )
    assert paired.estimate > 0 and paired.high - paired.low < unpaired_width / 2


def test_a_fixed_seed_gives_identical_intervals_and_another_seed_does_not():
    rng = np.random.default_rng(2)
    y_true, y_pred = rng.integers(0, 5, 175), rng.integers(0, 5, 175)
    groups = rng.integers(0, 100, 175)
    first = Bootstrap.of(y_true, groups, 5, seed=7).intervals(y_pred)
    again = Bootstrap.of(y_true, groups, 5, seed=7).intervals(y_pred)
    other = Bootstrap.of(y_true, groups, 5, seed=8).intervals(y_pred)
    assert first == again and first != other
    assert (resample_counts(10, 1000, 0) == resample_counts(10, 1000, 0)).all()
    assert Bootstrap.of(y_true, groups, 5).counts.shape[0] >= 1000


def test_chance_is_what_a_predictor_with_the_same_answer_rates_scores_without_information():
    rng = np.random.default_rng(4)
    y_true = rng.integers(0, 5, 200)
    boot = Bootstrap.of(y_true, np.arange(200), 5)
    constant = np.zeros(200, dtype=int)  # "PTE" for everything: far below 1/K, and exactly at chance
    assert boot.chance(constant).estimate == pytest.approx(boot.intervals(constant)["macro_f1"].estimate)
    assert boot.chance(constant).estimate < 0.2
    spread = rng.integers(0, 5, 200)  # even answers, no information: chance close to 1/K
    assert boot.chance(spread).estimate == pytest.approx(0.2, abs=0.03)
    assert boot.chance(y_true).high < boot.intervals(y_true)["macro_f1"].low  # a perfect model is not
