#!/usr/bin/env bash
# The image's entrypoint (after tini): one role per container. docs/distributed.md describes the roles and the
# environment each one reads.
#
#   embedded (default)  the Dagster webserver and daemon on one code location and one DAGSTER_HOME (SQLite, the lake
#                       under /app/data); if either process exits, the container stops
#   webserver           dagster-webserver, code from the code-location server     } distributed profile:
#   daemon              dagster-daemon (schedules, sensors, run queue, automation) } $DAGSTER_HOME/dagster.yaml is
#   code-server         the code location over gRPC (DAGSTER_CODE_SERVER_PORT)     } docker/dagster.yaml (Postgres)
#   dask-scheduler      the Dask scheduler (port 8786)
#   dask-worker         a Dask worker of LAKEHOUSE_DASK_SCHEDULER; runs Dagster steps (LAKEHOUSE_EXECUTOR=dask)
#   mlflow              the MLflow tracking server: backend MLFLOW_BACKEND_STORE_URI (Postgres), artifacts
#                       proxied to MLFLOW_ARTIFACTS_DESTINATION (s3://...)
#   anything else       executed as given (e.g. `lakehouse land`, `bash`)
#
# The webserver binds 127.0.0.1 unless LAKEHOUSE_WEBSERVER_HOST is set (compose sets 0.0.0.0 inside the container
# and publishes the port on the host's 127.0.0.1 only).
#
# Signals: a role that is one program is exec'd, so it is tini's direct child. The embedded role starts two, with
# SIGINT/SIGTERM reset to their defaults (a shell's `&` leaves SIGINT ignored, and dagster copies that onto SIGTERM:
# docs/stack-notes.md, "Dagster process signals"); tini -g delivers SIGTERM to both.
set -euo pipefail
role="${1:-embedded}"
[ "$#" -gt 0 ] && shift
host="${LAKEHOUSE_WEBSERVER_HOST:-127.0.0.1}"
port="${LAKEHOUSE_WEBSERVER_PORT:-3000}"
# read by docker/workspace.yaml ({env: ...}): where the webserver and the daemon find the code-location server
export DAGSTER_CODE_SERVER_HOST="${DAGSTER_CODE_SERVER_HOST:-code-server}"
export DAGSTER_CODE_SERVER_PORT="${DAGSTER_CODE_SERVER_PORT:-4000}"

distributed_home() {
    # The distributed instance: always the image's docker/dagster.yaml (it holds no credential, only {env: ...}).
    mkdir -p "$DAGSTER_HOME"
    cp docker/dagster.yaml "$DAGSTER_HOME/dagster.yaml"
}

case "$role" in
embedded)
    mkdir -p "$DAGSTER_HOME"
    [ -f "$DAGSTER_HOME/dagster.yaml" ] || cp lakehouse/dagster.yaml "$DAGSTER_HOME/dagster.yaml"
    restore_signals='import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); signal.signal(signal.SIGTERM, signal.SIG_DFL); os.execvp(sys.argv[1], sys.argv[1:])'
    python -c "$restore_signals" dagster-daemon run -w workspace.yaml &
    python -c "$restore_signals" dagster-webserver -w workspace.yaml -h "$host" -p "$port" &
    wait -n
    ;;
webserver)
    distributed_home
    exec dagster-webserver -w docker/workspace.yaml -h "$host" -p "$port" "$@"
    ;;
daemon)
    distributed_home
    exec dagster-daemon run -w docker/workspace.yaml "$@"
    ;;
code-server)
    distributed_home
    exec dagster code-server start -m lakehouse.definitions --location-name lakehouse \
        -h "${DAGSTER_CODE_SERVER_BIND:-0.0.0.0}" -p "$DAGSTER_CODE_SERVER_PORT" "$@"
    ;;
dask-scheduler)
    exec dask scheduler --host 0.0.0.0 --port 8786 --dashboard-address :8787 "$@"
    ;;
dask-worker)
    distributed_home
    # one thread per worker: Dagster steps are not thread-safe (dagster_dask/executor.py)
    exec dask worker "${LAKEHOUSE_DASK_SCHEDULER:?LAKEHOUSE_DASK_SCHEDULER=tcp://<host>:8786 is required}" \
        --nworkers 1 --nthreads 1 --no-dashboard "$@"
    ;;
mlflow)
    # mlflow reads both from the environment itself (click envvar), so the database password never appears on a
    # command line (ps); only the server holds the object store's credentials (AWS_*, MLFLOW_S3_ENDPOINT_URL).
    : "${MLFLOW_BACKEND_STORE_URI:?MLFLOW_BACKEND_STORE_URI=postgresql+psycopg2://... is required}"
    : "${MLFLOW_ARTIFACTS_DESTINATION:?MLFLOW_ARTIFACTS_DESTINATION=s3://<bucket>/mlflow is required}"
    exec mlflow server --host 0.0.0.0 --port 5000 --workers "${MLFLOW_WORKERS:-2}" --serve-artifacts \
        --allowed-hosts "${MLFLOW_ALLOWED_HOSTS:-mlflow,mlflow:5000,localhost,localhost:5000,127.0.0.1,127.0.0.1:5000}" \
        "$@"
    ;;
*)
    exec "$role" "$@"
    ;;
esac
