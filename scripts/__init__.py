"""Scripts that exercise the lakehouse end to end; run them from the repository root with
``uv run python -m scripts.<name>``.

* :mod:`scripts.month_by_month`: replays 2013 month by month as the sensors do and prints README.md's
  champion/challenger table.
* :mod:`scripts.ablation`: trains the model feature group by feature group (and the leaky variants, labelled) and
  prints test ROC-AUC, PR-AUC, log loss and ECE on December.
* :mod:`scripts.chaos`: SIGKILLs ``lakehouse run`` at random moments and checks that a plain rerun converges.
"""
