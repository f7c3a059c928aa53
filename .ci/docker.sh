# shellcheck shell=bash
# Docker for CI and `make image` (sourced): an engine, and stand-in base images when the registry's cannot
# be pulled. By hand: `source .ci/docker.sh && docker_engine && ci_base_image`.
#
# - docker_engine: succeeds when a Docker engine answers, starting Debian's `dockerd` (installing docker.io
#   first, as root) when none runs; otherwise prints one line and fails, so callers skip what needs it.
#   stop_docker_engine stops a dockerd that docker_engine started (nothing else).
# - python_base_image: prints the base for the Dockerfile's BASE_IMAGE: python:3.11-slim when it can be
#   pulled (or is already here), else the stand-in built from Debian bookworm's packages (python3 3.11,
#   python3-venv, ca-certificates) with this machine's CA bundle, so pip inside the build reaches the
#   package registry through this machine's TLS proxy. That bundle belongs to the CI-only base, never to
#   the product image: the Dockerfile adds no certificate of its own.
# - postgres_image: postgres:16 when it can be pulled, else a stand-in: the base above plus Debian's
#   `postgresql` package, honouring the same POSTGRES_USER / POSTGRES_PASSWORD / POSTGRES_DB variables and
#   init folder (.ci/postgres.Dockerfile).

CI_BASE_TAG="neuroflux-ci-base:bookworm"
CI_POSTGRES_TAG="neuroflux-ci-postgres:15"
DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"

docker_engine() {
    if docker info >/dev/null 2>&1; then return 0; fi
    if ! command -v dockerd >/dev/null 2>&1; then
        if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
            echo "docker: no Docker engine here and none can be installed: skipping the image steps"
            return 1
        fi
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null 2>&1 ||
            { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null; } ||
            { echo "docker: installing docker.io failed: skipping the image steps"; return 1; }
    fi
    if [ "$(id -u)" != 0 ]; then
        echo "docker: dockerd is installed but not running, and only root can start it: skipping the image steps"
        return 1
    fi
    nohup dockerd >/tmp/neuroflux-dockerd.log 2>&1 </dev/null &
    NEUROFLUX_DOCKERD_PID=$!
    for _ in $(seq 1 60); do
        docker info >/dev/null 2>&1 && return 0
        sleep 1
    done
    echo "docker: dockerd did not start (see /tmp/neuroflux-dockerd.log): skipping the image steps"
    return 1
}

# True when IMAGE is here or can be pulled within a short time (a registry out of reach fails fast or
# times out; either way the stand-in is built).
_have_or_pull() {
    docker image inspect "$1" >/dev/null 2>&1 && return 0
    timeout 120 docker pull -q "$1" >/dev/null 2>&1
}

# A Debian bookworm root file system with PACKAGES, imported as TAG (skipped when TAG exists).
_debian_image() {
    local tag=$1 packages=$2 rootfs
    docker image inspect "$tag" >/dev/null 2>&1 && return 0
    command -v debootstrap >/dev/null 2>&1 || {
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
    } || return 1
    rootfs=$(mktemp -d /tmp/neuroflux-rootfs.XXXXXX)
    echo "docker: building stand-in $tag from Debian's packages ($packages)" >&2
    debootstrap --variant=minbase --include="$packages" bookworm "$rootfs" "$DEBIAN_MIRROR" >/dev/null || {
        rm -rf "$rootfs"
        return 1
    }
    # This machine's CA bundle (the one pip's configuration names): CI-only, for pip inside builds.
    local bundle
    bundle=$(pip config list 2>/dev/null | sed -n "s/^global.cert='\(.*\)'$/\1/p" | head -n 1)
    bundle=${bundle:-/etc/ssl/certs/ca-certificates.crt}
    if [ -f "$bundle" ]; then
        cp "$bundle" "$rootfs/etc/ssl/certs/ci-ca-bundle.crt"
        printf '[global]\ncert = /etc/ssl/certs/ci-ca-bundle.crt\n' >"$rootfs/etc/pip.conf"
    fi
    rm -rf "$rootfs/var/cache/apt/archives"/*.deb "$rootfs/var/lib/apt/lists"/*
    tar -C "$rootfs" -c . | docker import --change 'ENV LANG=C.UTF-8' - "$tag" >/dev/null
    local status=$?
    rm -rf "$rootfs"
    return $status
}

python_base_image() {
    if _have_or_pull python:3.11-slim; then
        echo python:3.11-slim
        return 0
    fi
    _debian_image "$CI_BASE_TAG" python3,python3-venv,ca-certificates || return 1
    echo "$CI_BASE_TAG"
}

postgres_image() {
    if _have_or_pull postgres:16; then
        echo postgres:16
        return 0
    fi
    if ! docker image inspect "$CI_POSTGRES_TAG" >/dev/null 2>&1; then
        local base
        base=$(python_base_image) || return 1 # Debian bookworm either way
        docker build -q -t "$CI_POSTGRES_TAG" --build-arg BASE_IMAGE="$base" \
            -f .ci/postgres.Dockerfile .ci >/dev/null || return 1
    fi
    echo "$CI_POSTGRES_TAG"
}

stop_docker_engine() {
    if [ -n "${NEUROFLUX_DOCKERD_PID:-}" ]; then
        kill "$NEUROFLUX_DOCKERD_PID" 2>/dev/null || true
        wait "$NEUROFLUX_DOCKERD_PID" 2>/dev/null || true
    fi
}
