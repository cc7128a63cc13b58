"""nexus-dagster: enterprise ETL jobs as Dagster assets."""
