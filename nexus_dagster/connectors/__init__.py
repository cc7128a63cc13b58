"""Connectors: one module per system, each a :class:`~nexus_dagster.connectors.base.Connector`
with typed params and declared capabilities; :mod:`nexus_dagster.connectors.registry` maps
``source_type``/``target_type`` names to them."""
