# The lakehouse code location with the Dagster webserver and daemon (the embedded profile in one container).
#   docker build -t lakehouse .
#   docker run -p 3000:3000 -v "$PWD/data:/app/data" lakehouse
# Then land data into ./data/landing (lakehouse land, or copy files) and materialize from the UI.
# Not built on the development machines (no Docker engine there); each line says why it is there.
FROM python:3.11-slim

# libgomp1: LightGBM's OpenMP runtime, absent from the slim image (import lightgbm fails without it;
# docs/stack-notes.md, "LightGBM"). tini: PID 1 that forwards SIGTERM to the whole process group, so `docker stop`
# shuts dagster down cleanly instead of waiting for SIGKILL.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 tini \
    && rm -rf /var/lib/apt/lists/*

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    DAGSTER_HOME=/app/data/dagster \
    LAKEHOUSE_DATA_DIR=/app/data \
    MLFLOW_DISABLE_TELEMETRY=true \
    PATH="/app/.venv/bin:$PATH"

RUN pip install --no-cache-dir "uv==0.13.9" \
    && useradd --create-home --uid 10001 lakehouse
WORKDIR /app

# Dependencies first (cached layer), then the project itself.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-install-project
COPY lakehouse ./lakehouse
COPY workspace.yaml ./
COPY docker/entrypoint.sh ./docker/entrypoint.sh
RUN uv sync --frozen && mkdir -p /app/data && chown -R lakehouse:lakehouse /app/data

USER lakehouse
EXPOSE 3000
VOLUME ["/app/data"]
# tini -g: signals go to the child's process group (daemon and webserver), not only to the entrypoint shell
ENTRYPOINT ["tini", "-g", "--"]
CMD ["./docker/entrypoint.sh"]
