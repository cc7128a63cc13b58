"""Connections as Dagster resources that do the work.

Every named connection of ``connections.yaml`` is a :class:`ConnectionResource` under the
resource key equal to its name (``warehouse``); every inline ``connection_params`` block one
under ``<job>__<endpoint>``. The resource's fields are the connector's parameters, typed from the
connector's ``Params`` model, so the UI's Resources page and the launchpad show them and
Dagster overrides them the usual ways: ``Definitions(resources=...)``,
``execute_in_process(resources={"warehouse": ...})``, ``Definitions.merge`` or launchpad config.
A job's step asks its resources for its connectors (:meth:`ConnectionResource.open_connector`),
so an override changes where the data goes.

Secrets never become visible config:

* ``${NAME}`` is given to Dagster as ``dg.EnvVar("NAME")`` (resolved by Dagster at run time,
  shown as the variable's name);
* ``enc:`` tokens and other references (``${NAME:-default}``, a ``${NAME}`` inside a URL) stay
  as written and are resolved at run time;
* a literal secret (a password written in the spec, a URL with a password) is replaced by a
  placeholder naming where it is written (``<secret: connections.yaml warehouse.password>``);
  the process that built the definitions keeps the value and the resource swaps it back in at
  run time only.

Example:
    >>> defs = definitions_from_folder("job_specs")  # doctest: +SKIP
    >>> job = defs.resolve_job_def("orders_sync")  # doctest: +SKIP
    >>> job.execute_in_process(resources={"warehouse": DatabaseResource(  # doctest: +SKIP
    ...     type="postgresql", host="staging-db", database="warehouse",
    ...     password=dg.EnvVar("STAGING_PW"))})
"""

from __future__ import annotations

import json
import re
import threading
import types
import typing
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import dagster as dg
import pydantic
from pydantic import Field, SecretStr

from nexus_dagster import secrets
from nexus_dagster.connectors.base import Connector
from nexus_dagster.connectors.registry import connector_class
from nexus_dagster.dagster import integrations
from nexus_dagster.errors import SpecError
from nexus_dagster.run.endpoints import open_connector
from nexus_dagster.spec.api_fields import endpoint_params
from nexus_dagster.spec.connections import (
    default_connector_type,
    endpoint_role,
    endpoint_type,
    named_connection_params,
    resolve_connection,
)
from nexus_dagster.spec.models import Connection, DataSource, DataTarget, ETLJob

__all__ = [
    "ConnectionResource",
    "ConnectorSource",
    "connection_resource",
    "endpoint_opener",
    "endpoint_resource_key",
    "job_resources",
    "project_resources",
    "resource_class",
]

_ENV_ONLY = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")
_URL_PASSWORD = re.compile(r"://[^/:@\s]*:[^@/\s]+@")
_PLACEHOLDER = re.compile(r"^<secret: .+>$")

#: placeholder -> the literal secret it stands for (this process only, never in config)
_literals: dict[str, str] = {}
_literals_lock = threading.Lock()


@runtime_checkable
class ConnectorSource(Protocol):
    """What a job's step needs from the resource of an endpoint: a connector. A test double
    resource only has to offer this method."""

    def open_connector(
        self, type_name: str, *, root: Path, role: str, where: str,
        extra: Mapping[str, Any] | None = None,
    ) -> Connector: ...  # fmt: skip


