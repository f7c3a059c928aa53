-- Run once by the postgres image when its volume is first initialised (docker-entrypoint-initdb.d).
-- Optuna studies get a database of their own: Optuna and Dagster both keep an `alembic_version` table,
-- so they cannot share one. URL: NEUROFLUX_OPTUNA_STORAGE in deploy/docker-compose.yaml.
CREATE DATABASE optuna;
