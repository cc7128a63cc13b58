"""An IO manager for hand-written assets: their output stored through a nexus target (a database
table, a file, an object in a bucket) and read back as the input of downstream assets.

:class:`NexusIOManager` is the Dagster-facing config (which connection, which connector);
:class:`NexusStorage` does the work with the same connectors, write modes and atomic loads as
spec targets. Per asset, definition metadata says where and how:

=========================  ==============================================================
``nexus/table``            the table (database targets); default: the asset key's last part
``nexus/file_path``        the file or object (file and object-store targets); default:
                           ``<asset key's last part>.<format extension>``
``nexus/file_format``      csv, tsv, json, jsonl, parquet or excel; default: the path's
                           extension, else parquet
``nexus/write_mode``       overwrite (default), append or upsert
``nexus/key_columns``      the key of an upsert (a list of column names)
``nexus/partition_column`` the date/timestamp column of a time-partitioned asset: a run
                           replaces exactly its window of it
=========================  ==============================================================

Example:
    >>> import dagster as dg, pandas as pd
    >>> @dg.asset(metadata={"nexus/write_mode": "upsert", "nexus/key_columns": ["id"]})
    ... def customers() -> pd.DataFrame:
    ...     return pd.DataFrame({"id": [1, 2], "name": ["Ann", "Bob"]})
    >>> defs = dg.Definitions(assets=[customers],  # doctest: +SKIP
    ...                       resources={"io_manager": NexusIOManager(connection="warehouse")})
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from nexus_dagster import secrets
from nexus_dagster.connectors.base import Connector, Cursor, LoadResult, ReadRequest, WriteRequest
from nexus_dagster.connectors.database import DatabaseConnector
from nexus_dagster.connectors.file import FileConnector
from nexus_dagster.connectors.formats.names import infer_format, normalize_format
from nexus_dagster.connectors.registry import connector_class
from nexus_dagster.dagster.factory import table_schema
from nexus_dagster.errors import DataError, SpecError
from nexus_dagster.project import specs_dir
from nexus_dagster.relation import Relation
from nexus_dagster.run.cursors import cursor_scalar, filter_cursor
from nexus_dagster.run.endpoints import open_connector
from nexus_dagster.spec.connections import default_connector_type, named_connection_params
from nexus_dagster.spec.loader import load_connections, spec_files
from nexus_dagster.spec.models import Connection

__all__ = [
    "ACCEPTED_OUTPUTS",
    "FILE_FORMAT_KEY",
    "FILE_PATH_KEY",
    "KEY_COLUMNS_KEY",
    "PARTITION_COLUMN_KEY",
    "TABLE_KEY",
    "WRITE_MODE_KEY",
    "NexusIOManager",
    "NexusStorage",
]

TABLE_KEY = "nexus/table"
FILE_PATH_KEY = "nexus/file_path"
FILE_FORMAT_KEY = "nexus/file_format"
WRITE_MODE_KEY = "nexus/write_mode"
KEY_COLUMNS_KEY = "nexus/key_columns"
PARTITION_COLUMN_KEY = "nexus/partition_column"

#: what an asset stored through the IO manager may return
ACCEPTED_OUTPUTS = (
    "a pandas DataFrame, a pyarrow Table, a pyarrow RecordBatchReader or a nexus Relation "
    "(or None: nothing is written)"
)
#: what a downstream input may be annotated with
ACCEPTED_INPUTS = "pandas.DataFrame (the default), pyarrow.Table or pyarrow.RecordBatchReader"

DEFAULT_FILE_FORMAT = "parquet"
#: the extension of a default file path, per format
EXTENSIONS = {"csv": "csv", "tsv": "tsv", "json": "json", "jsonl": "jsonl",
              "parquet": "parquet", "excel": "xlsx"}


@dataclass(frozen=True)
class Place:
    """Where an asset's data lives on a connector: a table, or a file path and its format."""

    table: str | None = None
    path: str | None = None
    file_format: str | None = None


