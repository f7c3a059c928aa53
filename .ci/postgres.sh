# shellcheck shell=bash
# A throwaway PostgreSQL cluster for the tests marked `postgres` (sourced by .ci/run; by hand:
# `source .ci/postgres.sh && start_postgres && .venv/bin/python -m pytest -q -m postgres`).
#
# Installs Debian's PostgreSQL when its binaries are missing, creates a cluster in a temporary folder owned
# by a non-root user (PostgreSQL refuses to run as root), listening on 127.0.0.1 only, on a free port, with
# password authentication over TCP; exports NEUROFLUX_PG_* for tests/conftest.py and
# NEUROFLUX_REQUIRE_POSTGRES=1 so those tests fail instead of skipping; stops and deletes it on exit.

_pg_bindir() {
    local dir
    dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    if [ -z "$dir" ] && command -v initdb >/dev/null 2>&1; then
        dir=$(dirname "$(command -v initdb)")
    fi
    [ -n "$dir" ] && [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ] && echo "$dir"
}

_pg_install() {
    export DEBIAN_FRONTEND=noninteractive
    # Debian would create and start a `main` cluster on port 5432; this script brings its own.
    mkdir -p /etc/postgresql-common/createcluster.d
    echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.d/neuroflux-ci.conf
    apt-get update -qq
    apt-get install -y -qq postgresql >/dev/null
}

# Runs a command as the cluster's owner: a non-root user when this script runs as root.
_as_pg() {
    if [ -n "${_PG_OS_USER:-}" ]; then runuser -u "$_PG_OS_USER" -- "$@"; else "$@"; fi
}

stop_postgres() {
    if [ -n "${_PG_DIR:-}" ] && [ -d "$_PG_DIR" ]; then
        _as_pg "$_PG_BIN/pg_ctl" -D "$_PG_DIR/data" -m fast -w stop >/dev/null 2>&1 || true
        rm -rf "$_PG_DIR"
    fi
}

start_postgres() {
    _PG_BIN=$(_pg_bindir) || { _pg_install && _PG_BIN=$(_pg_bindir); }
    _PG_OS_USER=""
    if [ "$(id -u)" = 0 ]; then
        # Debian's package creates `postgres`; otherwise a system user just for this.
        _PG_OS_USER=postgres
        if ! id -u "$_PG_OS_USER" >/dev/null 2>&1; then
            _PG_OS_USER=neuroflux-ci
            id -u "$_PG_OS_USER" >/dev/null 2>&1 ||
                useradd --system --no-create-home --shell /usr/sbin/nologin "$_PG_OS_USER"
        fi
    fi
    _PG_DIR=$(mktemp -d "${TMPDIR:-/tmp}/neuroflux-pg.XXXXXX")
    trap stop_postgres EXIT
    [ -z "$_PG_OS_USER" ] || chown "$_PG_OS_USER" "$_PG_DIR"

    local password port
    password=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    (umask 077 && printf '%s\n' "$password" > "$_PG_DIR/pwfile")
    [ -z "$_PG_OS_USER" ] || chown "$_PG_OS_USER" "$_PG_DIR/pwfile"

    _as_pg "$_PG_BIN/initdb" -D "$_PG_DIR/data" -U neuroflux --pwfile="$_PG_DIR/pwfile" \
        --auth-local=trust --auth-host=scram-sha-256 --encoding=UTF8 --no-locale >/dev/null
    rm -f "$_PG_DIR/pwfile"
    # Durability off: the cluster lives for one CI run.
    if ! _as_pg "$_PG_BIN/pg_ctl" -D "$_PG_DIR/data" -l "$_PG_DIR/server.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $_PG_DIR -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
        start >/dev/null; then
        cat "$_PG_DIR/server.log" >&2
        return 1
    fi
    PGPASSWORD="$password" "$_PG_BIN/createdb" -h 127.0.0.1 -p "$port" -U neuroflux neuroflux

    export NEUROFLUX_PG_HOST=127.0.0.1 NEUROFLUX_PG_PORT="$port" NEUROFLUX_PG_USER=neuroflux
    export NEUROFLUX_PG_PASSWORD="$password" NEUROFLUX_PG_DB=neuroflux NEUROFLUX_REQUIRE_POSTGRES=1
    echo "PostgreSQL $("$_PG_BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$port (user ${_PG_OS_USER:-$(id -un)}, data $_PG_DIR)"
}
