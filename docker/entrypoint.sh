#!/usr/bin/env bash
# Dagster webserver and daemon (sensors, schedules, automation, freshness) on one code location and one
# DAGSTER_HOME. If either process exits, the container stops.
set -euo pipefail
mkdir -p "$DAGSTER_HOME"
[ -f "$DAGSTER_HOME/dagster.yaml" ] || cp lakehouse/dagster.yaml "$DAGSTER_HOME/dagster.yaml"
dagster-daemon run -w workspace.yaml &
dagster-webserver -w workspace.yaml -h 0.0.0.0 -p "${PORT:-3000}" &
wait -n