class NexusStorage:
    """The work behind :class:`NexusIOManager`: storing outputs and loading inputs through the
    connector of one connection (``type_name`` from the registry, ``params`` unresolved:
    ``${ENV}``/``enc:`` values are resolved when a connector is opened, inside the step).

    Args:
        type_name: the connector's registry name (database, file, s3 ...).
        params: the connection's params as a spec writes them.
        root: the project root; relative local paths (a SQLite file, a file target) resolve
            against it.
        label: how the connection is named in messages (``connection 'warehouse'``).

    Example:
        >>> storage = NexusStorage("database", {"type": "sqlite", "database": "wh.db"},
        ...                        root=Path("."), label="connection_params")
        >>> storage.handle_output(context, frame)  # doctest: +SKIP
    """

    def __init__(self, type_name: str, params: Mapping[str, Any], *, root: Path, label: str):
        self.type_name = type_name
        self.params = dict(params)
        self.root = Path(root)
        self.label = label
        #: the connector class (looked up now: an unknown type fails before any step runs)
        self.connector_cls = connector_class(type_name)

    # --- configuration ----------------------------------------------------------------------
    @classmethod
    def from_config(
        cls,
        *,
        connection: str | None,
        connection_params: Mapping[str, Any] | None,
        connector_type: str | None,
        specs: str | Path | None,
    ) -> NexusStorage:
        """The storage of a :class:`NexusIOManager` configuration: the named connection of the
        spec folder's connections.yaml, or the inline params.

        Raises:
            SpecError: both or neither of ``connection`` and ``connection_params``, no
                connections.yaml, an unknown connection name, or no connector for its type.
        """
        folder = Path(specs) if specs else specs_dir()
        root = folder.resolve().parent
        if bool(connection) == bool(connection_params):
            raise SpecError(
                "NexusIOManager needs exactly one of connection (a name in connections.yaml) "
                "and connection_params (inline params with a type); "
                f"got {'both' if connection else 'neither'}"
            )
        if connection:
            params = named_connection_params(_named_connection(folder, connection))
            label = f"connection {connection!r}"
        else:
            params = dict(connection_params or {})
            label = "NexusIOManager.connection_params"
        type_name = connector_type or default_connector_type(
            params.get("type") or params.get("driver") or ("database" if params.get("url")
                                                           else None)
        )
        return cls(type_name, params, root=root, label=label)

    def open(self, role: str) -> Connector:
        """A connector on the connection, secrets resolved now; ``role`` is source or target."""
        return open_connector(self.type_name, self.params, root=self.root, role=role,
                              where=self.label)

    @property
    def stores_files(self) -> bool:
        """True when the connector stores files (its endpoints need a file_path)."""
        groups = (*self.connector_cls.target_requires, *self.connector_cls.source_requires)
        return any("file_path" in group for group in groups)

    # --- output -----------------------------------------------------------------------------
    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        """Store ``obj`` (see :data:`ACCEPTED_OUTPUTS`) and add the materialization's metadata.

        Raises:
            DataError: ``obj`` is of another type, or holds rows outside the partition window.
            SpecError: bad metadata (write mode, key columns, partition column, paths).
            LoadError: the load failed; the target was left as it was.
        """
        what = _output_name(context)
        if obj is None:
            _log(context, f"{what} returned None: NexusIOManager wrote nothing to {self.label}")
            return
        relation = as_relation(obj, what)
        metadata = plain_metadata(context.definition_metadata)
        place = self.place(metadata, _default_name(context), what)
        mode = str(metadata.get(WRITE_MODE_KEY) or "").strip()
        keys = _key_columns(metadata.get(KEY_COLUMNS_KEY), what)
        replace_range = None
        if context.has_asset_partitions:
            replace_range = self.partition_range(context, metadata, relation.schema, what, mode)
            mode = mode or "append"
            relation = _inside_window(relation, replace_range, context, what)
        mode = mode or "overwrite"
        if mode not in self.connector_cls.write_modes:
            raise SpecError(
                f"{what}: {WRITE_MODE_KEY} {mode!r} is not supported by {self.type_name} "
                f"({self.label}); use one of {', '.join(sorted(self.connector_cls.write_modes))}"
            )
        if mode == "upsert" and not keys:
            raise SpecError(
                f"{what}: {WRITE_MODE_KEY} upsert needs {KEY_COLUMNS_KEY}, the columns that "
                "identify a row, e.g. metadata={\"nexus/key_columns\": [\"id\"]}"
            )
        connector = self.open("target")
        try:
            request = WriteRequest(
                table=place.table,
                path=connector.resolve_path(place.path, self.root),
                file_format=place.file_format,
                write_mode=mode,
                key_columns=keys,
                run_id=context.run_id,
                replace_range=replace_range,
            )
            result = connector.write(relation, request)
            name, uri = self.table_name(connector, request)
        finally:
            connector.close()
        context.add_output_metadata(output_metadata(result, relation.schema, mode, name, uri))

    def partition_range(
        self, context: dg.OutputContext, metadata: Mapping[str, Any], schema: pa.Schema,
        what: str, mode: str,
    ) -> tuple[str, Any, Any]:  # fmt: skip
        """(column, start, end) a partition run replaces: ``nexus/partition_column`` and the
        run's time window, typed like the column.

        Raises:
            SpecError: no time partitions, no or a non-temporal partition column, an overwrite
                write mode, or a connector that cannot replace a range.
        """
        column = _partition_column(metadata, what)
        if not self.connector_cls.supports_replace_range:
            raise SpecError(
                f"{what} is partitioned, but {self.type_name} ({self.label}) cannot replace "
                "a partition's rows; store partitioned assets in a database (or a connector "
                "with supports_replace_range), or remove the partitions"
            )
        if mode == "overwrite":
            raise SpecError(
                f"{what}: {WRITE_MODE_KEY} overwrite would delete the other partitions; use "
                "append (the default: each partition run replaces its own window) or upsert"
            )
        window = _time_window(context, what)
        if column not in schema.names:
            raise DataError(
                f"{what}: {PARTITION_COLUMN_KEY} {column!r} is not a column of the output; "
                f"columns: {', '.join(schema.names)}"
            )
        start, end = window_bounds(window, schema.field(column).type, column, what)
        return column, start, end

    # --- input ------------------------------------------------------------------------------
    def load_input(self, context: dg.InputContext) -> Any:
        """The upstream asset's data as the input's annotation asks (see
        :data:`ACCEPTED_INPUTS`); a partitioned input gets only its partitions' window.

        Raises:
            SpecError: an unsupported annotation or bad upstream metadata.
            ConnectorError: the table or file does not exist (the upstream was not
                materialized through this IO manager).
        """
        upstream = context.upstream_output
        what = _input_name(context)
        metadata = plain_metadata(upstream.definition_metadata if upstream is not None else {})
        place = self.place(metadata, _default_name(context), what)
        wanted = _wanted_type(context, what)
        connector = self.open("source")
        try:
            request = ReadRequest(table=place.table,
                                  path=connector.resolve_path(place.path, self.root),
                                  file_format=place.file_format)
            relation = connector.read(request)
            if context.has_asset_partitions:
                relation = self.partition_read(context, connector, request, relation, metadata,
                                               what)
            if wanted is pa.RecordBatchReader:
                return _closing_reader(relation, connector)
            table = relation.to_table()
        except BaseException:
            connector.close()
            raise
        connector.close()
        if wanted is pa.Table:
            return table
        return table.to_pandas()

    def partition_read(
        self, context: dg.InputContext, connector: Connector, request: ReadRequest,
        relation: Relation, metadata: Mapping[str, Any], what: str,
    ) -> Relation:  # fmt: skip
        """The rows of the input's partition window: read by the connector when it filters
        itself, else filtered here."""
        column = _partition_column(metadata, what)
        if column not in relation.schema.names:
            raise DataError(
                f"{what}: {PARTITION_COLUMN_KEY} {column!r} is not a column of "
                f"{request.table or request.path}; columns: {', '.join(relation.schema.names)}"
            )
        start, end = window_bounds(_time_window(context, what),
                                   relation.schema.field(column).type, column, what)
        cursor = Cursor(column, start, inclusive=True, upper=end)
        if connector.supports_incremental:
            return connector.read(ReadRequest(table=request.table, path=request.path,
                                              file_format=request.file_format, cursor=cursor))
        return filter_cursor(relation, cursor, what)

    # --- places -----------------------------------------------------------------------------
    def place(self, metadata: Mapping[str, Any], name: str | None, what: str) -> Place:
        """The table, or the file path and format, of an asset from its definition metadata
        (defaults from ``name``, the asset key's last part; None for an op's output).

        Raises:
            SpecError: metadata naming the wrong kind of place for the connector, an unknown
                file format, or neither metadata nor a name.
        """
        table = _text(metadata.get(TABLE_KEY))
        path = _text(metadata.get(FILE_PATH_KEY))
        file_format = _text(metadata.get(FILE_FORMAT_KEY))
        if name is None and not (table or path):
            raise SpecError(
                f"{what} is no asset output, so it has no default name; give its Out metadata "
                f"{FILE_PATH_KEY if self.stores_files else TABLE_KEY}, or make it an asset"
            )
        if self.stores_files:
            if table and not path:
                raise SpecError(
                    f"{what}: {self.type_name} ({self.label}) stores files, not tables; "
                    f"set {FILE_PATH_KEY} instead of {TABLE_KEY}"
                )
            if file_format:
                file_format = normalize_format(file_format)
            elif path:
                file_format = _format_of(path)
            else:
                file_format = DEFAULT_FILE_FORMAT
            return Place(path=path or f"{name}.{EXTENSIONS[file_format]}",
                         file_format=file_format)
        if path and not table:
            raise SpecError(
                f"{what}: {self.type_name} ({self.label}) stores tables, not files; "
                f"set {TABLE_KEY} instead of {FILE_PATH_KEY}"
            )
        return Place(table=table or name)

    def table_name(self, connector: Connector, request: WriteRequest) -> tuple[str, str | None]:
        """``dagster/table_name`` of a written place (a fully qualified table, or the file's
        URI) and the file's URI (None for tables)."""
        if isinstance(connector, FileConnector) and request.path:
            shown = connector.location(connector.resolve(request.path))
            uri = Path(shown).as_uri() if connector.is_local else shown
            return secrets.mask(uri), secrets.mask(uri)
        if isinstance(connector, DatabaseConnector) and request.table:
            return _qualified(connector, request.table), None
        return secrets.mask(request.table or request.path or connector.describe()), None


