"""Where a lake or a landing zone may live, and how every library reaches it: one place for both.

A *location* is a string, one of two forms; anything else is refused (:class:`LocationError`), never reinterpreted:

| form                      | example               | normalized to                                  |
|---------------------------|-----------------------|------------------------------------------------|
| a local path              | ``data/lake``         | the absolute path (``Path(value).resolve()``)  |
| an S3 bucket and prefix   | ``s3://bucket/lake``  | ``s3://bucket/lake`` (no trailing ``/``)       |

Refused, with one line naming the setting and these two forms: an empty value; any other scheme (``gs://``,
``az://``, ``abfss://``, ``http(s)://``, ``file://``, ``s3a://``...; a ``file://`` URI is refused rather than
converted so that a value is never read two ways); ``s3:``/``s3:/bucket``/``s3://`` without a bucket; a bucket
name S3 would refuse (3-63 lower-case letters, digits, ``.``, ``-``); a prefix with empty, ``.`` or ``..`` segments
or characters outside ``A-Z a-z 0-9 . _ - = /`` (polars reads Delta tables through the percent-encoded paths
delta-rs gives; docs/stack-notes.md, "Delta paths that need percent-encoding"). A local path whose first segment
holds a ``:`` (``data:2024/lake``) looks like a URI and is refused too: write ``./data:2024/lake``.

**Credentials and endpoint** come from the standard AWS environment variables only, never from a file of this
repository, and are read when a table or an object is opened (a process started with other variables uses them):

| variable                 | storage option (delta-rs, polars) | meaning                                          |
|--------------------------|-----------------------------------|--------------------------------------------------|
| ``AWS_ENDPOINT_URL``     | ``aws_endpoint_url``              | an S3-compatible server (unset: AWS S3)          |
| ``AWS_ACCESS_KEY_ID``    | ``aws_access_key_id``             | access key                                       |
| ``AWS_SECRET_ACCESS_KEY``| ``aws_secret_access_key``         | secret key (never logged, never in metadata)     |
| ``AWS_SESSION_TOKEN``    | ``aws_session_token``             | temporary credentials' token (optional)          |
| ``AWS_REGION``           | ``aws_region``                    | region (``AWS_DEFAULT_REGION`` if unset)         |
| ``AWS_ALLOW_HTTP``       | ``aws_allow_http``                | ``true`` to allow a plain-HTTP endpoint          |

delta-rs (``DeltaTable``, ``write_deltalake``), polars (``scan_delta``/``read_delta``) and obstore (the landing
zone, :mod:`lakehouse.folders`) all use the Rust ``object_store`` crate, so these options mean the same thing to
each. Two differences measured with deltalake 1.6.6, polars 2.1.0, obstore 0.12.1: delta-rs and polars take
``aws_allow_http`` among the storage options, while obstore wants it as a *client* option (``allow_http``) and
**panics** (``pyo3_runtime.PanicException``, not an ``Exception``) when it is passed in its S3 config;
:func:`object_store` splits it out. Local locations get no storage options (``None``).
"""

from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from obstore.store import S3Store

S3 = "s3://"
SUPPORTED_FORMS = "a local path, or s3://bucket[/prefix] (credentials and endpoint from the AWS_* variables)"
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_SEGMENT = re.compile(r"^[A-Za-z0-9._=-]+$")
ENVIRONMENT = {
    "AWS_ENDPOINT_URL": "aws_endpoint_url",
    "AWS_ACCESS_KEY_ID": "aws_access_key_id",
    "AWS_SECRET_ACCESS_KEY": "aws_secret_access_key",
    "AWS_SESSION_TOKEN": "aws_session_token",
    "AWS_REGION": "aws_region",
    "AWS_ALLOW_HTTP": "aws_allow_http",
}
"""Environment variable -> storage option key (the module docstring's table)."""


class LocationError(ValueError):
    """A location setting that is not one of the supported forms; the message is one line naming the setting."""


