"""``nexus_dagster.NexusJobs``: a folder of Nexus job specs as a Component of a ``dg`` project.

A ``defs.yaml`` in the project's defs folder points the component at a spec folder (the job
specs and their ``connections.yaml``); ``dg check defs``, ``dg list defs`` and
``dg launch --job <job>`` then see the same assets, jobs, schedules and sensors that
:func:`nexus_dagster.dagster.factory.build_definitions` builds::

    # <project>/src/<project>/defs/etl/defs.yaml
    type: nexus_dagster.NexusJobs
    attributes:
      specs: job_specs        # relative to this defs.yaml's folder
      # or: specs: "{{ context.project_root }}/job_specs"

The generic ``defs.yaml`` keys (``post_processing``, ``requirements``) work as for any
component. The package registers its components with ``dg`` through the entry point group
``dagster_dg_cli.registry_modules`` (``dg list components`` shows ``nexus_dagster.NexusJobs``).

Example:
    >>> from nexus_dagster import NexusJobs
    >>> import dagster as dg
    >>> defs = dg.build_defs_for_component(NexusJobs(specs="/abs/path/job_specs"))  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from pydantic import Field

from nexus_dagster.dagster.factory import build_definitions
from nexus_dagster.errors import SpecError, SpecProblem
from nexus_dagster.spec.loader import load_project

SCAFFOLD_CONNECTIONS = """\
# Named connections shared by the job specs of this folder (one YAML file per job next to it).
# Values may be ${ENV_VAR} references or enc:<token> (`nexus encrypt`), resolved at run time.
# warehouse:
#   type: sqlite
#   database: output/warehouse.db
"""


class NexusJobsScaffolder(dg.Scaffolder):
    """``dg scaffold defs nexus_dagster.NexusJobs <path>``: a defs.yaml with ``specs: job_specs``
    and that folder with a commented ``connections.yaml``."""

    def scaffold(self, request: dg.ScaffoldRequest) -> None:
        """Write the defs.yaml and the spec folder next to it (an existing folder is kept)."""
        dg.scaffold_component(request, {"specs": "job_specs"})
        folder = request.target_path / "job_specs"
        folder.mkdir(parents=True, exist_ok=True)
        connections = folder / "connections.yaml"
        if not connections.exists():
            connections.write_text(SCAFFOLD_CONNECTIONS, encoding="utf-8")


@dg.scaffold_with(NexusJobsScaffolder)
class NexusJobs(dg.Component, dg.Model, dg.Resolvable):
    """A folder of Nexus job specs as Dagster assets, jobs, schedules, sensors and checks.

    Every job spec of the folder becomes its assets and an asset job named after the job, with
    its schedule, sensors and checks; the named connections become resources. Relative file
    paths inside the specs resolve against the spec folder's parent, as with ``nexus run``.

    Attributes:
        specs: the spec folder (or one spec file), relative to this ``defs.yaml``'s folder or
            absolute; ``"{{ context.project_root }}/job_specs"`` names a folder of the project
            root.
    """

    specs: str = Field(
        description=(
            "The folder of Nexus job specs (with its connections.yaml), relative to the folder "
            "of this defs.yaml or absolute; use '{{ context.project_root }}/job_specs' for a "
            "folder at the project root."
        ),
        examples=["job_specs", "{{ context.project_root }}/job_specs"],
    )

    @classmethod
    def get_spec(cls) -> dg.ComponentTypeSpec:
        """What ``dg list components`` and the UI show about this component type."""
        return dg.ComponentTypeSpec(
            description="Nexus ETL job specs (YAML) as assets, jobs, schedules and sensors",
            tags=["nexus", "etl"],
            produces=["asset", "asset_check", "job", "schedule", "sensor", "resource"],
        )

    def spec_path(self, context: dg.ComponentLoadContext) -> Path:
        """The spec folder: ``specs`` resolved against the folder of the ``defs.yaml``.

        Raises:
            SpecError: the folder does not exist (names the ``defs.yaml`` and the path).
        """
        path = Path(self.specs).expanduser()
        if not path.is_absolute():
            path = context.path / path
        if not path.exists():
            raise SpecError([
                SpecProblem(
                    f"spec folder {path} does not exist",
                    file=str(context.path / "defs.yaml"),
                    field="attributes.specs",
                    fix="name a folder of job specs relative to this defs.yaml's folder, an "
                    "absolute path, or '{{ context.project_root }}/<folder>'",
                )
            ])
        return path.resolve()

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        """Load the spec folder (one SpecError listing every problem) and build Definitions."""
        return build_definitions(load_project(self.spec_path(context)))
