"""The code location loads, with every layer's assets, groups and resources."""

import dagster as dg

from lakehouse.definitions import build_definitions, defs


def test_definitions_load_and_hold_the_whole_graph():
    dg.Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    for source in ("flights", "weather", "planes", "airports", "airlines"):
        assert {f"bronze/{source}", f"silver/{source}"} <= keys
    assert {"gold/flight_features", "gold/route_daily_delays", "ml/flight_delay_model",
            "gold/flight_delay_predictions"} <= keys
    groups = {graph.get(k).group_name for k in graph.get_all_asset_keys()}
    assert groups == {"bronze", "silver", "gold", "ml"}
    assert defs.resolve_job_def("medallion") is not None


def test_settings_come_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("LAKEHOUSE_LAKE_DIR", str(tmp_path / "lake"))
    monkeypatch.setenv("LAKEHOUSE_MLFLOW_URI", "sqlite:///" + str(tmp_path / "m.db"))
    from lakehouse.settings import LakehouseSettings

    s = LakehouseSettings.from_env()
    assert s.lake_dir == str(tmp_path / "lake") and s.mlflow_tracking_uri.endswith("m.db")
    assert build_definitions(s).resources["settings"].lake_dir == str(tmp_path / "lake")
