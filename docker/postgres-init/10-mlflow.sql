-- Run once by the postgres image on an empty data volume: MLflow's backend store lives next to Dagster's database.
CREATE DATABASE mlflow;