class NexusIOManager(dg.ConfigurableIOManager):
    """Stores hand-written assets through a nexus connection and loads them downstream.

    Outputs may be a pandas DataFrame, a pyarrow Table or a pyarrow RecordBatchReader (streamed
    batch by batch); they go to a table (database connections) or a file (file and object-store
    connections) named after the asset key's last part, atomically like spec targets.
    Definition metadata ``nexus/table``, ``nexus/file_path``, ``nexus/file_format``,
    ``nexus/write_mode`` (default overwrite), ``nexus/key_columns`` and, for time-partitioned
    assets, ``nexus/partition_column`` change that (see :mod:`nexus_dagster.dagster.io_manager`).
    Inputs are a DataFrame unless annotated ``pyarrow.Table`` or ``pyarrow.RecordBatchReader``.

    Example:
        >>> import dagster as dg, pandas as pd, pyarrow as pa
        >>> @dg.asset(metadata={"nexus/write_mode": "upsert", "nexus/key_columns": ["id"]})
        ... def customers() -> pd.DataFrame:
        ...     return pd.DataFrame({"id": [1, 2], "country": ["DE", "FR"]})
        >>> @dg.asset
        ... def german_customers(customers: pa.Table) -> pd.DataFrame:
        ...     return customers.filter(pa.compute.equal(customers["country"], "DE")).to_pandas()
        >>> defs = dg.Definitions(  # doctest: +SKIP
        ...     assets=[customers, german_customers],
        ...     resources={"io_manager": NexusIOManager(connection="warehouse")})
    """

    connection: str | None = Field(
        default=None,
        description="a named connection of the spec folder's connections.yaml (e.g. warehouse)",
    )
    connection_params: dict[str, Any] | None = Field(
        default=None,
        description="inline connection params as in a spec (type: postgresql, host, ...; or "
        "type: s3, bucket, ...); ${ENV} and enc: values are resolved inside the run",
    )
    connector_type: str | None = Field(
        default=None,
        description="the connector's registry name (database, file, s3, ...); default: the "
        "connection's type when a connector has that name, else database for SQL dialects",
    )
    specs: str | None = Field(
        default=None,
        description="the spec folder holding connections.yaml; default $NEXUS_JOB_SPECS or "
        "./job_specs. Relative local paths resolve against its parent folder",
    )

    def storage(self) -> NexusStorage:
        """The :class:`NexusStorage` doing this IO manager's work."""
        return NexusStorage.from_config(connection=self.connection,
                                        connection_params=self.connection_params,
                                        connector_type=self.connector_type, specs=self.specs)

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        """Store the asset's output (see :meth:`NexusStorage.handle_output`)."""
        self.storage().handle_output(context, obj)

    def load_input(self, context: dg.InputContext) -> Any:
        """Load an upstream asset (see :meth:`NexusStorage.load_input`)."""
        return self.storage().load_input(context)


