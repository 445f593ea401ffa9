"""The layering the folders promise, enforced: pure modules import neither Dagster nor MLflow, and layers depend
downstream only (the import-linter contracts in pyproject.toml, run here through import-linter's own CLI)."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_import_contracts_are_kept():
    lint_imports = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint_imports)], cwd=REPO, capture_output=True, text=True, check=False, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Pure modules import neither Dagster nor MLflow KEPT" in result.stdout
    assert "Layers depend downstream only" in result.stdout
