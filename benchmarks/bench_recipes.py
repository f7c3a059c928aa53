"""Recipes that learn: each model of a profile against its best baseline, over demo seeds, plus the
original CNN recipe once.

Usage: python benchmarks/bench_recipes.py [--seeds 0 1 2] [--profile cpu-demo] [--original-seed 0]
       [--data-root DIR] [--models NAME ...] [--out results.json]

For every seed: the full-size demo set (generated into --data-root/seed<N>, reused when present), the
data steps with the profile's dataset settings, the baselines, then every model the profile trains
(`trains`), with the profile's settings, trained and evaluated exactly as the pipeline does
(`train_model`, `evaluate_artifact`). On --original-seed, `neuroflux_cnn` is also trained with the
original project's values (configs/models/neuroflux_cnn.json: Adam 1e-3, ReduceLROnPlateau, c=64,
0.5/0.5 normalisation, flip + affine only), at the profile's image size and epoch budget so it costs the
same as the new recipe. Prints one row per (seed, model): test macro-F1 with its subject-bootstrap 95%
interval, the best baseline's, the paired gain and its interval, the "did it learn?" verdict, training
time. Target (issue 13): the profile's best model's paired interval lies above 0 on every seed, and the
models of the profile train in at most 4 minutes together.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from neuroflux_lib.config import DatasetConfig, ModelConfig, with_overrides
from neuroflux_lib.config.resolve import (
    load_config,
    model_config_path,
    profile_models,
    resolve_config,
)
from neuroflux_lib.data.pipeline import run_preprocess
from neuroflux_lib.demo.generator import generate_demo_dataset
from neuroflux_lib.evaluation.evaluate import evaluate_artifact
from neuroflux_lib.evaluation.intervals import Interval
from neuroflux_lib.evaluation.reference import baselines_of, reference_report
from neuroflux_lib.training.steps import train_model


def dataset_for(seed: int, data_root: Path, profile_name: str) -> DatasetConfig:
    data = data_root / f"seed{seed}"
    if not any(data.glob("*/*")):
        generate_demo_dataset(data, scale=1.0, seed=seed)
    folders = {"data_dir": str(data), "storage_dir": str(data_root / f"storage{seed}")}
    return resolve_config(profile=profile_name, dataset_values=folders).dataset


def run(
    label: str, config: ModelConfig, dataset: DatasetConfig, pre, reference: dict, seed: int, root: Path
) -> dict:
    started = time.perf_counter()
    trained = train_model(
        config,
        dataset,
        pre.balanced,
        pre.splits,
        artifact_dir=root / f"artifacts{seed}" / label,
        work_dir=root / f"work{seed}" / label,
    )
    seconds = time.perf_counter() - started
    evaluation = evaluate_artifact(
        trained.artifact_dir,
        dataset,
        pre.splits,
        root / f"reports{seed}" / label,
        baselines=baselines_of(reference),
        confound=reference["confound"],
    )
    comparison = evaluation.report.comparison
    best = comparison.best_baseline
    return {
        "seed": seed,
        "model": label,
        "test_macro_f1": comparison.model.macro_f1.as_dict(),
        "val_macro_f1": evaluation.report.val_macro_f1,
        "best_baseline": best,
        "baseline_test_macro_f1": comparison.baselines[best].test.macro_f1.as_dict(),
        "gain": comparison.difference.as_dict(),
        "learned": trained.learned.passed,
        "learn_check": trained.learned.message,
        "epochs": len(trained.fit.history),
        "train_seconds": seconds,
    }


def line(row: dict) -> str:
    interval = Interval(**row["gain"])
    return (
        f"seed {row['seed']} {row['model']:<22} test {Interval(**row['test_macro_f1'])} | "
        f"{row['best_baseline']} {Interval(**row['baseline_test_macro_f1'])} | gain {interval} "
        f"{'ABOVE 0' if interval.low > 0 else 'not above 0'} | learned {row['learned']} | "
        f"{row['epochs']} epochs {row['train_seconds']:.0f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--profile", default="cpu-demo")
    parser.add_argument("--models", nargs="*", default=None, help="default: the profile's `trains`")
    parser.add_argument("--original-seed", type=int, default=0, help="-1: do not run the original recipe")
    parser.add_argument("--data-root", type=Path, default=Path("/tmp/neuroflux-bench-recipes"))
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    names = args.models or profile_models(args.profile)
    rows = []
    for seed in args.seeds:
        dataset = dataset_for(seed, args.data_root, args.profile)
        pre = run_preprocess(dataset)
        reference = reference_report(pre.splits, dataset)
        recipes = {name: resolve_config(profile=args.profile, model=name).model for name in names}
        if seed == args.original_seed:
            new = (
                recipes.get("neuroflux_cnn")
                or resolve_config(profile=args.profile, model="neuroflux_cnn").model
            )
            original = load_config(ModelConfig, model_config_path("neuroflux_cnn"))
            budget = {"image_size": new.image_size, "num_epochs": new.num_epochs}
            recipes["neuroflux_cnn_original"] = with_overrides(original, budget)
        for label, config in recipes.items():
            rows.append(run(label, config, dataset, pre, reference, seed, args.data_root))
            print(line(rows[-1]), flush=True)
    demo_rows = [row for row in rows if row["model"] in names]
    for seed in args.seeds:
        seconds = sum(row["train_seconds"] for row in demo_rows if row["seed"] == seed)
        print(f"seed {seed}: the profile's models trained in {seconds / 60:.1f} min together (target <= 4)")
    if args.out:
        args.out.write_text(json.dumps(rows, indent=2, default=float))


if __name__ == "__main__":
    main()
