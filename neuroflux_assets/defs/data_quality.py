"""Stage 1, group `data_quality`: what is in the data folder, how good each image is, what is odd."""

import dagster as dg
import pandas as pd

from neuroflux_assets import metadata as md
from neuroflux_assets.metadata import table_asset
from neuroflux_assets.resources import DatasetResource
from neuroflux_lib.data.discovery import NO_SUBJECT
from neuroflux_lib.data.outliers import embed_statistics, flags_per_class
from neuroflux_lib.data.pipeline import detect_outliers, scan_images
from neuroflux_lib.data.quality import STAT_COLUMNS
from neuroflux_lib.plots import embedding_scatter, image_gallery, quality_histograms

GROUP = "data_quality"
MANIFEST_COLUMNS = [
    "path",
    "class_name",
    "subject_id",
    "subject_source",
    "size_bytes",
    "sha256",
    "readable",
    "status",
    "reason",
]
QUALITY_COLUMNS = [
    "path",
    "class_name",
    "subject_id",
    "sha256",
    "readable",
    "height",
    "width",
    "dhash",
    "dup_group",
    *STAT_COLUMNS,
]


@table_asset(GROUP)
def raw_images(
    context: dg.AssetExecutionContext, dataset: DatasetResource
) -> dg.MaterializeResult[pd.DataFrame]:
    """Every image file under the data folder, decoded once: class, subject, bytes, hash, readable.

    Decoding happens here (not in `image_quality`) because readability is part of the manifest and the
    library computes statistics in the same pass; `image_quality` selects them. The data version is the
    manifest digest, so an unchanged folder yields an unchanged version downstream.
    """
    config = dataset.dataset_config()
    discovery, images = scan_images(config)
    images["dup_group"] = pd.array(images["dup_group"], dtype="Int64")
    names = list(config.class_names)
    counts = images.groupby("class_name").agg(images=("path", "size"), readable=("readable", "sum"))
    counts = counts.reindex(names, fill_value=0).astype(int)
    counts.loc["total"] = counts.sum()
    bad = images.loc[~images["readable"].astype(bool)]
    no_subject = images.loc[images["subject_source"] == NO_SUBJECT]
    sources = images["subject_source"].value_counts().rename("files").rename_axis("subject id from")
    version = md.digest(images, ["path", "sha256"])
    context.log.info(
        f"{len(images)} images, {len(bad)} unreadable, {len(no_subject)} without a subject id, "
        f"manifest digest {version}"
    )
    return dg.MaterializeResult(
        value=images,
        data_version=dg.DataVersion(version),
        metadata={
            "dagster/row_count": len(images),
            "manifest_digest": version,
            "data_dir": dg.MetadataValue.path(config.data_dir),
            "images_per_class": md.table(counts.rename_axis("class")),
            "unreadable": len(bad),
            "unreadable_files": md.bullet_list(
                f"`{r.path}`: {r.reason} [{r.status}]" for r in bad.itertuples()
            ),
            "subject_ids_from": md.table(sources.to_frame()),
            "files_without_subject_id": len(no_subject),
            "files_without_subject_id_examples": md.bullet_list(
                f"`{p}`" for p in no_subject["path"].head(10)
            ),
            "unknown_folders": md.bullet_list(discovery.unknown_folders),
            "missing_classes": md.bullet_list(discovery.missing_classes),
            "ignored_non_image_files": len(discovery.ignored_files),
            "preview": md.table(images[MANIFEST_COLUMNS].head(10), index=False),
        },
    )


@table_asset(GROUP)
def image_quality(dataset: DatasetResource, raw_images: pd.DataFrame) -> dg.MaterializeResult[pd.DataFrame]:
    """Quality statistics of the readable images (intensity, contrast, SNR, entropy, ...), with plots."""
    config = dataset.dataset_config()
    quality = raw_images.loc[raw_images["readable"].astype(bool), QUALITY_COLUMNS].reset_index(drop=True)
    summary = quality.groupby("class_name")[STAT_COLUMNS].mean().reindex(list(config.class_names))
    return dg.MaterializeResult(
        value=quality,
        metadata={
            "dagster/row_count": len(quality),
            "mean_per_class": md.table(summary.rename_axis("class")),
            "histograms": md.image(
                quality_histograms(quality, STAT_COLUMNS, config.class_names), "histograms"
            ),
        },
    )


@table_asset(GROUP, "sklearn")
def outliers(dataset: DatasetResource, image_quality: pd.DataFrame) -> dg.MaterializeResult[pd.DataFrame]:
    """Broken images (fixed rules, always excluded) and statistical outliers (reported with the statistic,
    direction and z-score that flagged them; kept unless `outlier_action` is "exclude"), one row each."""
    config = dataset.dataset_config()
    found, _reasons = detect_outliers(image_quality, config)
    indexed = image_quality.set_index("path")
    embedding = embed_statistics(indexed, seed=config.random_seed)
    broken, flagged = found.loc[found["kind"] == "broken"], found.loc[found["kind"] == "outlier"]
    rule = f"{config.outlier_rule}, threshold {config.outlier_threshold}"
    title = (
        f"{len(flagged)} outliers ({rule}; {'excluded' if config.outlier_action == 'exclude' else 'kept'})"
    )
    scatter = embedding_scatter(
        embedding, indexed["class_name"], flagged["path"].tolist(), config.class_names
    )

    def gallery(table: pd.DataFrame, heading: str) -> dg.MetadataValue:
        captioned = table.assign(caption=table["class_name"] + ": " + table["reasons"])
        return md.image(image_gallery(captioned, heading), heading)

    return dg.MaterializeResult(
        value=found,
        metadata={
            "dagster/row_count": len(found),
            "broken_excluded": len(broken),
            "outliers": len(flagged),
            "outlier_action": config.outlier_action,
            "rule": rule,
            "per_class": md.table(flags_per_class(found, image_quality, config.class_names)),
            "gallery": gallery(flagged, title),
            "broken_gallery": gallery(broken, f"{len(broken)} broken images (excluded)"),
            "tsne_dbscan": md.image(scatter, "t-SNE of quality statistics with DBSCAN clusters"),
            "broken_images": md.table(broken[["path", "class_name", "reasons"]], index=False),
            "examples": md.table(
                flagged[["path", "class_name", "excluded", "reasons"]].head(20), index=False
            ),
        },
    )
