"""Scripts that exercise the lakehouse end to end; run them from the repository root with
``uv run python -m scripts.<name>``.

* :mod:`scripts.month_by_month`: replays 2013 month by month as the sensors do and prints README.md's
  champion/challenger table.
"""