class ConnectionResource(dg.ConfigurableResource):
    """A connection of nexus-dagster: the connector type and its parameters as fields.

    :func:`resource_class` makes one subclass per connector type with that connector's
    parameters as typed fields (``DatabaseResource``, ``S3Resource`` ...).
    """

    connector_type: str = Field(description="the registry type name (database, s3, kafka ...)")
    more_params: dict[str, Any] = Field(
        default_factory=dict,
        description="parameters passed on as written: driver options, and typed parameters "
        "given as references resolved at run time (${NAME:-default}, enc:)",
    )

    #: field name -> the parameter name a spec writes (an alias of the connector's model)
    param_names: ClassVar[dict[str, str]] = {}

    def connection_params(self) -> dict[str, Any]:
        """The connection's parameters as a spec writes them, placeholders not yet resolved."""
        params: dict[str, Any] = {}
        for name, param in self.param_names.items():
            value = getattr(self, name)
            if value is not None:
                params[param] = value
        params.update(self.more_params)
        return params

    def open_connector(
        self, type_name: str, *, root: Path, role: str, where: str,
        extra: Mapping[str, Any] | None = None,
    ) -> Connector:  # fmt: skip
        """A connector of ``type_name`` (the endpoint's type) on this connection's parameters
        merged with ``extra`` (the endpoint's own settings, e.g. an API's endpoint URL):
        literal secrets swapped back in, references resolved now."""
        params = {**self.connection_params(), **(extra or {})}
        return open_connector(type_name, _restore_literals(params), root=root, role=role,
                              where=where)  # fmt: skip


def _restore_literals(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _restore_literals(v) for k, v in value.items()}
    if isinstance(value, str) and _PLACEHOLDER.match(value):
        with _literals_lock:
            found = _literals.get(value)
        if found is None:
            raise SpecError(
                f"{value} is not known in this process: give the secret as ${{ENV}} or enc: "
                "(or set the resource's field) instead"
            )
        return found
    return value


def _config_type(annotation: Any) -> Any:
    """A Dagster-config type for a connector parameter's annotation (None allowed)."""
    origin = typing.get_origin(annotation)
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if origin in (typing.Union, types.UnionType):
        if len(args) == 1:
            return _config_type(args[0])
        simple = {_config_type(a) for a in args}
        return simple.pop() if len(simple) == 1 else Any
    if annotation is SecretStr or annotation is str:
        return str
    if annotation in (int, float, bool):
        return annotation
    if origin is list and args and _config_type(args[0]) in (str, int, float, bool):
        return list[_config_type(args[0])]
    if origin in (dict, Mapping) or annotation is dict:
        return dict[str, Any]
    return Any


def _param_name(name: str, info: Any) -> str:
    alias = info.validation_alias or info.alias
    choices = getattr(alias, "choices", None)
    if choices:
        alias = choices[0]
    return alias if isinstance(alias, str) else name


@cache
def resource_class(type_name: str) -> type[ConnectionResource]:
    """The resource class of a connector type: its ``Params`` fields as optional, typed
    Dagster config fields (``DatabaseResource`` for ``database`` ...)."""
    cls = connector_class(type_name)
    fields: dict[str, Any] = {}
    names: dict[str, str] = {}
    for name, info in cls.Params.model_fields.items():
        field_name = name if not hasattr(ConnectionResource, name) else f"{name}_param"
        fields[field_name] = (
            _config_type(info.annotation) | None,
            Field(None, description=info.description or f"the {name} parameter"),
        )
        names[field_name] = _param_name(name, info)
    fields["connector_type"] = (str, Field(type_name, description="the registry type name"))
    title = "".join(part.capitalize() for part in type_name.split("_")) + "Resource"
    model = pydantic.create_model(  # type: ignore[call-overload]
        title, __base__=ConnectionResource, __doc__=f"A {type_name} connection "
        f"({cls.__name__}); fields are its parameters.", **fields,
    )
    model.param_names = names
    return model


def _sensitive(cls: type[Connector], key: str) -> bool:
    """True for a secret parameter: by its name, or typed SecretStr by the connector."""
    if secrets.is_sensitive(key):
        return True
    for name, info in cls.Params.model_fields.items():
        alias = info.validation_alias or info.alias
        keys = {name, *(getattr(alias, "choices", None) or ([alias] if alias else []))}
        if key in keys:
            return SecretStr in (info.annotation, *typing.get_args(info.annotation))
    return False


