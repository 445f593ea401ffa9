"""Two OS processes commit to the same Delta table on S3 at the same time, through the lakehouse's own write path
(:meth:`lakehouse.tables.Lake.append`), and no commit is lost.

What makes it safe (no DynamoDB lock since delta-rs 1.0; module docstring of :mod:`lakehouse.storage`): commit
``N`` is written as ``_delta_log/<N>.json`` with a conditional put (``If-None-Match: *``); the server accepts the
first and answers 412 to the other, whose writer reloads the log, checks the winning commit for conflicts (two
blind appends never conflict) and retries as ``N+1``. moto answers the conditional put as AWS S3 does (checked
first, on the server itself), so a lost or overwritten commit would show as a missing version, a missing writer's
commit or a wrong row count.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import obstore
import polars as pl
import pytest
from obstore.exceptions import AlreadyExistsError

from lakehouse.tables import BRONZE, Lake
from lakehouse_tests.helpers import bronze_of
from lakehouse_tests.object_store import S3Server

APPENDS = 8  # per writer
WRITER = """
import os, sys, time
from datetime import UTC, datetime
import polars as pl
from lakehouse.bronze.parsing import to_bronze
from lakehouse.sources import SOURCES
from lakehouse.tables import BRONZE, Lake
root, name, go, rows_path = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
raw = pl.read_parquet(rows_path)
lake = Lake(root)
frames = [
    to_bronze(raw.slice(i * 10, 10), SOURCES["flights"], source_file=f"{name}_{i}.csv", file_hash=f"{name}{i}",
              batch_id=name, batch_seq=i + 1, ingested_at=datetime.now(UTC))
    for i in range(len(raw) // 10)
]
print("ready", flush=True)
while not os.path.exists(go):  # both writers start together
    time.sleep(0.005)
for i, frame in enumerate(frames):
    lake.append(BRONZE["flights"], frame, metadata={"writer": name, "append": str(i)})
"""


def test_the_server_refuses_a_second_conditional_put(s3_server: S3Server, s3_bucket: str):
    store = s3_server.store(s3_bucket)
    obstore.put(store, "probe/00000000000000000000.json", b"first", mode="create")
    with pytest.raises(AlreadyExistsError, match="precondition failure"):  # the server said 412
        obstore.put(store, "probe/00000000000000000000.json", b"second", mode="create")
    assert bytes(obstore.get(store, "probe/00000000000000000000.json").bytes()) == b"first"


def test_two_processes_appending_at_once_lose_no_commit(s3_server, s3_bucket, raw_flights, tmp_path, monkeypatch):
    """Writers ``a`` and ``b`` each append 8 batches of 10 real rows (one commit each) to ``bronze/flights``."""
    env = s3_server.env()
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    root = f"s3://{s3_bucket}/lake"
    lake, table = Lake(root), BRONZE["flights"]
    lake.append(table, bronze_of("flights", raw_flights.head(0)))  # version 0: the (empty) table exists
    rows = {}
    for name, offset in (("a", 0), ("b", 1000)):
        rows[name] = tmp_path / f"{name}.parquet"
        raw_flights.slice(offset, APPENDS * 10).write_parquet(rows[name])
    go = tmp_path / "go"
    child_env = {**os.environ, **env, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, root, name, str(go), str(path)],
            env=child_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, path in rows.items()
    ]
    for w in writers:  # both imported everything and built their frames
        assert w.stdout is not None and w.stdout.readline().strip() == "ready", w.communicate(timeout=60)[1][-3000:]
    go.touch()
    for w in writers:
        _, err = w.communicate(timeout=240)
        assert w.returncode == 0, err[-3000:]

    assert lake.version(table) == 2 * APPENDS  # versions 0..2N
    history = sorted(lake_history(lake), key=lambda c: c["version"])
    assert [c["version"] for c in history] == list(range(2 * APPENDS + 1))  # contiguous, none lost or overwritten
    commits = [(c["writer"], int(c["append"])) for c in history[1:]]
    assert sorted(commits) == [(w, i) for w in ("a", "b") for i in range(APPENDS)]  # each append exactly once
    order = [w for w, _ in commits]
    switches = sum(x != y for x, y in itertools.pairwise(order))
    assert switches >= 2, f"the writers did not overlap: {order}"  # they really committed concurrently
    table_rows = lake.read(table)
    assert table_rows.height == 2 * APPENDS * 10
    assert table_rows.select(pl.col("_source_file").n_unique()).item() == 2 * APPENDS
    print(json.dumps({"commit_order": "".join(order)}))


def lake_history(lake: Lake) -> list[dict]:
    from lakehouse import storage

    return storage.open_table(lake.location(BRONZE["flights"])).history()
