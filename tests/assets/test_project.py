"""The project as Dagster's `dg` tooling sees it (`dg check defs` over the defs folder), declarative
automation of drift_reference, and imports that do not drag the definitions in."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import dagster as dg

from neuroflux_lib.paths import project_root

PROJECT_ROOT = project_root()
BIN = Path(sys.executable).parent
DRIFT_REFERENCE = dg.AssetKey("drift_reference")


def test_dg_check_defs_loads_the_project() -> None:
    completed = subprocess.run(
        [BIN / "dg", "check", "defs"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600
    )
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output[-3000:]
    assert "All definitions loaded successfully" in output


def test_drift_reference_follows_a_new_production_model_on_its_own() -> None:
    """eager(): materialized once its inputs exist, again when production_model changes, not for an
    evaluation alone; models a profile never evaluates (missing partitions) do not hold it back."""
    from neuroflux_assets.definitions import defs

    sensor = defs.resolve_sensor_def("drift_reference_automation")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    with dg.instance_for_test() as instance:

        def materialized(key: str, partition: str | None = None) -> None:
            instance.report_runless_asset_event(dg.AssetMaterialization(key, partition=partition))

        cursor = None

        def requested() -> bool:
            nonlocal cursor
            result = dg.evaluate_automation_conditions(
                defs=defs,
                instance=instance,
                asset_selection=dg.AssetSelection.assets(DRIFT_REFERENCE),
                cursor=cursor,
            )
            cursor = result.cursor
            return result.get_num_requested(DRIFT_REFERENCE) == 1

        for key in ("image_quality", "dataset_splits", "evaluation_report", "production_model"):
            assert not requested(), f"requested before {key} exists"
            materialized(key, "neuroflux_cnn" if key == "evaluation_report" else None)
        assert requested()
        materialized("drift_reference")
        assert not requested()
        materialized("evaluation_report", "resnet18_gray")
        assert not requested()
        materialized("production_model")
        assert requested()


def test_helper_modules_import_without_the_api_or_the_definitions() -> None:
    """`neuroflux_assets.metadata` and the sensors need neither the predictor API nor the definitions;
    `from neuroflux_assets import load_predictor` still works (imported on first use)."""
    code = """
import json, sys
loaded = lambda: sorted(m for m in sys.modules if m.startswith("neuroflux_assets"))
from neuroflux_assets import metadata
first = loaded()
import neuroflux_assets.defs.sensors
second = loaded()
from neuroflux_assets import load_predictor
print(json.dumps([first, second, load_predictor.__module__]))
"""
    completed = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    first, second, where = json.loads(completed.stdout.strip().splitlines()[-1])
    assert first == ["neuroflux_assets", "neuroflux_assets.metadata"]
    assert "neuroflux_assets.api" not in second and "neuroflux_assets.definitions" not in second
    assert where == "neuroflux_assets.api"
