"""Broken images: fixed rules on one image's own size and statistics, never on the rest of the dataset.

A broken image carries no anatomy (blank, constant, saturated, pure noise, too small to classify) and is
excluded from every split. Each rule is an absolute threshold on the statistics of
`neuroflux_lib.data.quality`, so the verdict does not change when the dataset grows or a new scanner
protocol arrives (the statistical outlier rules of `outliers` do depend on the dataset and only report).

| rule       | broken when                                 | demo: broken | demo: legitimate    |
|------------|---------------------------------------------|--------------|---------------------|
| tiny       | shorter side < 32 px                        | 16 px        | >= 32 (real: >= 64) |
| constant   | contrast (grey-level std) < 2               | 0 - 1.1      | >= 38               |
| flat       | dynamic range (99th - 1st percentile) < 16  | 0 - 5        | >= 115              |
| near_blank | background fraction (pixels < 10) > 0.95    | 1.0          | <= 0.56             |
| saturated  | saturated fraction (pixels >= 250) > 0.10   | 0.17 - 0.45  | <= 0.07             |
| noise      | sharpness / contrast^2 > 6                  | 20           | <= 2.7              |

"Demo" is the generator's deliberately bad images against every legitimate demo image (both intensity
protocols; generated at 32, 48 and 256 px, sizes 32 to 336 px). The noise rule uses that the Laplacian
of uncorrelated pixels has 20 times their variance, while neighbouring pixels of an image with
structure agree; it is not applied to near-constant images (contrast < 2), whose tiny variance makes
the ratio meaningless. A truncated or undecodable file never gets this far: it is unreadable.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

MIN_SIDE_PX = 32
MIN_CONTRAST = 2.0
MIN_DYNAMIC_RANGE = 16.0
MAX_BACKGROUND_FRACTION = 0.95
MAX_SATURATED_FRACTION = 0.10
MAX_NOISE_RATIO = 6.0


@dataclass(frozen=True)
class BrokenRule:
    """One rule: `value(quality)` compared with `threshold` (`above` = broken when greater)."""

    name: str
    label: str
    value: Callable[[pd.DataFrame], pd.Series]
    threshold: float
    above: bool

    def fires(self, quality: pd.DataFrame) -> pd.Series:
        compare = operator.gt if self.above else operator.lt
        return compare(self.value(quality), self.threshold).fillna(False).astype(bool)

    def reason(self, value: float) -> str:
        return f"{self.name} ({self.label} {value:.3g} {'>' if self.above else '<'} {self.threshold:g})"


def _noise_ratio(quality: pd.DataFrame) -> pd.Series:
    contrast = quality["contrast"].astype(float)
    return (quality["sharpness"].astype(float) / contrast**2).where(contrast >= MIN_CONTRAST)


BROKEN_RULES: tuple[BrokenRule, ...] = (
    BrokenRule("tiny", "shorter side px", lambda q: q[["height", "width"]].min(axis=1), MIN_SIDE_PX, False),
    BrokenRule("constant", "contrast", lambda q: q["contrast"], MIN_CONTRAST, False),
    BrokenRule("flat", "dynamic range", lambda q: q["dynamic_range"], MIN_DYNAMIC_RANGE, False),
    BrokenRule(
        "near_blank", "background fraction", lambda q: q["background_fraction"], MAX_BACKGROUND_FRACTION, True
    ),
    BrokenRule(
        "saturated", "saturated fraction", lambda q: q["saturated_fraction"], MAX_SATURATED_FRACTION, True
    ),
    BrokenRule("noise", "sharpness/contrast^2", _noise_ratio, MAX_NOISE_RATIO, True),
)


def broken_reasons(quality: pd.DataFrame, rules: tuple[BrokenRule, ...] = BROKEN_RULES) -> pd.Series:
    """`broken_reason` per readable image (same index): the rules it breaks joined by "; ", or ""."""
    found: dict[object, list[str]] = {}
    for rule in rules:
        values = rule.value(quality).astype(float)
        for key in values.index[rule.fires(quality)]:
            found.setdefault(key, []).append(rule.reason(values[key]))
    return pd.Series(
        ["; ".join(found.get(key, [])) for key in quality.index], index=quality.index, dtype=object
    )