def _accepted_keys(type_name: str) -> dict[str, str]:
    """Every parameter name a spec may write (field names and aliases) -> resource field."""
    model = resource_class(type_name)
    field_of = {param: field for field, param in model.param_names.items()}
    accepted: dict[str, str] = {}
    for name, info in connector_class(type_name).Params.model_fields.items():
        field = field_of[_param_name(name, info)]
        alias = info.validation_alias or info.alias
        choices = getattr(alias, "choices", None) or ([alias] if alias else [])
        for key in (name, *[c for c in choices if isinstance(c, str)]):
            accepted.setdefault(key, field)
    return accepted


#: resources made in this process by (type, where, params as written): the jobs of a project
#: share their named connections, and Dagster may load the definitions more than once
_made: dict[tuple[str, str, str], ConnectionResource] = {}
_MADE_LIMIT = 1024


def connection_resource(
    type_name: str, params: Mapping[str, Any], where: str
) -> ConnectionResource:
    """The resource of one connection: ``params`` as written in a spec (unresolved), ``where``
    naming them in placeholders (``connections.yaml warehouse``). The same arguments give the
    same (immutable) resource object, made once per process."""
    try:
        key = (type_name, where, json.dumps(params, sort_keys=True, default=repr))
    except (TypeError, ValueError):  # keys that do not sort: made each time
        return _new_resource(type_name, params, where)
    made = _made.get(key)
    if made is None:
        if len(_made) >= _MADE_LIMIT:
            _made.clear()
        made = _made[key] = _new_resource(type_name, params, where)
    return made


def _new_resource(type_name: str, params: Mapping[str, Any], where: str) -> ConnectionResource:
    model = resource_class(type_name)
    cls = connector_class(type_name)
    accepted = _accepted_keys(type_name)
    values: dict[str, Any] = {"connector_type": type_name}
    more: dict[str, Any] = {}
    for key, raw in params.items():
        key = str(key)
        field = accepted.get(key)
        value = _safe_value(raw, f"{where}.{key}", _sensitive(cls, key))
        if field is None:
            more[key] = value
            continue
        kind = _config_type(model.model_fields[field].annotation)
        if isinstance(value, dg.EnvVar) and kind is int:
            value = dg.EnvVar.int(value.env_var_name)
        elif isinstance(value, dg.EnvVar) and kind not in (str, Any):
            more[key] = f"${{{value.env_var_name}}}"  # resolved at run time
            continue
        elif not isinstance(value, dg.EnvVar) and not _fits(value, kind):
            # a reference in a typed field (${PORT:-5432}, enc:...), or another shape the
            # connector accepts (a list of brokers): passed on as written
            more[key] = value
            continue
        values[field] = value
    values["more_params"] = more
    return model(**values)


def _fits(value: Any, kind: Any) -> bool:
    """Whether ``value`` is of the config type ``kind`` (see :func:`_config_type`)."""
    if kind is Any or value is None:
        return True
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind is str:
        return isinstance(value, str)
    origin = typing.get_origin(kind)
    if origin is list:
        return isinstance(value, list) and all(_fits(v, typing.get_args(kind)[0]) for v in value)
    if origin is dict:
        return isinstance(value, Mapping)
    return True


def _safe_value(value: Any, where: str, sensitive: bool) -> Any:
    """``${NAME}`` as an EnvVar, literal secrets as placeholders, the rest as written."""
    if isinstance(value, Mapping):
        return {k: _safe_value(v, f"{where}.{k}", secrets.is_sensitive(str(k)))
                for k, v in value.items()}
    if not isinstance(value, str):
        if sensitive and value not in (None, False):
            return _placeholder(str(value), where)
        return value
    match = _ENV_ONLY.match(value.strip())
    if match:
        return dg.EnvVar(match.group(1))
    literal_default = sensitive and ":-" in value
    if value.startswith(secrets.ENC_PREFIX) or ("${" in value and not literal_default):
        return value
    if sensitive or _URL_PASSWORD.search(value):
        return _placeholder(value, where)
    return value


