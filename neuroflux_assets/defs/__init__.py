"""Everything Dagster loads, one module per stage: assets, checks, jobs, schedules, sensors, resources.

`neuroflux_assets.definitions` loads this folder with `dg.load_from_defs_folder` (the `dg` layout).
"""
