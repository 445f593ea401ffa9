"""Dagster assets, one module per medallion layer. Assets are thin: they read and write Delta tables and
report metadata; the logic lives in :mod:`lakehouse.transforms` and :mod:`lakehouse.ingest`."""