def parse(value: str, setting: str) -> str:
    """The normalized location of ``value`` (module docstring): an absolute local path or ``s3://bucket[/prefix]``.

    Args:
        value: the setting's text, as given.
        setting: its name for the message (``LAKEHOUSE_LAKE_DIR``, ``--landing-dir``...).

    Raises:
        LocationError: ``value`` is empty, has another scheme, or is a malformed ``s3://`` URI.
    """

    def refuse(why: str) -> LocationError:
        return LocationError(f"{setting}={value!r} {why}; supported: {SUPPORTED_FORMS}")

    if not value:
        raise refuse("is empty")
    if not _SCHEME.match(value):
        return str(Path(value).resolve())
    if not value.startswith(S3):
        scheme = value.split(":", 1)[0]
        raise refuse(f"uses {scheme}:, which is not supported (a local folder with ':' in its name: write ./{value})")
    bucket, _, prefix = value.removeprefix(S3).partition("/")
    if not bucket:
        raise refuse("names no bucket")
    if not _BUCKET.match(bucket):
        raise refuse(f"names the bucket {bucket!r}, which is not a valid S3 bucket name")
    prefix = prefix.rstrip("/")
    bad = [s for s in prefix.split("/") if not _SEGMENT.match(s) or s in (".", "..")] if prefix else []
    if bad:
        raise refuse(f"has a prefix segment {bad[0]!r} (letters, digits, '.', '_', '-', '=' only; no '.' or '..')")
    return f"{S3}{bucket}/{prefix}" if prefix else f"{S3}{bucket}"


def is_object_store(location: str) -> bool:
    """True for an ``s3://`` location (as :func:`parse` returns it), False for a local path."""
    return location.startswith(S3)


def split(location: str) -> tuple[str, str]:
    """``s3://bucket/a/b`` -> ``("bucket", "a/b")`` (``""`` for the bucket's root).

    Raises:
        ValueError: ``location`` is not an ``s3://`` location.
    """
    if not is_object_store(location):
        raise ValueError(f"{location} is not an s3:// location")
    bucket, _, key = location.removeprefix(S3).partition("/")
    return bucket, key.strip("/")


def storage_options(location: str) -> dict[str, str] | None:
    """The delta-rs/polars ``storage_options`` for ``location``: None for a local path; for ``s3://`` the
    variables of the module docstring that are set (``AWS_DEFAULT_REGION`` standing in for ``AWS_REGION``).

    The returned dict holds the secret key: pass it to the library, never to a log or to metadata.
    """
    if not is_object_store(location):
        return None
    options = {key: os.environ[var] for var, key in ENVIRONMENT.items() if os.environ.get(var)}
    if "aws_region" not in options and os.environ.get("AWS_DEFAULT_REGION"):
        options["aws_region"] = os.environ["AWS_DEFAULT_REGION"]
    return options


def object_store(location: str, *, timeout_seconds: float | None = None) -> S3Store:
    """An obstore ``S3Store`` on the bucket of ``location`` (keys are bucket-relative), configured from the same
    options as :func:`storage_options` (``aws_allow_http`` moved to the client options, see the module docstring).
    ``timeout_seconds`` bounds a request, retries included (default: obstore's, minutes with retries).

    Raises:
        ValueError: ``location`` is not an ``s3://`` location.
    """
    from obstore.store import S3Store

    bucket, _ = split(location)
    options = storage_options(location) or {}
    allow_http = options.pop("aws_allow_http", "false").strip().lower() in ("1", "true", "yes")
    client: dict = {"allow_http": allow_http}
    retry: dict | None = None
    if timeout_seconds is not None:
        client |= {"connect_timeout": timedelta(seconds=timeout_seconds), "timeout": timedelta(seconds=timeout_seconds)}
        retry = {"max_retries": 1, "retry_timeout": timedelta(seconds=timeout_seconds)}
    return S3Store(bucket, config=options, client_options=client, retry_config=retry)  # type: ignore[arg-type]


def check_reachable(location: str, setting: str, timeout_seconds: float = 10.0) -> None:
    """For an ``s3://`` location, list its prefix once (nothing for a local path), so that a missing bucket, a wrong
    endpoint or refused credentials are said in one line before anything is written.

    Raises:
        LocationError: the listing failed; the message names the setting, the endpoint and the server's reason
            (never a credential).
    """
    if not is_object_store(location):
        return
    import obstore

    _, key = split(location)
    store = object_store(location, timeout_seconds=timeout_seconds)
    try:
        obstore.list_with_delimiter(store, prefix=f"{key}/" if key else None)
    except Exception as exc:
        text = str(exc)
        code, message = re.search(r"<Code>([^<]+)</Code>", text), re.search(r"<Message>([^<]+)</Message>", text)
        reason = (f"{code[1]}: {message[1]}" if message else code[1]) if code else text.split("\n")[0].split(" - ")[-1]
        endpoint = os.environ.get("AWS_ENDPOINT_URL") or "AWS S3"
        raise LocationError(
            f"{setting}={location!r} cannot be listed at {endpoint} ({reason.strip()}); check the bucket and the "
            "AWS_* variables"
        ) from None