# --- helpers ---------------------------------------------------------------------------------
def as_relation(obj: Any, what: str = "output") -> Relation:
    """An asset's output as a relation: a DataFrame or Table re-iterable, a RecordBatchReader
    one pass (batches are pulled while the target writes them).

    Raises:
        DataError: ``obj`` is of another type (the message names it and the accepted ones).
    """
    if isinstance(obj, Relation):
        return obj
    if isinstance(obj, pd.DataFrame):
        frame = obj.reset_index() if any(n is not None for n in obj.index.names) else obj
        table = pa.Table.from_pandas(frame, preserve_index=False)
        return Relation.from_table(table.replace_schema_metadata(None), name=what)
    if isinstance(obj, pa.Table):
        return Relation.from_table(obj, name=what)
    if isinstance(obj, pa.RecordBatchReader):
        return Relation(obj.schema, lambda: iter(obj), name=what)
    raise DataError(
        f"{what} returned a {type(obj).__module__}.{type(obj).__qualname__}; NexusIOManager "
        f"stores {ACCEPTED_OUTPUTS}"
    )


def plain_metadata(metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    """Definition metadata with Dagster's metadata value wrappers unwrapped."""
    out = {}
    for key, value in (metadata or {}).items():
        out[key] = value.value if isinstance(value, dg.MetadataValue) else value
    return out


def window_bounds(
    window: dg.TimeWindow, type_: pa.DataType, column: str, what: str
) -> tuple[Any, Any]:
    """A partition's time window as values of the partition column's type: aware datetimes for
    a timestamp with a time zone, the window's wall-clock times (in the partitions' time zone)
    for a naive timestamp, dates for a date column.

    Raises:
        SpecError: the column is no date or timestamp, or a date column with partitions finer
            than a day.
    """
    start, end = window.start, window.end
    if pa.types.is_timestamp(type_):
        if type_.tz:
            return start, end
        return start.replace(tzinfo=None), end.replace(tzinfo=None)
    if pa.types.is_date(type_):
        if start.time() != dt.time() or end.time() != dt.time():
            raise SpecError(
                f"{what}: {PARTITION_COLUMN_KEY} {column!r} is a date column, but the partitions "
                "are finer than a day; use a timestamp column, or daily (or coarser) partitions"
            )
        return start.date(), end.date()
    raise SpecError(
        f"{what}: {PARTITION_COLUMN_KEY} {column!r} is of type {type_}; name a date or "
        "timestamp column"
    )




def _qualified(connector: DatabaseConnector, table: str) -> str:
    return secrets.mask(connector.qualified_name(table))


def output_metadata(
    result: LoadResult, schema: pa.Schema, mode: str, table_name: str, uri: str | None
) -> dict[str, Any]:
    """The materialization metadata of a stored output (secret-free)."""
    metadata: dict[str, Any] = {
        "dagster/row_count": result.rows_loaded,
        "dagster/column_schema": table_schema(schema),
        "dagster/table_name": table_name,
        "nexus/write_mode": mode,
        "nexus/location": secrets.mask(result.location),
    }
    if uri:
        metadata["dagster/uri"] = uri
    if result.rows_inserted is not None:
        metadata["nexus/rows_inserted"] = result.rows_inserted
    if result.rows_updated is not None:
        metadata["nexus/rows_updated"] = result.rows_updated
    for name in ("rows_unchanged", "rows_replaced"):
        if result.extra.get(name) is not None:
            metadata[f"nexus/{name}"] = int(result.extra[name])
    return metadata


def _named_connection(folder: Path, name: str) -> Connection:
    """The connection ``name`` of the spec folder's connections.yaml."""
    found = spec_files([folder])[1] if folder.is_dir() else []
    if not found:
        raise SpecError(
            f"NexusIOManager: connection {name!r} needs {folder}/connections.yaml, which does "
            "not exist; set specs to the spec folder, or give connection_params instead"
        )
    connections, _, problems = load_connections(found[0])
    if name not in connections:
        mine = [p for p in problems if name in str(p)]
        if mine:
            raise SpecError(mine)
        raise SpecError(
            f"NexusIOManager: connection {name!r} is not in {found[0]}; known: "
            f"{', '.join(sorted(connections)) or 'none'}"
        )
    return connections[name]


def _output_name(context: dg.OutputContext) -> str:
    if context.has_asset_key:
        return f"asset {context.asset_key.to_user_string()}"
    return f"output {context.name!r} of {context.step_key}"


def _input_name(context: dg.InputContext) -> str:
    if context.has_asset_key:
        return f"input {context.name!r} (asset {context.asset_key.to_user_string()})"
    return f"input {context.name!r}"


def _default_name(context: dg.OutputContext | dg.InputContext) -> str | None:
    """The asset key's last part (the default table or file name); None for an op's output."""
    return context.asset_key.path[-1] if context.has_asset_key else None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return str(value).strip() or None


def _format_of(path: str) -> str:
    """The format a path's extension names, else the default (parquet)."""
    try:
        return infer_format(path)
    except SpecError:
        return DEFAULT_FILE_FORMAT


def _key_columns(value: Any, what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise SpecError(
        f"{what}: {KEY_COLUMNS_KEY} must be a list of column names, e.g. [\"id\"]; got "
        f"{type(value).__name__}"
    )


def _partition_column(metadata: Mapping[str, Any], what: str) -> str:
    column = _text(metadata.get(PARTITION_COLUMN_KEY))
    if not column:
        raise SpecError(
            f"{what} is partitioned, but has no {PARTITION_COLUMN_KEY} metadata: name the date "
            f"or timestamp column a partition covers, e.g. "
            f"@dg.asset(partitions_def=..., metadata={{\"{PARTITION_COLUMN_KEY}\": "
            "\"order_date\"})"
        )
    return column


def _time_window(context: dg.OutputContext | dg.InputContext, what: str) -> dg.TimeWindow:
    if not isinstance(context.asset_partitions_def, dg.TimeWindowPartitionsDefinition):
        kind = type(context.asset_partitions_def).__name__
        raise SpecError(
            f"{what} has {kind} partitions; NexusIOManager stores time-partitioned assets "
            "(daily, hourly, ... TimeWindowPartitionsDefinition) only"
        )
    return context.asset_partitions_time_window


def _inside_window(
    relation: Relation, window: tuple[str, Any, Any], context: dg.OutputContext, what: str
) -> Relation:
    """The relation, failing (so the load rolls back) on a row outside the partition window."""
    column, start, end = window
    index = relation.schema.get_field_index(column)
    type_ = relation.schema.field(index).type
    low, high = cursor_scalar(start, type_), cursor_scalar(end, type_)
    keys = ", ".join(context.asset_partition_keys)

    def open_() -> Iterator[pa.RecordBatch]:
        for batch in relation:
            values = batch.column(index)
            inside = pc.and_(pc.greater_equal(values, low), pc.less(values, high))
            kept = pc.sum(pc.fill_null(inside, False).cast(pa.int64())).as_py() or 0
            outside = batch.num_rows - kept
            if outside:
                raise DataError(
                    f"{what}: {outside} row(s) have {column} outside partition {keys} "
                    f"[{start}, {end}) (or null); a partition run stores only its own window's "
                    "rows, nothing was written"
                )
            yield batch

    return Relation(relation.schema, open_, relation.name, relation.stats)


def _wanted_type(context: dg.InputContext, what: str) -> type | None:
    """pa.Table, pa.RecordBatchReader or None (a DataFrame) from the input's annotation."""
    wanted = getattr(context.dagster_type, "typing_type", Any)
    if isinstance(wanted, type) and issubclass(wanted, pa.Table):
        return pa.Table
    if isinstance(wanted, type) and issubclass(wanted, pa.RecordBatchReader):
        return pa.RecordBatchReader
    if wanted in (Any, object, None, type(None)) or (
        isinstance(wanted, type) and issubclass(wanted, pd.DataFrame)
    ):
        return None
    raise SpecError(
        f"{what} is annotated {getattr(wanted, '__name__', wanted)}; NexusIOManager loads "
        f"{ACCEPTED_INPUTS}"
    )


def _closing_reader(relation: Relation, connector: Connector) -> pa.RecordBatchReader:
    """A reader over the relation that closes the connector when read to the end."""

    def batches() -> Iterator[pa.RecordBatch]:
        try:
            yield from relation
        finally:
            connector.close()

    return pa.RecordBatchReader.from_batches(relation.schema, batches())


def _log(context: dg.OutputContext, message: str) -> None:
    if context.log is not None:
        context.log.info(secrets.mask(message))
