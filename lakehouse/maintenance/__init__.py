"""Table maintenance: compaction, checkpoints, log clean-up and VACUUM of the lake's Delta tables
(:mod:`lakehouse.maintenance.housekeeping`, pure), run by the Dagster job ``lake_maintenance`` and its daily
schedule (:mod:`lakehouse.maintenance.jobs`)."""
