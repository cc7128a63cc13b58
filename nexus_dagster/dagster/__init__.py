"""Everything of nexus-dagster that knows Dagster: specs -> Definitions (factory, translator),
connections as resources, asset checks, sensors, partitions, triggers, notifications, run
metrics. The rest of the package imports no Dagster."""
