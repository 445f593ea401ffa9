"""Pure polars transformations, one module per layer. No Dagster, no storage: testable on small frames."""