def _placeholder(value: str, where: str) -> str:
    placeholder = f"<secret: {where}>"
    secrets.register_secret(value)
    with _literals_lock:
        _literals[placeholder] = value
    return placeholder


def endpoint_resource_key(job: ETLJob, endpoint: DataSource | DataTarget) -> str:
    """The resource key of an endpoint: its connection's name, else ``<job>__<endpoint>``."""
    if endpoint.connection:
        return _resource_name(endpoint.connection)
    return f"{_resource_name(job.key)}__{_resource_name(endpoint.name)}"


def _resource_name(text: str) -> str:
    return re.sub(r"\W", "_", text)


def job_resources(
    job: ETLJob, connections: Mapping[str, Connection]
) -> dict[str, ConnectionResource]:
    """``{resource key: resource}`` for every connection the job's sources and targets use."""
    found: dict[str, ConnectionResource] = {}
    for endpoint in (*job.sources, *job.targets):
        key = endpoint_resource_key(job, endpoint)
        if key in found:
            continue
        where = (f"connections.yaml {endpoint.connection}" if endpoint.connection
                 else f"{job.key}.{endpoint.name}.connection_params")
        found[key] = connection_resource(
            endpoint_type(endpoint), resolve_connection(endpoint, connections), where
        )
    return found


def project_resources(project: Any) -> dict[str, ConnectionResource]:
    """A resource for every named connection of a project's connections.yaml, keyed by its
    name: typed by the connector of the first endpoint using it, else by the connection's
    ``type`` (a connection whose connector cannot be told is left out until a job uses it)."""
    used: dict[str, str] = {}
    for spec in project.jobs:
        for endpoint in (*spec.job.sources, *spec.job.targets):
            if endpoint.connection:
                used.setdefault(endpoint.connection, endpoint_type(endpoint))
    found: dict[str, ConnectionResource] = {}
    for name, connection in project.connections.items():
        try:
            type_name = used.get(name) or default_connector_type(connection.type)
            connector_class(type_name)
        except SpecError:
            continue
        found[_resource_name(name)] = connection_resource(
            type_name, named_connection_params(connection), f"connections.yaml {name}"
        )
    return found


def endpoint_opener(
    job: ETLJob, root: Path, resources: Any,
    spec_resources: Mapping[str, ConnectionResource] | None = None,
):  # fmt: skip
    """``endpoint -> connector`` through the step's resources (``context.resources``).

    Args:
        job: the job whose sources and targets are opened.
        root: the project root local paths resolve against.
        resources: the step's (or sensor's) ``context.resources``.
        spec_resources: the resources generated from the spec (:func:`job_resources`); where a
            Dagster integration resource (``dagster_aws.s3.S3Resource`` ...,
            :mod:`nexus_dagster.dagster.integrations`) stands under a connection's key, its
            credentials and endpoint are merged into the spec connection's parameters.
    """
    originals = getattr(resources, "original_resource_dict", None) or {}

    def open_(endpoint: DataSource | DataTarget) -> Connector:
        key = endpoint_resource_key(job, endpoint)
        type_name = endpoint_type(endpoint)
        where = f"{job.key}.{endpoint.name}.connection_params"
        original = originals.get(key)
        integration = integrations.integration_of(original) if original is not None else None
        if integration is None:
            resource = getattr(resources, key)
            return resource.open_connector(
                type_name, root=root, role=endpoint_role(endpoint), where=where,
                extra=endpoint_params(endpoint),
            )  # fmt: skip
        spec = (spec_resources or {}).get(key)
        if spec is None:
            raise SpecError(
                f"resource {key!r} is an integration resource but job {job.key} has no spec "
                f"connection {key!r} to take the bucket and paths from: name the connection "
                "in connections.yaml (or connection_params) and override only its resource"
            )
        own = {**spec.connection_params(), **endpoint_params(endpoint)}
        params = integrations.merged_params(integration, original, type_name, key, own)
        return open_connector(type_name, _restore_literals(params), root=root,
                              role=endpoint_role(endpoint), where=where)  # fmt: skip

    return open_
