"""`neuroflux demo-data`: write a synthetic dataset shaped like the real one."""

from __future__ import annotations

import argparse

from neuroflux_assets.cli.options import Mode


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="data")
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the real class counts")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--difficulty", type=float, default=1.0, help="higher = subtler class signal")
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument(
        "--confound",
        type=float,
        default=1.0,
        help="how strongly scan year, sequence and site in the file names depend on the class "
        "(1 = like the real data, 0 = independent)",
    )


def run(args: argparse.Namespace) -> int:
    from neuroflux_lib.demo.generator import generate_demo_dataset

    summary = generate_demo_dataset(
        args.out,
        scale=args.scale,
        seed=args.seed,
        difficulty=args.difficulty,
        image_size=args.image_size,
        workers=args.workers,
        progress=True,
        confound=args.confound,
    )
    counts = ", ".join(f"{k} {v}" for k, v in summary.counts.items())
    print(
        f"Wrote {sum(summary.counts.values())} images ({counts}) of {summary.n_subjects} subjects, "
        f"{summary.n_bad} deliberately bad, to {summary.out_dir} in {summary.seconds:.1f} s"
    )
    return 0


MODE = Mode(
    "demo-data", "write a synthetic dataset shaped like the real one", run, add_arguments, library_logs=True
)
