"""JSON Schemas of the spec files, for editor completion and CI (``nexus schema``).

The job schema is the pydantic model's, adjusted to what a YAML file holds: a transformation's
``config`` is chosen by its ``transformation_type`` (the model's internal ``kind`` tag is not
written in specs), and ``source_type`` / ``target_type`` list the registered connector types.
A schema editor (the YAML language server: ``# yaml-language-server: $schema=<file>``) then
completes field names and flags misspelled keys as ``nexus validate`` does.
"""

from __future__ import annotations

import copy
from typing import Any

from nexus_dagster.connectors.registry import connector_types
from nexus_dagster.spec.models import Connection, ETLJob

DRAFT = "https://json-schema.org/draft/2020-12/schema"
_TYPE_FIELDS = {"DataSource": "source_type", "DataTarget": "target_type"}


def job_schema() -> dict[str, Any]:
    """The JSON Schema of one job spec file (``job_specs/<job>.yaml``)."""
    schema = ETLJob.model_json_schema()
    defs = schema["$defs"]
    types = connector_types()
    for model, field in _TYPE_FIELDS.items():
        prop = defs[model]["properties"][field]
        prop["enum"] = list(types)
        prop["description"] = "a registered connector type"
    transformation = defs["Transformation"]
    mapping = transformation["properties"]["config"]["discriminator"]["mapping"]
    transformation["properties"]["config"] = {"type": "object"}
    branches = []
    for kind, ref in mapping.items():
        config = defs[ref.rsplit("/", 1)[-1]]
        config["properties"].pop("kind", None)
        if "kind" in config.get("required", []):
            config["required"].remove("kind")
        branches.append({
            "if": {"properties": {"transformation_type": {"const": kind}},
                   "required": ["transformation_type"]},
            "then": {"properties": {"config": {"$ref": ref}}},
        })
    transformation["allOf"] = branches
    return {"$schema": DRAFT, **schema, "title": "nexus-dagster job spec"}


def connections_schema() -> dict[str, Any]:
    """The JSON Schema of ``job_specs/connections.yaml``: name -> connection.

    A connection is ``{type: ..., <params>...}`` or ``{type: ..., params: {...}}``; its
    parameters are the connector's and are checked by ``nexus validate``.
    """
    connection = copy.deepcopy(Connection.model_json_schema())
    connection["additionalProperties"] = True
    connection["properties"]["type"]["description"] = (
        "a connector type or a database dialect (postgresql, mysql, sqlite, ...)")
    return {
        "$schema": DRAFT,
        "title": "nexus-dagster connections.yaml",
        "type": "object",
        "properties": {"connections": {"type": "object", "additionalProperties": connection}},
        "additionalProperties": connection,
    }
