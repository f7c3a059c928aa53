"""What baselines and intervals add to an evaluation: time to fit the three baselines (plus one per
acquisition field), bootstrap their val/test intervals and the confound report, then the model's own
intervals and paired difference, on the full-size demo set.

Usage: python benchmarks/bench_baselines.py [--data DIR] [--scale S]
Without --data the demo set is generated into a temporary folder (seed 0). Target: under 30 s on 2 cores.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from neuroflux_lib.config import DatasetConfig, with_overrides
from neuroflux_lib.config.resolve import load_config
from neuroflux_lib.data.pipeline import run_preprocess
from neuroflux_lib.demo.generator import generate_demo_dataset
from neuroflux_lib.evaluation.comparison import compare
from neuroflux_lib.evaluation.intervals import Bootstrap, Interval
from neuroflux_lib.evaluation.reference import baselines_of, reference_report
from neuroflux_lib.paths import config_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--scale", type=float, default=1.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data or Path(tmp) / "data"
        if args.data is None:
            generate_demo_dataset(data, scale=args.scale, seed=0)
        config = with_overrides(
            load_config(DatasetConfig, config_dir() / "dataset_config.json"),
            {"data_dir": str(data), "storage_dir": str(Path(tmp) / "storage"), "image_size": 64},
        )
        splits = run_preprocess(config).splits
        started = time.perf_counter()
        reference = reference_report(splits, config)
        fitted = time.perf_counter() - started
        test, val = (splits.loc[splits["split"] == name] for name in ("test", "val"))
        # A stand-in model: the thumbnail baseline's predictions, so only the statistics are timed.
        predictions = reference["baselines"]["thumbnail"]["test"]
        started = time.perf_counter()
        labels = test["class_name"].map({c: i for i, c in enumerate(config.class_names)}).to_numpy()
        bootstrap = Bootstrap.of(labels, test["group"], 5)
        bootstrap.intervals(predictions)
        bootstrap.chance(predictions)
        compare("model", test, val, predictions, baselines_of(reference), config.class_names)
        model_side = time.perf_counter() - started
    summary = {name: item["test"]["macro_f1"] for name, item in reference["summary"].items()}
    print(f"images: {len(splits)} ({len(test)} test, {test['group'].nunique()} test subject groups)")
    print(f"baselines + their intervals + confound report: {fitted:.1f} s (cache cold: thumbnails decoded)")
    print(f"model intervals + chance + paired difference:  {model_side:.2f} s")
    print(f"total added to an evaluation:                  {fitted + model_side:.1f} s (target < 30 s)")
    for name, interval in summary.items():
        print(f"  {name:<10} test macro-F1 {Interval(**interval)}")
    print(f"confound warning: {reference['confound']['warning']}")


if __name__ == "__main__":
    main()
