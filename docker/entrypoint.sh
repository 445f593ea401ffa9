#!/usr/bin/env bash
# Dagster webserver and daemon (sensors, schedules, automation, freshness) on one code location and one
# DAGSTER_HOME. If either process exits, the container stops. tini (PID 1, -g) delivers SIGTERM to both; they are
# started with SIGINT/SIGTERM at their defaults (a shell's `&` would leave SIGINT ignored, and dagster copies that
# onto SIGTERM: docs/stack-notes.md, "Dagster process signals").
set -euo pipefail
mkdir -p "$DAGSTER_HOME"
[ -f "$DAGSTER_HOME/dagster.yaml" ] || cp lakehouse/dagster.yaml "$DAGSTER_HOME/dagster.yaml"
restore_signals='import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); signal.signal(signal.SIGTERM, signal.SIG_DFL); os.execvp(sys.argv[1], sys.argv[1:])'
python -c "$restore_signals" dagster-daemon run -w workspace.yaml &
python -c "$restore_signals" dagster-webserver -w workspace.yaml -h "${HOST:-0.0.0.0}" -p "${PORT:-3000}" &
wait -n
