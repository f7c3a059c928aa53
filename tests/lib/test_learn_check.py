"""The "did it learn?" check: a model at chance or collapsed onto one class is caught and explained."""

from __future__ import annotations

import math

from neuroflux_lib.training.learn_check import learn_check, recorded_learn_check


def epoch(train_loss: float, predicted: int = 5) -> dict[str, float]:
    return {"train_loss": train_loss, "val_predicted_classes": float(predicted), "val_macro_f1": 0.3}


def test_loss_at_chance_fails_with_advice() -> None:
    """The original recipe on the real data: ln 5 = 1.609 for every epoch."""
    history = [epoch(1.609), epoch(1.6094), epoch(1.6093)]
    result = learn_check(history, best_epoch=2, num_classes=5)
    assert not result.passed and result.chance_loss == math.log(5)
    assert "not clearly below chance" in result.message and "learning_rate" in result.message


def test_single_class_predictions_fail_even_with_a_low_loss() -> None:
    result = learn_check([epoch(0.5, predicted=1)], best_epoch=1, num_classes=5)
    assert not result.passed and "single class" in result.message


def test_a_model_that_learned_passes_and_round_trips() -> None:
    history = [epoch(1.5), epoch(0.9), epoch(0.7)]
    result = learn_check(history, best_epoch=2, num_classes=5)
    assert result.passed and result.train_loss == 0.9
    assert recorded_learn_check({"learn_check": result.to_dict()}) == result
    assert recorded_learn_check({}) is None


def test_the_limit_is_ninety_percent_of_chance() -> None:
    limit = 0.9 * math.log(3)
    assert learn_check([epoch(limit - 0.01, 3)], 1, 3).passed
    assert not learn_check([epoch(limit + 0.01, 3)], 1, 3).passed
    assert not learn_check([], 0, 3).passed
