# Developer commands (after `source .venv/bin/activate`). Everything runs in the locked environment.
.PHONY: setup test test-all lint format typecheck dev bench ci

setup:            ## install the locked environment with the dev tools
	uv sync --frozen --inexact --extra dev

test:             ## the fast lane: every test not marked slow (random order)
	uv run --frozen pytest -m "not slow"

test-all:         ## the whole suite, as CI runs it (random order)
	uv run --frozen pytest

lint:             ## ruff (lint, import order, format check), mypy, import contracts, Dagster definitions
	uv run --frozen ruff check .
	uv run --frozen ruff format --check .
	uv run --frozen mypy
	uv run --frozen lint-imports
	uv run --frozen dg check defs

format:           ## apply ruff's fixes and formatting
	uv run --frozen ruff check --fix .
	uv run --frozen ruff format .

typecheck:
	uv run --frozen mypy

dev:              ## the Dagster UI and daemons on http://127.0.0.1:3000
	uv run --frozen lakehouse ui

bench:            ## pipeline vs the bare floor at 1x and 10x (BENCHMARKS.md)
	uv run --frozen python -m benchmarks.run --scales 1,10 --repeat 3

ci:               ## what .ci/run does after installing
	$(MAKE) lint
	$(MAKE) test-all
