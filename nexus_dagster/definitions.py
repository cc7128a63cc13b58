"""The Dagster code location: every job spec in the spec folder becomes assets and a job.

The folder is ``$NEXUS_JOB_SPECS`` or ``job_specs/`` in the working directory (``workspace.yaml``
sets that to the project root). A broken spec stops the code location from loading with every
problem listed; ``nexus validate`` shows the same list without Dagster.
"""

from __future__ import annotations

from nexus_dagster.dagster.factory import definitions_from_folder
from nexus_dagster.project import specs_dir

defs = definitions_from_folder(specs_dir())
