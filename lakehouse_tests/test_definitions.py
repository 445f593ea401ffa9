"""The code location: it loads, and its shape (assets, deps, checks, automation, pools, sensors) is the checked-in
snapshot. A deliberate change to the graph updates the snapshot in the same commit:

    LAKEHOUSE_UPDATE_SNAPSHOT=1 uv run pytest lakehouse_tests/test_definitions.py
"""

import json
import os
from pathlib import Path

import dagster as dg

from lakehouse.definitions import build_definitions, defs
from lakehouse.settings import Settings

SNAPSHOT = Path(__file__).with_name("snapshots") / "definitions.json"


def shape(definitions: dg.Definitions) -> dict:
    """What a reviewer should see change: per asset its deps, group, pool, automation condition, freshness and
    checks (with ``blocking``); per sensor its default status; per job its asset selection."""
    graph = definitions.resolve_asset_graph()
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        condition = node.automation_condition
        assets[key.to_user_string()] = {
            "deps": sorted(k.to_user_string() for k in node.parent_keys),
            "group": node.group_name,
            "pools": sorted(node.pools or []),
            "automation_condition": condition.get_label() if condition else None,
            "freshness_policy": type(node.freshness_policy).__name__ if node.freshness_policy else None,
            "checks": {
                check.name: {"blocking": graph.get_check_spec(check).blocking}
                for check in sorted(node.check_keys, key=lambda c: c.name)
            },
        }
    sensors = {
        s.name: {"default_status": s.default_status.value, "minimum_interval_seconds": s.minimum_interval_seconds}
        for s in sorted(definitions.sensors or [], key=lambda s: s.name)
    }
    jobs = {
        name: sorted(k.to_user_string() for k in definitions.resolve_job_def(name).asset_layer.executable_asset_keys)
        for name in ("ingest", "gold_months", "ml", "scoring")
    }
    partitioned = {
        key.to_user_string(): type(graph.get(key).partitions_def).__name__
        for key in graph.get_all_asset_keys()
        if graph.get(key).partitions_def is not None
    }
    return {"assets": assets, "sensors": sensors, "jobs": jobs, "partitioned": partitioned}


def test_definitions_load_and_match_the_snapshot():
    dg.Definitions.validate_loadable(defs)
    current = shape(defs)
    if os.environ.get("LAKEHOUSE_UPDATE_SNAPSHOT"):
        SNAPSHOT.parent.mkdir(exist_ok=True)
        SNAPSHOT.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
    assert current == json.loads(SNAPSHOT.read_text())


def test_every_layer_is_a_group_and_the_four_jobs_run_the_whole_graph_once():
    current = shape(defs)
    groups = {a["group"] for a in current["assets"].values()}
    assert groups == {"bronze", "silver", "gold", "ml"}
    jobs = current["jobs"]
    assert sorted(jobs["ingest"] + jobs["gold_months"] + jobs["ml"] + jobs["scoring"]) == sorted(current["assets"])
    assert current["partitioned"] == {
        "gold/flight_features": "MonthlyPartitionsDefinition",
        "gold/route_daily_delays": "MonthlyPartitionsDefinition",
        "gold/flight_delay_predictions": "MonthlyPartitionsDefinition",
        "ml/feature_drift": "MonthlyPartitionsDefinition",
    }
    for source in ("flights", "weather", "planes", "airports", "airlines"):
        assert current["assets"][f"silver/{source}"]["checks"]["row_accounting"] == {"blocking": True}
        assert current["assets"][f"silver/{source}"]["deps"] == [f"bronze/{source}"]


def test_settings_come_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("LAKEHOUSE_LAKE_DIR", str(tmp_path / "lake"))
    monkeypatch.setenv("LAKEHOUSE_MLFLOW_URI", "sqlite:///" + str(tmp_path / "m.db"))
    s = Settings.from_env()
    assert s.lake_dir == str(tmp_path / "lake") and s.mlflow_tracking_uri == "sqlite:///" + str(tmp_path / "m.db")
    resources = build_definitions(s).resources
    assert resources["storage"].lake_dir == str(tmp_path / "lake")
    assert resources["registry"].tracking_uri == s.mlflow_tracking_uri
    # an explicit data folder wins over the environment
    assert Settings.from_env(tmp_path / "d").lake_dir == str(tmp_path / "d" / "lake")
