# The lakehouse code location with the Dagster webserver and daemon.
#   docker build -t lakehouse .
#   docker run -p 3000:3000 -v "$PWD/data:/app/data" lakehouse
# Then land data into ./data/landing (lakehouse land, or copy files) and materialize from the UI.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    DAGSTER_HOME=/app/data/dagster \
    LAKEHOUSE_DATA_DIR=/app/data \
    PATH="/app/.venv/bin:$PATH"

RUN pip install --no-cache-dir "uv==0.13.9"
WORKDIR /app

# Dependencies first (cached layer), then the project itself.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-install-project
COPY lakehouse ./lakehouse
COPY workspace.yaml ./
COPY docker/entrypoint.sh ./docker/entrypoint.sh
RUN uv sync --frozen

EXPOSE 3000
VOLUME ["/app/data"]
CMD ["./docker/entrypoint.sh"]
