"""The job model: one set of pydantic classes for YAML specs and for the Nexus Python API.

Field names follow the original Nexus API (``sources``, ``source_type``, ``connection_params``,
``table``, ``query``, ``incremental_column``, ``write_mode``, ``transformation_type``, ``config``,
``custom_code`` ...). The models know nothing of connectors or Dagster: capability checks
(can this connector upsert?) happen in the factory, against the connector registry.

Example:
    >>> job = ETLJob(
    ...     name="orders_daily",
    ...     sources=[DataSource(name="orders", source_type="file",
    ...                         file_path="data/orders.csv", file_format="csv")],
    ...     transformations=[Transformation(name="paid", transformation_type="filter",
    ...                                     config={"condition": 'status == "paid"'})],
    ...     targets=[DataTarget(name="out", target_type="file",
    ...                         file_path="output/paid.parquet", file_format="parquet")],
    ... )
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from nexus_dagster.spec.api_fields import ApiSourceFields, ApiTargetFields
from nexus_dagster.spec.engine_settings import EngineSettings
from nexus_dagster.spec.execution_settings import Execution
from nexus_dagster.spec.load_options import DEFAULT_MAX_DELETE_FRACTION, AfterLoadSpec, Scd2Spec
from nexus_dagster.spec.operations import (
    CheckSpec,
    FreshnessSpec,
    Notifications,
    PartitionsSpec,
    TriggerSpec,
)
from nexus_dagster.spec.rules import RuleSpec
from nexus_dagster.spec.select_config import SelectConfig
from nexus_dagster.spec.window_config import WindowConfig

NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
_NAME_RE = re.compile(NAME_PATTERN)
_KEY_PART_RE = re.compile(r"^[A-Za-z0-9_]+$")


class SourceType(StrEnum):
    """Where data comes from (the Nexus ``SourceType`` members).

    ``source_type`` itself is an open string: any name of the connector registry is valid,
    including connectors other packages register (``nexus_dagster.connectors.registry``).
    """

    DATABASE = "database"
    API = "api"
    FILE = "file"
    S3 = "s3"
    AZURE_BLOB = "azure_blob"
    GCS = "gcs"
    FTP = "ftp"
    SFTP = "sftp"
    KAFKA = "kafka"
    REDIS = "redis"
    ELASTICSEARCH = "elasticsearch"
    OPENSEARCH = "opensearch"
    MONGODB = "mongodb"


class TargetType(StrEnum):
    """Where data goes (the Nexus ``TargetType`` members); ``target_type`` is an open string
    like ``source_type``."""

    DATABASE = "database"
    API = "api"
    FILE = "file"
    S3 = "s3"
    AZURE_BLOB = "azure_blob"
    GCS = "gcs"
    FTP = "ftp"
    SFTP = "sftp"
    KAFKA = "kafka"
    REDIS = "redis"
    ELASTICSEARCH = "elasticsearch"
    OPENSEARCH = "opensearch"
    MONGODB = "mongodb"


class TransformationType(StrEnum):
    """The built-in transformations (the Nexus ``TransformationType`` members, plus JOIN)."""

    FILTER = "filter"
    MAP = "map"
    AGGREGATE = "aggregate"
    SORT = "sort"
    DEDUPLICATE = "deduplicate"
    PIVOT = "pivot"
    JOIN = "join"
    CUSTOM_CODE = "custom_code"
    WINDOW = "window"
    SELECT = "select"


class WriteMode(StrEnum):
    """How a target treats rows already there."""

    APPEND = "append"
    OVERWRITE = "overwrite"
    UPSERT = "upsert"
    #: upsert, then delete the target rows whose keys a full extract no longer has
    SYNC = "sync"
    #: slowly changing dimension, type 2: changed rows close their version and add a new one
    SCD2 = "scd2"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", use_enum_values=False, validate_assignment=False)


def _as_list(value: Any) -> Any:
    """Accept ``"a"`` where ``["a"]`` is meant, as pandas does."""
    return [value] if isinstance(value, str) else value


StrList = Annotated[list[str], Field(min_length=1)]


def _type_name(value: Any) -> Any:
    """``SourceType.S3`` -> ``"s3"``: enum members and plain names are the same type name."""
    return getattr(value, "value", value)


#: a source/target type: a name of the connector registry, checked by the project checks
#: (spec/validate.py), since the models know nothing of the registry
TypeName = Annotated[str, BeforeValidator(_type_name), Field(pattern=r"^[A-Za-z][A-Za-z0-9_]*$")]


# ----------------------------------------------------------------------------- transformations
class FilterConfig(_Model):
    """``condition``: a boolean expression, e.g. ``status == "active" and age >= 18``."""

    kind: Literal["filter"] = Field("filter", exclude=True, repr=False)
    condition: str = Field(min_length=1)


class MapConfig(_Model):
    """``mappings``: new or replaced column -> expression, applied in the order given."""

    kind: Literal["map"] = Field("map", exclude=True, repr=False)
    mappings: dict[str, str] = Field(min_length=1)


AGGREGATE_FUNCTIONS = (
    "sum", "mean", "avg", "count", "size", "min", "max", "median", "std", "var",
    "first", "last", "nunique",
)


class AggregateConfig(_Model):
    """``group_by`` columns and ``aggregations``: output -> (column, function)."""

    kind: Literal["aggregate"] = Field("aggregate", exclude=True, repr=False)
    group_by: StrList = Field(default_factory=list)
    aggregations: dict[str, tuple[str, str]] = Field(min_length=1)

    _as_list = field_validator("group_by", mode="before")(_as_list)

    @field_validator("aggregations")
    @classmethod
    def _known_functions(cls, value: dict[str, tuple[str, str]]) -> dict[str, tuple[str, str]]:
        for output, (_, function) in value.items():
            if function not in AGGREGATE_FUNCTIONS:
                raise ValueError(
                    f"{output!r} uses unknown function {function!r}; "
                    f"known: {', '.join(AGGREGATE_FUNCTIONS)}"
                )
        return value


class SortConfig(_Model):
    """``columns`` to sort by; ``ascending`` one flag or one per column."""

    kind: Literal["sort"] = Field("sort", exclude=True, repr=False)
    columns: StrList
    ascending: bool | list[bool] = True

    _as_list = field_validator("columns", mode="before")(_as_list)

    @model_validator(mode="after")
    def _same_length(self) -> SortConfig:
        if isinstance(self.ascending, list) and len(self.ascending) != len(self.columns):
            raise ValueError(
                f"ascending has {len(self.ascending)} flags for {len(self.columns)} columns; "
                "give one flag per column or a single true/false"
            )
        return self


class DeduplicateConfig(_Model):
    """``subset``: columns that identify a duplicate (all when omitted); ``keep`` first|last."""

    kind: Literal["deduplicate"] = Field("deduplicate", exclude=True, repr=False)
    subset: list[str] | None = None
    keep: Literal["first", "last"] = "first"

    _as_list = field_validator("subset", mode="before")(_as_list)


class PivotConfig(_Model):
    """Long to wide: one row per ``index``, one column per distinct value of ``columns``."""

    kind: Literal["pivot"] = Field("pivot", exclude=True, repr=False)
    index: StrList
    columns: str
    values: str
    aggfunc: Literal["first", "last", "sum", "mean", "count", "min", "max"] = "first"
    fill_value: Any = None
    max_columns: int = Field(1000, ge=1)

    _as_list = field_validator("index", mode="before")(_as_list)


JOIN_HOWS = ("inner", "left", "right", "outer", "semi", "anti", "cross")


class JoinConfig(_Model):
    """Combine two named inputs (sources or earlier steps) on key columns, like pandas
    ``merge``: ``on`` (same names on both sides) or ``left_on``/``right_on`` (one right column
    per left column); ``how`` inner | left | right | outer | semi (left rows with a match) |
    anti (left rows without one) | cross (every pair; no keys)."""

    kind: Literal["join"] = Field("join", exclude=True, repr=False)
    left: str
    right: str
    on: StrList | None = None
    left_on: StrList | None = None
    right_on: StrList | None = None
    how: Literal["inner", "left", "right", "outer", "semi", "anti", "cross"] = "inner"
    suffixes: tuple[str, str] = ("_x", "_y")

    _as_list = field_validator("on", "left_on", "right_on", mode="before")(_as_list)

    @model_validator(mode="after")
    def _keys(self) -> JoinConfig:
        given = [n for n in ("on", "left_on", "right_on") if getattr(self, n) is not None]
        if self.how == "cross":
            if given:
                raise ValueError(
                    f"a cross join pairs every left row with every right row and takes no "
                    f"keys: remove {', '.join(given)}"
                )
            return self
        if self.on is not None and (self.left_on is not None or self.right_on is not None):
            raise ValueError("give either on or left_on/right_on, not both")
        if self.on is None:
            if self.left_on is None or self.right_on is None:
                article = "an" if self.how[0] in "aeiou" else "a"
                raise ValueError(
                    f"{article} {self.how} join needs keys: on: [column] (same name on both sides) "
                    "or left_on: [...] with right_on: [...]"
                )
            if len(self.left_on) != len(self.right_on):
                raise ValueError(
                    f"left_on has {len(self.left_on)} columns and right_on has "
                    f"{len(self.right_on)}: give one right column per left column"
                )
        return self

    def key_pairs(self) -> list[tuple[str, str]]:
        """(left column, right column) of each key; empty for a cross join."""
        if self.on is not None:
            return [(k, k) for k in self.on]
        return list(zip(self.left_on or (), self.right_on or (), strict=True))


class CustomCodeConfig(_Model):
    """Options of custom code: ``per_batch`` runs the code on each batch (streaming)."""

    kind: Literal["custom_code"] = Field("custom_code", exclude=True, repr=False)
    per_batch: bool = False


TransformConfig = Annotated[
    FilterConfig
    | MapConfig
    | AggregateConfig
    | SortConfig
    | DeduplicateConfig
    | PivotConfig
    | JoinConfig
    | CustomCodeConfig
    | WindowConfig
    | SelectConfig,
    Field(discriminator="kind"),
]


class Transformation(_Model):
    """One step of the transformation chain, applied in ``order`` (then spec order).

    Example:
        >>> Transformation(name="revenue", transformation_type=TransformationType.MAP,
        ...                config={"mappings": {"revenue": "quantity * price"}}, order=2)
    """

    name: str = Field(pattern=NAME_PATTERN)
    transformation_type: TransformationType
    config: TransformConfig
    custom_code: str | None = None
    order: int = 0
    enabled: bool = True
    description: str | None = None
    #: the source or earlier step this step reads (default: the step before it; the first
    #: step reads the union of the sources)
    input: str | None = Field(None, pattern=NAME_PATTERN)

    @model_validator(mode="before")
    @classmethod
    def _tag_config(cls, data: Any) -> Any:
        if isinstance(data, dict):
            kind = data.get("transformation_type")
            kind = getattr(kind, "value", kind)
            config = data.get("config")
            if config is None:
                config = {}
            if isinstance(config, dict) and isinstance(kind, str):
                data = {**data, "config": {**config, "kind": kind}}
        return data

    @model_validator(mode="after")
    def _code_present(self) -> Transformation:
        if self.transformation_type == TransformationType.CUSTOM_CODE:
            if not (self.custom_code and self.custom_code.strip()):
                raise ValueError("custom_code transformations need a non-empty custom_code")
        elif self.custom_code:
            raise ValueError(
                f"custom_code is only for transformation_type custom_code, "
                f"not {self.transformation_type.value}"
            )
        if self.input is not None and self.transformation_type in (
            TransformationType.JOIN, TransformationType.CUSTOM_CODE
        ):
            reads = ("left and right" if self.transformation_type == TransformationType.JOIN
                     else "the step before it as df and every source by its name")
            raise ValueError(
                f"input is not for {self.transformation_type.value} steps: it reads {reads}; "
                "remove input"
            )
        return self


# ----------------------------------------------------------------------------- sources/targets
class _Endpoint(_Model):
    """Fields shared by sources and targets."""

    name: str = Field(pattern=NAME_PATTERN)
    connection: str | None = None
    connection_params: dict[str, Any] = Field(default_factory=dict)
    table: str | None = None
    file_path: str | None = None
    file_format: str | None = None
    batch_size: int = Field(50_000, ge=1, le=10_000_000)
    encrypted: bool = False
    options: dict[str, Any] = Field(default_factory=dict)
    description: str | None = None
    #: the Dagster asset key (``a/b/c`` or a list); default: where the data lives
    asset_key: str | list[str] | None = None
    #: more upstream asset keys (``a/b/c``) this target depends on, besides the job's sources
    deps: list[str] = Field(default_factory=list)
    #: Dagster asset owners (``team:data``, ``someone@example.com``)
    owners: list[str] = Field(default_factory=list)
    #: Dagster asset tags
    tags: dict[str, str] = Field(default_factory=dict)
    #: the asset group (default: the job's name)
    group_name: str | None = Field(None, pattern=NAME_PATTERN)
    #: extra metadata shown on the asset
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("asset_key")
    @classmethod
    def _key_parts(cls, value: str | list[str] | None) -> str | list[str] | None:
        parts = value.split("/") if isinstance(value, str) else value
        if parts is not None and (not parts or any(not _KEY_PART_RE.match(p) for p in parts)):
            raise ValueError(
                f"asset_key {value!r}: use parts of letters, digits and underscores separated "
                "by '/', e.g. warehouse/daily_revenue"
            )
        return value

    @model_validator(mode="after")
    def _one_connection(self) -> _Endpoint:
        if self.connection and self.connection_params:
            raise ValueError(
                "give either connection (a name from connections.yaml) or connection_params, "
                "not both"
            )
        return self


class DataSource(_Endpoint, ApiSourceFields):
    """Where a job reads. ``table`` or ``query`` for databases, ``file_path`` for files.

    Example:
        >>> DataSource(name="orders", source_type=SourceType.DATABASE, connection="app_db",
        ...            table="orders", incremental_column="updated_at",
        ...            incremental_value="2024-01-01 00:00:00", batch_size=50000)
    """

    source_type: TypeName
    query: str | None = None
    incremental_column: str | None = None
    incremental_value: Any = None
    api_endpoint: str | None = None
    api_method: str = "GET"
    api_headers: dict[str, str] = Field(default_factory=dict)
    api_params: dict[str, Any] = Field(default_factory=dict)
    #: what happens to the data read once every target committed (delete or move it)
    after_load: AfterLoadSpec | None = None
    #: change data capture: read the table's inserts, updates and deletes (column ``_op``)
    #: from PostgreSQL logical replication, through ``publication`` and ``slot``
    cdc: bool = False
    publication: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
    slot: str | None = Field(None, pattern=r"^[a-z0-9_]{1,63}$")

    @model_validator(mode="after")
    def _what_to_read(self) -> DataSource:
        if self.table and self.query:
            raise ValueError("give either table or query, not both")
        if self.incremental_value is not None and not self.incremental_column:
            raise ValueError("incremental_value needs incremental_column")
        return self


class DataTarget(_Endpoint, ApiTargetFields):
    """Where a job writes, and how (``write_mode`` append | overwrite | upsert | sync | scd2;
    ``delete_where`` for retention, ``scd2`` and ``max_delete_fraction`` for the last two).

    Example:
        >>> DataTarget(name="fact_orders", target_type=TargetType.DATABASE,
        ...            connection="warehouse", table="fact_orders",
        ...            write_mode="upsert", key_columns=["id"])
    """

    target_type: TypeName
    write_mode: WriteMode = WriteMode.APPEND
    key_columns: list[str] = Field(default_factory=list)
    create_table: bool = True
    #: Dagster's freshness policy of the target asset: ``{max_age: 24h, warn_after: 12h}``
    freshness: FreshnessSpec | None = None
    #: the step (or source: its raw rows) whose result this target writes; default: the last
    #: step (the union of the sources when there are no steps)
    input: str | None = Field(None, pattern=NAME_PATTERN)
    #: version columns and change detection of ``write_mode: scd2``
    scd2: Scd2Spec | None = None
    #: the largest share of the target's rows a ``sync`` load (or an SCD2 load closing missing
    #: keys) may delete/close; above it the load fails and the target is left as it was
    max_delete_fraction: float = Field(DEFAULT_MAX_DELETE_FRACTION, ge=0, le=1)
    #: retention: rows matching this expression are deleted in the load's transaction
    delete_where: str | None = Field(None, min_length=1)

    _as_list = field_validator("key_columns", mode="before")(_as_list)

    @model_validator(mode="after")
    def _keys_for_upsert(self) -> DataTarget:
        mode = self.write_mode
        if mode in (WriteMode.UPSERT, WriteMode.SYNC, WriteMode.SCD2) and not self.key_columns:
            raise ValueError(
                f"write_mode {mode.value} needs key_columns, e.g. key_columns: [id]"
            )
        if self.scd2 is not None and mode != WriteMode.SCD2:
            raise ValueError(
                f"scd2 settings are for write_mode scd2, not {mode.value}; remove scd2 or "
                "set write_mode: scd2"
            )
        if self.scd2 is not None:
            overlap = sorted(set(self.scd2.compare_columns or ()) & set(self.key_columns))
            if overlap:
                raise ValueError(
                    f"scd2.compare_columns {overlap} are key columns; compare non-key columns"
                )
        return self

    def scd2_settings(self) -> Scd2Spec:
        """The ``scd2`` block, or its defaults when the spec gives none."""
        return self.scd2 if self.scd2 is not None else Scd2Spec()


class SensorSpec(_Model):
    """``sensor: {new_files: true, interval_seconds: 60}``: a run per new or changed file under
    a file source's ``file_path`` (``source`` names it when the job has several)."""

    new_files: bool = True
    interval_seconds: int = Field(60, ge=1, le=86_400)
    source: str | None = None


