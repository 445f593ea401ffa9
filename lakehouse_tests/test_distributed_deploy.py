"""The deployment files of the distributed profile, checked for the facts they exist for (no Docker engine runs on
the development machines, so the image is not built here; docs/distributed.md says what was verified how).

* ``Dockerfile``: LightGBM's OpenMP runtime and an init are installed, the image runs as a non-root user, and its
  install commands succeed against the repository's lock (run with ``--dry-run``).
* ``docker/compose.yaml``: every role of the topology is there, every published port binds the host's loopback,
  every credential is interpolated from ``docker/.env`` (listed in ``docker/.env.example``, ignored by git and by
  the Docker build context), and every role it runs is one ``docker/entrypoint.sh`` knows.
"""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "Dockerfile"
COMPOSE = REPO / "docker" / "compose.yaml"
ENTRYPOINT = REPO / "docker" / "entrypoint.sh"
ENV_EXAMPLE = REPO / "docker" / ".env.example"


def instructions() -> list[tuple[str, str]]:
    """The Dockerfile's instructions as (KEYWORD, arguments), continuation lines joined, comments dropped."""
    text = re.sub(r"^\s*#.*\n", "", DOCKERFILE.read_text(), flags=re.MULTILINE)
    joined = re.sub(r"\\\n", " ", text)
    out = []
    for line in joined.splitlines():
        if line.strip():
            keyword, _, rest = line.strip().partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def uv() -> str:
    """The uv that .ci/run installs into the venv (or one on PATH)."""
    found = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    assert found, "uv is missing: .ci/run installs it (.venv/bin/pip install uv==0.13.9)"
    return found


def test_the_image_can_import_lightgbm_and_has_an_init():
    runs = " ".join(args for keyword, args in instructions() if keyword == "RUN")
    installed = re.search(r"apt-get install[^&]*", runs)
    assert installed is not None
    assert {"libgomp1", "tini"} <= set(installed.group(0).split())
    (entrypoint,) = [args for keyword, args in instructions() if keyword == "ENTRYPOINT"]
    assert yaml.safe_load(entrypoint)[:3] == ["tini", "-g", "--"]  # exec form: tini is PID 1


def test_the_image_runs_as_a_non_root_user():
    keywords = [keyword for keyword, _ in instructions()]
    users = [args for keyword, args in instructions() if keyword == "USER"]
    assert users
    assert users[-1] not in ("root", "0")
    assert keywords.index("USER") > max(i for i, k in enumerate(keywords) if k == "RUN")  # nothing runs as root after


def test_the_images_install_commands_succeed_against_the_lock(tmp_path: Path):
    syncs = [
        cmd.strip()
        for keyword, args in instructions()
        if keyword == "RUN"
        for cmd in args.split("&&")
        if cmd.strip().startswith("uv sync")
    ]
    assert syncs
    assert all("--frozen" in cmd and "--extra" not in cmd for cmd in syncs)  # as locked, no dev extra
    # what the Dockerfile copies before its first `uv sync`
    for name in ("pyproject.toml", "uv.lock", "README.md"):
        shutil.copy(REPO / name, tmp_path / name)
    # --frozen installs uv.lock without checking it against pyproject.toml: the lock must be current
    check = subprocess.run([uv(), "lock", "--check"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stderr
    first = syncs[0].split()
    plan = subprocess.run([uv(), *first[1:], "--dry-run"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert plan.returncode == 0, plan.stderr
    planned = set(re.findall(r"^ \+ ([A-Za-z0-9_.-]+)==", plan.stdout + plan.stderr, flags=re.MULTILINE))
    # the distributed profile's servers and drivers are in the image; the dev tools are not
    # (boto3: the MLflow server's S3 artifact store)
    assert {"dagster-postgres", "psycopg2-binary", "dagster-dask", "distributed", "mlflow", "boto3"} <= planned
    assert not {"pytest", "moto", "pgserver"} & planned


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_compose_has_every_role_of_the_topology():
    services = compose()["services"]
    roles = {name: (service.get("command") or [None])[0] for name, service in services.items()}
    for role in ("webserver", "daemon", "code-server", "mlflow", "dask-scheduler", "dask-worker"):
        assert role in roles.values(), role
    assert services["dask-worker"]["deploy"]["replicas"] >= 2
    assert services["postgres"]["image"].startswith("postgres:")
    assert "weed server" in services["s3"]["command"][0]
    known = set(re.findall(r"^([a-z-]+)\)$", ENTRYPOINT.read_text(), flags=re.MULTILINE))
    image_roles = {
        roles[name]
        for name, service in services.items()
        if service.get("image") == "lakehouse:latest" and "entrypoint" not in service
    }
    assert image_roles <= known, image_roles - known


def test_compose_publishes_on_loopback_only():
    published = [p for s in compose()["services"].values() for p in s.get("ports", [])]
    assert published
    assert all(str(p).startswith("127.0.0.1:") for p in published), published
    assert any(str(p).endswith(":3000") for p in published)


@pytest.mark.parametrize("pattern", ["PASSWORD", "SECRET", "ACCESS_KEY"])
def test_compose_credentials_come_from_the_env_file(pattern: str):
    example = dict(
        line.split("=", 1) for line in ENV_EXAMPLE.read_text().splitlines() if line and not line.startswith("#")
    )
    found = 0
    for service in compose()["services"].values():
        for name, value in (service.get("environment") or {}).items():
            if pattern in name:
                found += 1
                variables = re.findall(r"\$\{(\w+)", str(value))
                assert variables, f"{name} is written in compose.yaml"
                assert set(variables) <= set(example), f"{name}: {variables} not in docker/.env.example"
    assert found
    assert "docker/.env" in (REPO / ".gitignore").read_text().split()
    assert "docker/.env" in (REPO / ".dockerignore").read_text().split()
