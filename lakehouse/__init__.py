"""An ML-ready medallion lakehouse on Dagster (see README.md)."""

import os

# MLflow 3 sends usage telemetry and writes ~/.config/mlflow/telemetry.json unless told not to; a lakehouse run by
# this project does neither by default (set MLFLOW_DISABLE_TELEMETRY=false to opt in).
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