class RetryPolicySpec(_Model):
    """Retries of a failed run step (mapped to a Dagster ``RetryPolicy``)."""

    max_retries: int = Field(0, ge=0, le=100)
    delay_seconds: float = Field(0, ge=0)
    backoff: Literal["exponential", "linear"] | None = None
    jitter: Literal["full", "plus_minus"] | None = None


class ETLJob(_Model):
    """A whole job: sources -> ordered transformations -> targets.

    ``name`` is also the Dagster job name and asset group when it is a valid identifier;
    otherwise (free text such as "PG to MySQL") :attr:`key` derives one.
    """

    name: str = Field(min_length=1)
    job_id: str | None = None
    description: str | None = None
    sources: list[DataSource] = Field(min_length=1)
    transformations: list[Transformation] = Field(default_factory=list)
    targets: list[DataTarget] = Field(min_length=1)
    schedule: str | None = None
    timezone: str | None = None
    retries: RetryPolicySpec | None = None
    parallel: bool = False
    max_workers: int = Field(4, ge=1, le=256)
    notifications: Notifications = Field(default_factory=Notifications)
    checks: list[CheckSpec] = Field(default_factory=list)
    #: row rules run on the rows in flight before any target commits (quarantine or fail)
    rules: list[RuleSpec] = Field(default_factory=list)
    #: the target that receives the rows ``action: quarantine`` rules reject
    quarantine_target: str | None = Field(None, pattern=NAME_PATTERN)
    partitions: PartitionsSpec | None = None
    trigger: TriggerSpec | None = None
    sensor: SensorSpec | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    enabled: bool = True
    #: memory_limit / temp_directory / threads of the transformation engine
    engine: EngineSettings | None = None
    #: Dagster steps and executor: one step (default) or one extraction step per source
    execution: Execution | None = None

    @property
    def key(self) -> str:
        """The Dagster-safe job name: ``name`` itself or a slug of it."""
        if _NAME_RE.match(self.name):
            return self.name
        slug = re.sub(r"[^A-Za-z0-9]+", "_", self.name).strip("_").lower()
        if not slug or not slug[0].isalpha():
            slug = f"job_{slug}"
        return slug

    def ordered_transformations(self) -> list[Transformation]:
        """Enabled transformations by ``order``, ties kept in spec order."""
        steps = [t for t in self.transformations if t.enabled]
        return sorted(steps, key=lambda t: t.order)

    @model_validator(mode="after")
    def _unique_names(self) -> ETLJob:
        seen: dict[str, str] = {}
        for kind, items in (
            ("source", self.sources),
            ("target", self.targets),
            ("transformation", self.transformations),
        ):
            for item in items:
                if item.name in seen:
                    raise ValueError(
                        f"name {item.name!r} is used by a {seen[item.name]} and a {kind}; "
                        "names must be unique within a job"
                    )
                seen[item.name] = kind
        return self


class Connection(_Model):
    """A named connection in ``connections.yaml``: a type plus its parameters."""

    type: str
    params: dict[str, Any] = Field(default_factory=dict)
    encrypted: bool = False
    description: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _flat_params(cls, data: Any) -> Any:
        # ``{type: postgresql, host: db, ...}`` is accepted as well as ``{type:, params: {...}}``.
        if isinstance(data, dict) and "params" not in data:
            known = {"type", "encrypted", "description"}
            params = {k: v for k, v in data.items() if k not in known}
            data = {k: v for k, v in data.items() if k in known} | {"params": params}
        return data
