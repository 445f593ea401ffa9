# One image for both profiles (docs/distributed.md):
#   embedded (default command): the lakehouse code location with the Dagster webserver and daemon in one container,
#     SQLite and the lake under /app/data:
#       docker build -t lakehouse .
#       docker run -e LAKEHOUSE_WEBSERVER_HOST=0.0.0.0 -p 127.0.0.1:3000:3000 -v "$PWD/data:/app/data" lakehouse
#   distributed: one role per container, as docker/compose.yaml runs them:
#       docker run ... lakehouse webserver | daemon | code-server | dask-scheduler | dask-worker | mlflow
# Not built on the development machines (no Docker engine there); each line says why it is there.
FROM python:3.11-slim

# libgomp1: LightGBM's OpenMP runtime, absent from the slim image (import lightgbm fails without it;
# docs/stack-notes.md, "LightGBM"). tini: PID 1 that reaps zombies and forwards SIGTERM to the whole process group
# (-g below), so `docker stop` shuts dagster down cleanly instead of waiting for SIGKILL. No git and no .git: the
# model's code_version (lakehouse/ml/registry.py) is "unknown" in the image; pass the commit as an image label.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 tini \
    && rm -rf /var/lib/apt/lists/*

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    DAGSTER_HOME=/app/data/dagster \
    LAKEHOUSE_DATA_DIR=/app/data \
    MLFLOW_DISABLE_TELEMETRY=true \
    PATH="/app/.venv/bin:$PATH"

# uv pinned to the version .ci/run installs; the lakehouse user owns nothing but /app/data.
RUN pip install --no-cache-dir "uv==0.13.9" \
    && useradd --create-home --uid 10001 lakehouse
WORKDIR /app

# Dependencies first (a cached layer), exactly as locked (--frozen: uv.lock is used as is, never re-resolved;
# the dev extra is not installed), then the project itself. [tool.uv] compile-bytecode in pyproject.toml (and
# UV_COMPILE_BYTECODE above) writes .pyc at install time: with PYTHONDONTWRITEBYTECODE=1 every process would
# otherwise recompile dagster and mlflow on import (9.9 s vs 4.3 s for lakehouse.definitions, measured).
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-install-project
COPY lakehouse ./lakehouse
COPY workspace.yaml ./
COPY docker ./docker
RUN uv sync --frozen \
    && mkdir -p /app/data \
    && chown -R lakehouse:lakehouse /app/data

USER lakehouse
# The webserver's port. It binds 127.0.0.1 unless LAKEHOUSE_WEBSERVER_HOST says otherwise (docker/entrypoint.sh):
# to reach it from the host, set LAKEHOUSE_WEBSERVER_HOST=0.0.0.0 and publish the port on the host's loopback only
# (-p 127.0.0.1:3000:3000), as docker/compose.yaml does.
EXPOSE 3000
VOLUME ["/app/data"]
# tini -g: signals go to the child's process group (the embedded role's daemon and webserver), not only to the
# entrypoint shell; the distributed roles exec their one program, which then is tini's only child.
ENTRYPOINT ["tini", "-g", "--", "./docker/entrypoint.sh"]
CMD ["embedded"]
