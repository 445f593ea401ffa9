"""Locations (lakehouse.locations): a local path or ``s3://bucket[/prefix]``; anything else refused in one line,
by the settings and by the real CLI (exit 2, nothing written); storage options from the ``AWS_*`` variables only."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lakehouse import locations
from lakehouse.locations import LocationError
from lakehouse.settings import Settings

LAKEHOUSE = str(Path(sys.executable).with_name("lakehouse"))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("s3://bucket", "s3://bucket"),
        ("s3://bucket/", "s3://bucket"),
        ("s3://my-bucket.1/lake", "s3://my-bucket.1/lake"),
        ("s3://bucket/a/b_c/d=1/", "s3://bucket/a/b_c/d=1"),
    ],
)
def test_s3_uris_are_kept_normalized(value, expected):
    assert locations.parse(value, "X") == expected
    assert locations.is_object_store(expected)


def test_local_paths_resolve_to_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert locations.parse("data/lake", "X") == str(tmp_path / "data" / "lake")
    assert locations.parse("./odd:name", "X") == str(tmp_path / "odd:name")
    assert not locations.is_object_store(locations.parse("data/lake", "X"))
    assert locations.storage_options(str(tmp_path)) is None


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("", "is empty"),
        ("gs://bucket/lake", "uses gs:"),
        ("az://container/lake", "uses az:"),
        ("abfss://c@acct.dfs.core.windows.net/lake", "uses abfss:"),
        ("http://127.0.0.1:9000/bucket", "uses http:"),
        ("file:///tmp/lake", "uses file:"),
        ("s3a://bucket/lake", "uses s3a:"),
        ("s3:", "uses s3:"),
        ("s3:/bucket/lake", "uses s3:"),
        ("s3://", "names no bucket"),
        ("s3:///lake", "names no bucket"),
        ("s3://Bucket_Upper/lake", "not a valid S3 bucket name"),
        ("s3://bucket//lake", "prefix segment ''"),
        ("s3://bucket/../lake", "prefix segment '..'"),
        ("s3://bucket/my lake", "prefix segment 'my lake'"),
        ("s3://bucket/lake?versionId=1", "prefix segment 'lake?versionId=1'"),
    ],
)
def test_unsupported_locations_are_refused_naming_the_setting(value, why):
    with pytest.raises(LocationError) as err:
        locations.parse(value, "LAKEHOUSE_LAKE_DIR")
    message = str(err.value)
    assert message.startswith(f"LAKEHOUSE_LAKE_DIR={value!r} ")
    assert why in message
    assert "s3://bucket[/prefix]" in message and "local path" in message
    assert "\n" not in message


def test_settings_refuse_an_unsupported_lake_or_landing_zone(monkeypatch):
    monkeypatch.setenv("LAKEHOUSE_LAKE_DIR", "s3://bucket/lake")
    monkeypatch.setenv("LAKEHOUSE_LANDING_DIR", "s3://bucket/landing/")
    settings = Settings.from_env()
    assert (settings.lake_dir, settings.landing_dir) == ("s3://bucket/lake", "s3://bucket/landing")
    monkeypatch.setenv("LAKEHOUSE_LANDING_DIR", "gs://bucket/landing")
    with pytest.raises(LocationError, match=r"^LAKEHOUSE_LANDING_DIR='gs://bucket/landing' uses gs:"):
        Settings.from_env()


def test_storage_options_come_from_the_standard_variables_only(monkeypatch):
    for name in [*locations.ENVIRONMENT, "AWS_DEFAULT_REGION"]:
        monkeypatch.delenv(name, raising=False)
    assert locations.storage_options("s3://bucket/lake") == {}
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    assert locations.storage_options("s3://bucket/lake") == {"aws_region": "eu-west-1"}
    env = {
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
        "AWS_ACCESS_KEY_ID": "id",
        "AWS_SECRET_ACCESS_KEY": "secret",
        "AWS_SESSION_TOKEN": "token",
        "AWS_REGION": "us-east-2",
        "AWS_ALLOW_HTTP": "true",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert locations.storage_options("s3://bucket/lake") == {
        "aws_endpoint_url": "http://127.0.0.1:9",
        "aws_access_key_id": "id",
        "aws_secret_access_key": "secret",
        "aws_session_token": "token",
        "aws_region": "us-east-2",  # AWS_REGION wins over AWS_DEFAULT_REGION
        "aws_allow_http": "true",
    }
    assert locations.storage_options("/tmp/lake") is None


def lakehouse(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("LAKEHOUSE_", "DAGSTER_"))}
    clean.update(LAKEHOUSE_DATA_DIR=str(cwd / "data"), **env)
    return subprocess.run(
        [LAKEHOUSE, *args], cwd=cwd, env=clean, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.mark.parametrize(
    ("env", "args", "named"),
    [
        ({"LAKEHOUSE_LANDING_DIR": "s3:"}, ("land", "--months", "1", "--sources", "airlines"), "LAKEHOUSE_LANDING_DIR"),
        ({}, ("land", "--sources", "airlines", "--landing-dir", "gs://bucket/landing"), "--landing-dir"),
        ({"LAKEHOUSE_LAKE_DIR": "s3://"}, ("run", "--months", "1-3"), "LAKEHOUSE_LAKE_DIR"),
        ({"LAKEHOUSE_LAKE_DIR": "file:///tmp/lake"}, ("summary",), "LAKEHOUSE_LAKE_DIR"),
    ],
)
def test_the_cli_refuses_an_unsupported_location_in_one_line_writing_nothing(tmp_path, env, args, named):
    result = lakehouse(tmp_path, env, *args)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"{named}=" in lines[0] and "s3://bucket[/prefix]" in lines[0]
    assert list(tmp_path.iterdir()) == []  # no data folder, no folder named "s3:" or "gs:"


def test_the_cli_refuses_an_s3_location_it_cannot_list_in_one_line(tmp_path, s3_server):
    """A missing bucket, or an endpoint where nothing answers: one line naming the setting and the server's reason
    (never the secret key), exit 2, before anything is written."""
    from lakehouse_tests.object_store import SECRET_ACCESS_KEY
    from lakehouse_tests.processes import free_port

    missing = lakehouse(tmp_path, s3_server.env(), "land", "--sources", "airlines", "--landing-dir", "s3://no-such/x")
    unreachable_env = {**s3_server.env(), "AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}"}
    unreachable = lakehouse(tmp_path, {**unreachable_env, "LAKEHOUSE_LAKE_DIR": "s3://bucket/lake"}, "summary")
    for result, named, reason in (
        (missing, "--landing-dir='s3://no-such/x'", "NoSuchBucket"),
        (unreachable, "LAKEHOUSE_LAKE_DIR='s3://bucket/lake'", "error sending request"),
    ):
        assert result.returncode == 2, result.stderr
        (line,) = result.stderr.strip().splitlines()
        assert named in line and reason in line and SECRET_ACCESS_KEY not in line
    assert list(tmp_path.iterdir()) == []
