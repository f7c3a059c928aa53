# One image for every role: the `neuroflux` CLI (`docker run neuroflux train ...`), the Dagster UI
# (`docker run -p 3000:3000 neuroflux ui`) and the webserver / daemon / code location of
# deploy/docker-compose.yaml and deploy/k8s/values.yaml. See docs/deployment.md.
#
# torch in requirements.lock is PyPI's CUDA build: `docker run --gpus all` trains on the GPU, and the same
# image trains on the CPU without it (the `auto` device falls back).
#
# BASE_IMAGE: any image with Python 3.11 and its venv module (python:3.11-slim, or Debian bookworm's
# python3 + python3-venv, which is what CI builds when the registry's image cannot be pulled: `make image`).
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

# Everything is installed into a virtual environment, so a base whose system Python is marked
# externally managed (PEP 668, Debian's) works the same as python:3.11-slim.
ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    NEUROFLUX_ROOT=/app \
    DAGSTER_HOME=/app/storage \
    TORCH_HOME=/app/storage/torch \
    MPLCONFIGDIR=/tmp/matplotlib \
    WANDB_MODE=offline

# uid 1000 matches the usual first user on Linux hosts, so bind-mounted data/ and storage/ stay writable;
# other hosts run with `--user "$(id -u):$(id -g)"` (nothing in the image depends on the home folder).
RUN useradd --create-home --uid 1000 --user-group neuroflux \
    && python3 -m venv "$VIRTUAL_ENV" \
    && "$VIRTUAL_ENV/bin/pip" install --upgrade "pip>=24"

WORKDIR /app

# The exact environment of `make install`: the lock first (a cached layer while only code changes),
# then the project itself without dependencies. Editable, so PROJECT_ROOT is /app and configs/ is found.
COPY requirements.lock ./
RUN pip install -r requirements.lock
COPY pyproject.toml README.md ./
# The configs before the CLI's smoke test: its Dagster definitions read configs/ when they load.
COPY configs/ configs/
COPY neuroflux_lib/ neuroflux_lib/
COPY neuroflux_assets/ neuroflux_assets/
# The smoke test imports matplotlib as root: its cache folder must not stay behind, root-owned.
RUN pip install --no-deps --no-build-isolation -e . && neuroflux --help > /dev/null && rm -rf /tmp/matplotlib

COPY benchmarks/ benchmarks/
COPY dagster.yaml workspace.yaml ./
COPY deploy/entrypoint.sh deploy/dagster.yaml deploy/workspace.yaml deploy/

RUN mkdir -p data storage && chown neuroflux:neuroflux data storage
USER neuroflux

VOLUME ["/app/data", "/app/storage"]
EXPOSE 3000 4000

# Probes the webserver (ui, webserver) or the gRPC code server; other roles report healthy.
HEALTHCHECK --interval=30s --timeout=10s --start-period=120s --retries=3 \
    CMD ["/app/deploy/entrypoint.sh", "healthcheck"]

ENTRYPOINT ["/app/deploy/entrypoint.sh"]
CMD ["--help"]
