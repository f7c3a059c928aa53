""" "Did it learn?": the check a trained model must pass before anyone looks at its test scores.

A network that never left chance keeps its training loss near ln(K) (K classes: the loss of predicting
every class with probability 1/K), or collapses onto one class. Both happened with the original CNN
recipe on the real slices (loss 1.609 = ln 5 for 8 epochs), and both are invisible in a macro-F1 alone
on a small test split. The verdict is recorded in `model.json` and the asset check, the CLI and the
promotion rule read it from there.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

#: The best epoch's training loss must be below this share of ln(K).
MAX_LOSS_SHARE_OF_CHANCE = 0.9

ADVICE = (
    "try a lower learning_rate (e.g. 3e-4), normalization 'per_image', warmup_epochs 1 with "
    "scheduler CosineAnnealing, or a model that trains from scratch (resnet18_gray)"
)


@dataclass(frozen=True)
class LearnCheck:
    passed: bool
    train_loss: float
    chance_loss: float
    val_predicted_classes: int
    num_classes: int
    message: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def learn_check(history: Sequence[Mapping[str, float]], best_epoch: int, num_classes: int) -> LearnCheck:
    """Fails when the best epoch's training loss is not below 0.9 x ln(K), or the model predicted a
    single class for the whole validation split at that epoch."""
    chance = math.log(num_classes)
    if not history or best_epoch < 1:
        return LearnCheck(False, math.nan, chance, 0, num_classes, "no epoch was trained")
    best = history[best_epoch - 1]
    loss = float(best["train_loss"])
    classes = int(best.get("val_predicted_classes", num_classes))
    limit = MAX_LOSS_SHARE_OF_CHANCE * chance
    problems = []
    if not loss < limit:
        problems.append(
            f"training loss at the best epoch ({best_epoch}) is {loss:.3f}, not clearly below chance "
            f"(ln {num_classes} = {chance:.3f}; limit {limit:.3f})"
        )
    if classes <= 1:
        problems.append(f"it predicts a single class for the whole validation split (epoch {best_epoch})")
    if problems:
        return LearnCheck(
            False, loss, chance, classes, num_classes, f"did not learn: {'; '.join(problems)}. {ADVICE}"
        )
    return LearnCheck(
        True,
        loss,
        chance,
        classes,
        num_classes,
        f"learned: training loss {loss:.3f} at the best epoch ({best_epoch}) vs chance {chance:.3f}; "
        f"{classes} of {num_classes} classes predicted on validation",
    )


def recorded_learn_check(training: Mapping[str, Any]) -> LearnCheck | None:
    """The verdict stored in `model.json`'s `training` block (None for artifacts from before the check)."""
    values = training.get("learn_check")
    return LearnCheck(**values) if values else None
