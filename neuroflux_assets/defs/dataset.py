"""Stage 2, group `dataset`: leak-free splits by subject, then a balanced training split."""

import dagster as dg
import pandas as pd

from neuroflux_assets import metadata as md
from neuroflux_assets.metadata import table_asset
from neuroflux_assets.resources import DatasetResource
from neuroflux_lib.data.balancing import class_balance
from neuroflux_lib.data.outliers import excluded_paths
from neuroflux_lib.data.pipeline import balance_dataset, split_dataset
from neuroflux_lib.data.splits import SPLITS, split_counts
from neuroflux_lib.paths import StoragePaths

GROUP = "dataset"


@table_asset(GROUP)
def dataset_splits(
    dataset: DatasetResource, image_quality: pd.DataFrame, outliers: pd.DataFrame
) -> dg.MaterializeResult[pd.DataFrame]:
    """Train / val / test by subject and near-duplicate group, stratified by class; broken images (and
    outliers when `outlier_action` is "exclude") left out. Fails naming the class when a class has fewer
    than `min_images_per_class` usable images or none in a split."""
    config = dataset.dataset_config()
    splits = split_dataset(image_quality, outliers, config)
    excluded = excluded_paths(outliers)
    subjects = splits.groupby("split")["subject_id"].nunique().reindex(list(SPLITS), fill_value=0)
    return dg.MaterializeResult(
        value=splits,
        metadata={
            "dagster/row_count": len(splits),
            "images_per_class_and_split": md.table(
                split_counts(splits, config.class_names).rename_axis("class")
            ),
            "subjects_per_split": md.table(subjects.rename("subjects").to_frame()),
            "ratios": str(list(config.train_val_test_split)),
            "excluded_images": len(excluded),
            "kept_outliers": len(outliers) - len(excluded),
            "leakage_groups": int(splits["group"].nunique()),
        },
    )


@table_asset(GROUP)
def balanced_train_set(
    dataset: DatasetResource, dataset_splits: pd.DataFrame
) -> dg.MaterializeResult[pd.DataFrame]:
    """The train split topped up with flip + affine copies until classes are equal (train only)."""
    config = dataset.dataset_config()
    balanced = balance_dataset(dataset_splits, config)
    balance = class_balance(balanced, config.class_names)
    return dg.MaterializeResult(
        value=balanced,
        metadata={
            "dagster/row_count": len(balanced),
            "augmented_images": int(balanced["augmented"].sum()),
            "counts_before_after": md.table(balance.rename_axis("class")),
            "augmented_dir": dg.MetadataValue.path(str(StoragePaths(config.storage_dir).augmented)),
        },
    )
