# One-command setup and run. Every target installs the pinned environment first (skipped when
# requirements.lock and pyproject.toml are unchanged since the last install).
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
LOCK_HASH := $(shell cat requirements.lock pyproject.toml | sha256sum | cut -c1-16)
STAMP := $(VENV)/.installed-$(LOCK_HASH)
export DAGSTER_HOME := $(CURDIR)/storage
DATA_DIR ?= data
DEMO_SCALE ?= 1.0
DEMO_SEED ?= 0
# Dagster: the profile the UI and `make demo` runs default to (configs/profiles/<name>.json).
NEUROFLUX_PROFILE ?= cpu-demo
DAGSTER_PORT ?= 3000

.PHONY: install demo demo-data dev dagster-home test lint format bench lock image

install: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	@rm -f $(VENV)/.installed-*
	@touch $@

demo-data: install
	@if [ -z "$$(find $(DATA_DIR) -mindepth 2 -type f 2>/dev/null | head -1)" ]; then \
		$(BIN)/neuroflux demo-data --out $(DATA_DIR) --scale $(DEMO_SCALE) --seed $(DEMO_SEED); \
	else echo "$(DATA_DIR)/ already holds images: using them (empty it to regenerate the demo set)"; fi

# The main job: every asset materialized through Dagster (runs, metadata and checks then show in
# `make dev`), both models trained and evaluated with the CPU demo profile, reports printed.
demo: demo-data dagster-home
	$(BIN)/neuroflux demo --profile $(NEUROFLUX_PROFILE)

# Dagster reads dagster.yaml from DAGSTER_HOME (storage/): link the repo's one copy into it.
dagster-home:
	@mkdir -p storage
	@ln -sfn ../dagster.yaml storage/dagster.yaml

dev: install dagster-home  ## Dagster UI + daemon on http://127.0.0.1:$(DAGSTER_PORT)
	@echo "Dagster UI: http://127.0.0.1:$(DAGSTER_PORT)  (profile $(NEUROFLUX_PROFILE); Ctrl-C to stop)"
	@# Started inside DAGSTER_HOME so dagster dev does not warn about the root dagster.yaml it links to.
	cd storage && NEUROFLUX_PROFILE=$(NEUROFLUX_PROFILE) $(abspath $(BIN))/dagster dev -w ../workspace.yaml \
		-h 127.0.0.1 -p $(DAGSTER_PORT)

test: install
	$(BIN)/python -m pytest -q

# The Docker image of docs/deployment.md. Where python:3.11-slim cannot be pulled, a stand-in base is built
# from Debian's packages first (.ci/docker.sh); without a Docker engine this says so in one line.
IMAGE ?= neuroflux:latest
image:
	@source .ci/docker.sh && { docker_engine || exit 0; } && base=$$(python_base_image) && \
		echo "make image: $(IMAGE) on $$base" && \
		docker build --build-arg BASE_IMAGE="$$base" -t $(IMAGE) .

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Every speed figure of issue 14, the original's way vs ours in the same run, then one table (~25 min on
# 2 cores; benchmarks/README.md). bench_recipes.py (accuracy over seeds) is separate: it takes longer.
BENCH_RESULTS := storage/bench/results.jsonl
bench: install
	@mkdir -p $(dir $(BENCH_RESULTS)) && rm -f $(BENCH_RESULTS)
	NEUROFLUX_BENCH_RESULTS=$(abspath $(BENCH_RESULTS)) $(BIN)/python benchmarks/bench_quality.py
	NEUROFLUX_BENCH_RESULTS=$(abspath $(BENCH_RESULTS)) $(BIN)/python benchmarks/bench_train.py
	NEUROFLUX_BENCH_RESULTS=$(abspath $(BENCH_RESULTS)) $(BIN)/python benchmarks/bench_predict.py
	NEUROFLUX_BENCH_RESULTS=$(abspath $(BENCH_RESULTS)) $(BIN)/python benchmarks/bench_dagster.py
	$(BIN)/python benchmarks/bench_baselines.py
	$(BIN)/python benchmarks/bench_gpu.py
	@$(BIN)/python benchmarks/summary.py $(BENCH_RESULTS)

lock:  ## regenerate requirements.lock from the current .venv (after changing dependencies)
	$(BIN)/python -m pip freeze --all --exclude-editable | grep -v '^pip==' > requirements.lock
