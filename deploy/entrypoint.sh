#!/bin/sh
# The image's entrypoint. `docker run neuroflux <mode> ...` runs the `neuroflux` CLI exactly as on a
# laptop (train, preprocess, evaluate, predict, ...); a few extra modes start the Dagster services:
#
#   ui           Dagster UI + daemon in one container (`dagster dev`) on 0.0.0.0:3000. The UI has NO
#                authentication: publish the port only on a trusted network (`-p 127.0.0.1:3000:3000`).
#   webserver    the UI alone, for deploy/docker-compose.yaml (port 3000)
#   daemon       schedules, sensors and the run queue, for deploy/docker-compose.yaml
#   code-server  the code location (gRPC on port 4000), for deploy/docker-compose.yaml
#   healthcheck  used by the Dockerfile's HEALTHCHECK: probes whichever server this container runs
#   dagster...   passed through unchanged (Helm chart, run launchers: `dagster api grpc ...`)
set -eu

ROOT="${NEUROFLUX_ROOT:-/app}"
WORKSPACE="${NEUROFLUX_WORKSPACE:-$ROOT/workspace.yaml}"
ROLE_FILE="${NEUROFLUX_ROLE_FILE:-/tmp/neuroflux-role}"
UI_PORT=3000
CODE_PORT=4000

# Dagster reads dagster.yaml from $DAGSTER_HOME, which is a volume (a bind mount hides what the image put
# there), so link the instance config in at every start, like `make dagster-home`. A real file the user
# placed there wins; a read-only or foreign DAGSTER_HOME (Helm sets its own) is left alone.
link_instance_config() {
    config="${NEUROFLUX_INSTANCE_CONFIG:-$ROOT/dagster.yaml}"
    home="${DAGSTER_HOME:-}"
    [ -n "$home" ] && [ -d "$home" ] && [ -w "$home" ] || return 0
    if [ ! -e "$home/dagster.yaml" ] || [ -L "$home/dagster.yaml" ]; then
        ln -sfn "$config" "$home/dagster.yaml"
    fi
}

# The healthcheck runs in a separate `docker exec`, so the role is handed over in a file.
set_role() {
    echo "$1" > "$ROLE_FILE" 2>/dev/null || true
}

case "${1:-}" in
    ui)
        shift
        link_instance_config
        set_role webserver
        # Started inside DAGSTER_HOME so `dagster dev` does not warn about $ROOT/dagster.yaml.
        cd "${DAGSTER_HOME:-$ROOT}"
        exec dagster dev -h 0.0.0.0 -p "$UI_PORT" -w "$WORKSPACE" "$@"
        ;;
    webserver)
        shift
        link_instance_config
        set_role webserver
        exec dagster-webserver -h 0.0.0.0 -p "$UI_PORT" -w "$WORKSPACE" "$@"
        ;;
    daemon)
        shift
        link_instance_config
        set_role daemon
        exec dagster-daemon run -w "$WORKSPACE" "$@"
        ;;
    code-server)
        shift
        link_instance_config
        set_role code-server
        exec dagster code-server start -h 0.0.0.0 -p "$CODE_PORT" \
            -m neuroflux_assets.definitions --location-name neuroflux "$@"
        ;;
    healthcheck)
        case "$(cat "$ROLE_FILE" 2>/dev/null || echo cli)" in
            webserver)
                exec python -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=5)' \
                    "http://127.0.0.1:$UI_PORT/server_info"
                ;;
            code-server) exec dagster api grpc-health-check -p "$CODE_PORT" ;;
            *) exit 0 ;;  # a CLI run or the daemon: no server to probe, the process state says it all
        esac
        ;;
    dagster | dagster-*)
        link_instance_config
        exec "$@"
        ;;
    *)
        link_instance_config
        exec neuroflux "$@"
        ;;
esac
