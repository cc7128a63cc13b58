"""What every connector implements, and the capabilities the factory checks at load time.

A connector knows its system and nothing of specs or Dagster: it is built from plain, already
resolved parameters (secrets decrypted, ``${ENV}`` expanded) and reads or writes
:class:`~nexus_dagster.relation.Relation` objects.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from nexus_dagster.errors import SpecError, SpecProblem, did_you_mean
from nexus_dagster.relation import Relation
from nexus_dagster.secrets import is_reference


class ConnectorParams(BaseModel):
    """The parameters every connector accepts; a connector's own ``Params`` model extends it.

    ``type`` is the connection's type as written in connections.yaml (``postgresql``,
    ``s3`` ...), ``encrypted`` the Nexus flag saying its secrets are ``enc:`` tokens. A
    connector's model types its fields (secrets as ``pydantic.SecretStr``) and says whether
    unknown keys are errors (``extra="forbid"``) or passed on to its driver (``extra="allow"``).
    """

    model_config = ConfigDict(extra="allow")

    type: str | None = None
    encrypted: bool = False


@dataclass(frozen=True)
class Cursor:
    """An incremental read: rows whose ``column`` is past ``value``.

    ``inclusive`` is True for the spec's starting ``incremental_value`` (rows >= start) and False
    for a cursor kept by Dagster (rows > the largest value already loaded).
    """

    column: str
    value: Any
    inclusive: bool = False
    #: exclusive upper bound (rows < upper), for partition windows; None = unbounded
    upper: Any = None


@dataclass(frozen=True)
class ChangeCapture:
    """A change data capture read (``cdc: true``): the table's changes through a PostgreSQL
    logical replication ``publication`` and ``slot``, instead of its rows."""

    publication: str
    slot: str


@dataclass
class ReadRequest:
    """What a source is asked for.

    Attributes:
        table: table name (optionally schema-qualified) for table sources.
        query: a SQL query, used instead of ``table``.
        path: file path, object key or glob for file-like sources.
        options: connector-specific options from the spec (csv delimiter, sheet names, ...).
        batch_size: rows per Arrow batch.
        cursor: incremental filter, or None for a full read.
    """

    table: str | None = None
    query: str | None = None
    path: str | None = None
    file_format: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    batch_size: int = 50_000
    cursor: Cursor | None = None
    #: what this source reported in ``relation.stats["state"]`` on the last committed run
    #: (a Redis stream id, an API cursor ...), kept by Dagster; None on the first run
    state: Mapping[str, Any] | None = None
    #: read the table's changes instead of its rows (database sources with ``cdc: true``)
    cdc: ChangeCapture | None = None


@dataclass(frozen=True)
class Scd2Options:
    """How a ``write_mode: scd2`` load keeps versions (see ``spec.load_options.Scd2Spec``)."""

    valid_from: str = "valid_from"
    valid_to: str = "valid_to"
    is_current: str = "is_current"
    #: columns whose change makes a new version; None: every data column but the keys
    compare_columns: tuple[str, ...] | None = None
    close_missing: bool = False


@dataclass(frozen=True)
class AfterLoad:
    """What a source does with the data it read once every target committed.

    ``delete``: delete the files/objects (or rows) read; ``move_to``: move the files read under
    this folder/prefix (already resolved by :meth:`Connector.resolve_path`). Row sources delete
    by ``keys`` (an Arrow table of the key columns' values read) when given, else by the read's
    incremental window: its cursor, up to ``window_max``, the largest ``window_column`` value
    read (None: no row was read).
    """

    delete: bool = False
    move_to: str | None = None
    keys: Any = None
    window_column: str | None = None
    window_max: Any = None


@dataclass
class WriteRequest:
    """What a target is asked to do with a relation."""

    table: str | None = None
    path: str | None = None
    file_format: str | None = None
    write_mode: str = "append"
    key_columns: tuple[str, ...] = ()
    options: Mapping[str, Any] = field(default_factory=dict)
    batch_size: int = 50_000
    run_id: str | None = None
    #: what keeps one logical run's requests recognisable across retries and re-executions
    #: (Dagster's root run id): targets that send idempotency keys derive them from it, so a
    #: retried request is deduplicated and a later run's identical rows are not; None: every
    #: write call is its own scope
    idempotency_scope: str | None = None
    #: (column, start, end): replace the rows with start <= column < end by the data, in one
    #: transaction (a partition run); only for connectors with ``supports_replace_range``
    replace_range: tuple[str, Any, Any] | None = None
    #: the version columns of ``write_mode: scd2``
    scd2: Scd2Options | None = None
    #: ``sync`` (and SCD2 ``close_missing``): the largest share of the target's rows a load may
    #: delete/close before it fails
    max_delete_fraction: float = 0.5
    #: retention: delete the rows matching this expression in the load's transaction; only for
    #: connectors with ``supports_delete_where``
    delete_where: str | None = None
    #: the data is a change stream (a ``cdc`` source) whose rows say in this column what
    #: happened (insert/update/delete): ``upsert``/``sync`` delete the keys of deletes and
    #: upsert the rest, instead of treating every row as present
    change_column: str | None = None


@dataclass
class LoadResult:
    """What a load did. ``location`` is a human-readable, secret-free place (table or path)."""

    rows_loaded: int
    location: str
    rows_inserted: int | None = None
    rows_updated: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Connector(ABC):
    """Common base: construction from resolved params, a safe description, a connection test.

    Class attributes declare capabilities; the factory rejects a spec asking for more.
    """

    #: the ``source_type``/``target_type`` values this connector serves
    kinds: ClassVar[tuple[str, ...]] = ()
    #: True when read() filters by ReadRequest.cursor itself; otherwise the runner filters
    supports_incremental: ClassVar[bool] = False
    #: True when write() honours WriteRequest.replace_range (partitioned jobs need it)
    supports_replace_range: ClassVar[bool] = False
    write_modes: ClassVar[frozenset[str]] = frozenset()
    is_source: ClassVar[bool] = True
    is_target: ClassVar[bool] = False
    #: True when what a target wrote can be read back (asset checks need it)
    supports_read_back: ClassVar[bool] = True
    #: True when write() honours WriteRequest.delete_where (retention in the load)
    supports_delete_where: ClassVar[bool] = False
    #: what :meth:`after_load` can do with a source's data: ``"delete"``, ``"move_to"``
    after_load_actions: ClassVar[frozenset[str]] = frozenset()
    #: spec fields a source / target of this kind needs: each inner tuple is "one of these"
    source_requires: ClassVar[tuple[tuple[str, ...], ...]] = ()
    target_requires: ClassVar[tuple[tuple[str, ...], ...]] = ()
    #: the typed connection parameters; validated once, when the connector is built
    Params: ClassVar[type[ConnectorParams]] = ConnectorParams

    def __init__(self, params: Mapping[str, Any]):
        self.params = dict(params)
        #: ``params`` validated by :attr:`Params` (secrets as ``SecretStr``)
        self.config = self.check_params(self.params)

    # --- parameters ---------------------------------------------------------------------------
    @classmethod
    def check_params(cls, params: Mapping[str, Any]) -> ConnectorParams:
        """``params`` validated by :attr:`Params`; every problem in one
        :class:`~nexus_dagster.errors.SpecError` naming the parameter (values never shown)."""
        try:
            return cls.Params.model_validate(dict(params))
        except ValidationError as exc:
            raise SpecError([
                SpecProblem(f"{cls.__name__}: {message}", field=f"connection_params.{where}")
                for where, message in _errors(exc)
            ]) from None

    @classmethod
    def params_problems(cls, params: Mapping[str, Any]) -> list[tuple[str, str, str]]:
        """Problems of not yet resolved params, found at load time: ``(field, message, fix)``.

        A value holding a ``${ENV}`` or ``enc:`` reference is checked at run time only; an
        unknown key is reported whatever its value.
        """
        try:
            cls.Params.model_validate(dict(params))
        except ValidationError as exc:
            problems = []
            fields = ", ".join(param_names(cls.Params)) or "none"
            for error in exc.errors(include_url=False, include_input=False):
                where = ".".join(str(part) for part in error["loc"])
                value = params.get(str(error["loc"][0])) if error["loc"] else None
                if error["type"] != "extra_forbidden" and is_reference(value):
                    continue
                hint = (did_you_mean(error["loc"][-1], param_names(cls.Params))
                        if error["type"] == "extra_forbidden" and error["loc"] else "")
                fix = f"{hint}see the {cls.__name__} parameters: {fields}"
                problems.append((f"connection_params.{where}" if where else "connection_params",
                                 error["msg"], fix))
            return problems
        return []

    @classmethod
    def prepare_params(cls, params: Mapping[str, Any], *, root: Path, role: str) -> dict[str, Any]:
        """Resolved params made ready for a run of a project at ``root``: relative local paths
        in them (a SQLite file, a ``base_dir``) taken from the project root. ``role`` is
        ``"source"`` or ``"target"``. The default changes nothing."""
        return dict(params)

    def resolve_path(self, path: str | None, root: Path) -> str | None:
        """A spec's ``file_path`` as this connector reads and writes it; the default (systems
        without local paths) keeps it as written."""
        return path

    @classmethod
    def asset_kinds(
        cls, type_name: str, params: Mapping[str, Any], file_format: str | None = None
    ) -> set[str]:
        """Systems shown as Dagster ``kinds`` on the assets of an endpoint of this connector
        (``params`` unresolved). The default is the type name."""
        return {type_name}

    @abstractmethod
    def describe(self) -> str:
        """Where this connector points, with no secret in it (a masked URL, a path)."""

    def test_connection(self) -> bool:
        """True when the system answers; never raises for an unreachable server."""
        return True

    def connection_problem(self) -> str | None:
        """Why the health check fails (secret-free, for ``nexus test-connection``), or None when
        the system answers. Connectors that know the reason override it; the default asks
        :meth:`test_connection`."""
        return None if self.test_connection() else "the health check got no answer"

    def read(self, request: ReadRequest) -> Relation:
        """Return a lazy relation over the requested data."""
        raise NotImplementedError(f"{type(self).__name__} cannot be used as a source")

    def write(self, relation: Relation, request: WriteRequest) -> LoadResult:
        """Load the relation. On failure the target is left exactly as it was."""
        raise NotImplementedError(f"{type(self).__name__} cannot be used as a target")

    @classmethod
    def spec_problems(
        cls, role: str, table: str | None, options: Mapping[str, Any], params: Mapping[str, Any]
    ) -> list[tuple[str, str, str]]:
        """Problems of a spec endpoint this connector would serve, found at load time:
        ``(field, message, fix)`` each, ``field`` relative to the endpoint (``options``).
        ``role`` is "source" or "target"; ``params`` are not resolved yet (``${ENV}``)."""
        return []

    def read_back(self, request: WriteRequest) -> ReadRequest:
        """The read that returns what a target written with ``request`` holds (asset checks):
        the same table or path and format, the write's options (a CSV delimiter reads as it
        was written). Connectors whose writes land elsewhere than a read of the same fields
        would look (part files, key templates, topics) override it; connectors that cannot
        be read back set ``supports_read_back = False``."""
        return ReadRequest(
            table=request.table,
            path=request.path,
            file_format=request.file_format,
            options=dict(request.options),
            batch_size=request.batch_size,
        )

    def acknowledge(self, relation: Relation) -> None:
        """Called once every target committed the data this source read through ``relation``
        (commit consumer offsets, delete processed files ...). Not called when a load failed,
        so the next run reads the same data again: at-least-once, never lost."""
        return None

    def after_load(
        self, relation: Relation, request: ReadRequest, action: AfterLoad
    ) -> dict[str, int]:
        """Delete or move what this source read through ``relation`` (read with ``request``),
        once every target committed and after :meth:`acknowledge`; never called when a load
        failed. Returns counts for the run's metadata (``files_deleted``, ``rows_deleted``...).
        Only the actions in :attr:`after_load_actions` are ever asked for."""
        raise NotImplementedError(f"{type(self).__name__} has no after_load actions")

    def close(self) -> None:
        """Release connections; called at the end of every run, failed or not."""
        return None


def param_names(model: type[BaseModel]) -> list[str]:
    """The parameter names of a params model as a spec writes them (the first accepted
    alias of each field), sorted."""
    names = []
    for name, info in model.model_fields.items():
        alias = info.validation_alias or info.alias
        choices = getattr(alias, "choices", None)
        if choices:
            alias = choices[0]
        names.append(alias if isinstance(alias, str) else name)
    return sorted(names)



def _errors(exc: ValidationError) -> list[tuple[str, str]]:
    """(dotted field, message) of each pydantic error, without the offending value."""
    out = []
    for error in exc.errors(include_url=False, include_input=False):
        where = ".".join(str(part) for part in error["loc"])
        out.append((where, error["msg"]))
    return out
