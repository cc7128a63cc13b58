"""This repository as a ``dg`` project (``[tool.dg]`` in pyproject.toml); not installed with
the package.

``code_location.py`` is its code location: every component under ``defs/``, here
``defs/nexus_jobs/defs.yaml``, a ``nexus_dagster.NexusJobs`` over the repository's
``job_specs/``. From the repository root::

    dg check defs
    dg list defs
    dg launch --job demo_orders

``nexus_dagster.definitions`` (``dagster job execute -m nexus_dagster.definitions``,
workspace.yaml, ``nexus ui``) loads a spec folder without ``dg``: ``$NEXUS_JOB_SPECS`` or
``./job_specs``.
"""
