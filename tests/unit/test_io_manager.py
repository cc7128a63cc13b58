"""NexusIOManager without any server: a connector registered at run time stores and loads
hand-written assets, a RecordBatchReader is streamed batch by batch, and the connector type of
a connection is inferred (registry name, else ``database`` for SQL dialects)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any, ClassVar

import dagster as dg
import pandas as pd
import pyarrow as pa
import pytest

from nexus_dagster import NexusIOManager
from nexus_dagster.connectors.base import (
    Connector,
    LoadResult,
    ReadRequest,
    WriteRequest,
)
from nexus_dagster.connectors.registry import register_connector, unregister_connector
from nexus_dagster.errors import SpecError
from nexus_dagster.relation import Relation
from nexus_dagster.spec.connections import default_connector_type


class MemoryConnector(Connector):
    """Tables kept in a class-level dict; records when each batch was written."""

    is_target: ClassVar[bool] = True
    write_modes: ClassVar[frozenset[str]] = frozenset({"append", "overwrite"})
    source_requires: ClassVar[tuple[tuple[str, ...], ...]] = (("table",),)
    target_requires: ClassVar[tuple[tuple[str, ...], ...]] = (("table",),)
    tables: ClassVar[dict[str, pa.Table]] = {}
    events: ClassVar[list[str]] = []
    requests: ClassVar[list[WriteRequest]] = []

    def describe(self) -> str:
        return f"memory {self.params.get('space')}"

    def write(self, relation: Relation, request: WriteRequest) -> LoadResult:
        self.requests.append(request)
        batches = []
        for batch in relation:
            self.events.append(f"written {batch.num_rows}")
            batches.append(batch)
        table = pa.Table.from_batches(batches, schema=relation.schema)
        if request.write_mode == "append" and request.table in self.tables:
            table = pa.concat_tables([self.tables[request.table], table])
        self.tables[str(request.table)] = table
        return LoadResult(table.num_rows, f"memory {request.table}", rows_inserted=len(table))

    def read(self, request: ReadRequest) -> Relation:
        return Relation.from_table(self.tables[str(request.table)], name=str(request.table))


@pytest.fixture
def memory() -> Iterator[type[MemoryConnector]]:
    register_connector("memory_table", MemoryConnector)
    MemoryConnector.tables.clear()
    MemoryConnector.events.clear()
    MemoryConnector.requests.clear()
    yield MemoryConnector
    unregister_connector("memory_table")


def io_manager() -> NexusIOManager:
    return NexusIOManager(connection_params={"type": "memory_table", "space": "s1"})


def error_text(exc: BaseException) -> str:
    """Every message of an exception chain (Dagster wraps the IO manager's error)."""
    parts: list[str] = []
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        parts.append(str(exc))
        exc = exc.__cause__ or exc.__context__
    return " | ".join(parts)


def test_a_registered_connector_stores_and_loads_assets(memory):
    seen: dict[str, Any] = {}

    @dg.asset(metadata={"nexus/table": "people"})
    def people() -> pd.DataFrame:
        return pd.DataFrame({"id": [1, 2], "name": ["Ann", "Bob"]})

    @dg.asset
    def as_frame(people) -> None:
        seen["frame"] = people

    @dg.asset
    def as_arrow(people: pa.Table) -> None:
        seen["arrow"] = people

    @dg.asset
    def as_reader(people: pa.RecordBatchReader) -> None:
        seen["reader"] = people.read_all()

    result = dg.materialize([people, as_frame, as_arrow, as_reader],
                            resources={"io_manager": io_manager()})
    assert result.success
    assert memory.tables["people"].to_pylist() == [{"id": 1, "name": "Ann"},
                                                   {"id": 2, "name": "Bob"}]
    assert isinstance(seen["frame"], pd.DataFrame)
    assert seen["frame"]["name"].tolist() == ["Ann", "Bob"]
    assert isinstance(seen["arrow"], pa.Table) and seen["arrow"].num_rows == 2
    assert seen["reader"].column("id").to_pylist() == [1, 2]
    request = memory.requests[0]
    assert (request.table, request.write_mode, request.replace_range) == ("people", "overwrite",
                                                                          None)
    (event,) = [e for e in result.get_asset_materialization_events()
                if e.materialization.asset_key == dg.AssetKey("people")]
    metadata = event.materialization.metadata
    assert metadata["dagster/row_count"].value == 2
    assert [c.name for c in metadata["dagster/column_schema"].value.columns] == ["id", "name"]
    assert metadata["dagster/table_name"].value == "people"
    assert metadata["nexus/write_mode"].value == "overwrite"


def test_op_outputs_are_stored_where_their_out_metadata_says(memory):
    seen: dict[str, Any] = {}

    @dg.op(out=dg.Out(metadata={"nexus/table": "op_rows"}))
    def make_rows() -> pa.Table:
        return pa.table({"id": [1, 2]})

    @dg.op
    def use_rows(rows: pa.Table) -> None:
        seen["rows"] = rows

    @dg.op
    def unnamed() -> pa.Table:
        return pa.table({"id": [1]})

    @dg.job(resource_defs={"io_manager": io_manager()})
    def rows_job():
        use_rows(make_rows())

    @dg.job(resource_defs={"io_manager": io_manager()})
    def unnamed_job():
        unnamed()

    assert rows_job.execute_in_process().success
    assert memory.tables["op_rows"].num_rows == 2 and seen["rows"].num_rows == 2
    with pytest.raises(Exception) as caught:
        unnamed_job.execute_in_process()
    assert "is no asset output, so it has no default name; give its Out metadata nexus/table" in (
        error_text(caught.value))


def test_an_upsert_without_key_columns_names_the_metadata_key(memory):
    @dg.asset(metadata={"nexus/write_mode": "upsert"})
    def people() -> pd.DataFrame:
        return pd.DataFrame({"id": [1]})

    class UpsertingMemory(MemoryConnector):
        write_modes: ClassVar[frozenset[str]] = frozenset({"upsert"})

    register_connector("memory_table", UpsertingMemory)
    with pytest.raises(Exception) as caught:
        dg.materialize([people], resources={"io_manager": io_manager()})
    assert "nexus/write_mode upsert needs nexus/key_columns" in error_text(caught.value)
    assert memory.requests == []


def test_a_record_batch_reader_is_streamed_batch_by_batch(memory):
    def produce() -> Iterator[pa.RecordBatch]:
        for index in range(3):
            memory.events.append(f"produced {index}")
            yield pa.record_batch({"id": [index, index + 10]})

    @dg.asset(metadata={"nexus/write_mode": "append"})
    def numbers() -> pa.RecordBatchReader:
        return pa.RecordBatchReader.from_batches(pa.schema({"id": pa.int64()}), produce())

    assert dg.materialize([numbers], resources={"io_manager": io_manager()}).success
    assert memory.events == ["produced 0", "written 2", "produced 1", "written 2",
                             "produced 2", "written 2"]
    assert memory.tables["numbers"].num_rows == 6


def test_none_writes_nothing_and_other_types_are_a_clear_error(memory):
    @dg.asset
    def nothing() -> Any:
        return None

    @dg.asset
    def words() -> Any:
        return ["a", "b"]

    assert dg.materialize([nothing], resources={"io_manager": io_manager()}).success
    assert memory.requests == []
    with pytest.raises(Exception) as caught:
        dg.materialize([words], resources={"io_manager": io_manager()})
    text = error_text(caught.value)
    assert "asset words returned a builtins.list" in text
    assert "pandas DataFrame, a pyarrow Table, a pyarrow RecordBatchReader" in text


def test_a_partitioned_asset_needs_a_range_replacing_connector(memory):
    daily = dg.DailyPartitionsDefinition(start_date="2024-01-01")

    @dg.asset(partitions_def=daily, metadata={"nexus/partition_column": "day"})
    def days() -> pd.DataFrame:
        return pd.DataFrame({"day": pd.to_datetime(["2024-01-01"])})

    with pytest.raises(Exception) as caught:
        dg.materialize([days], partition_key="2024-01-01", resources={"io_manager": io_manager()})
    assert "memory_table (NexusIOManager.connection_params) cannot replace a partition" in (
        error_text(caught.value))
    assert memory.requests == []


def test_an_unsupported_input_annotation_names_the_accepted_ones(memory):
    @dg.asset
    def people() -> pd.DataFrame:
        return pd.DataFrame({"id": [1]})

    @dg.asset
    def as_dict(people: dict) -> None:
        return None

    with pytest.raises(Exception) as caught:
        dg.materialize([people, as_dict], resources={"io_manager": io_manager()})
    assert "is annotated dict; NexusIOManager loads pandas.DataFrame" in error_text(caught.value)


def test_the_io_manager_needs_exactly_one_connection(memory):
    @dg.asset
    def people() -> pd.DataFrame:
        return pd.DataFrame({"id": [1]})

    for manager in (NexusIOManager(), NexusIOManager(connection="a", connection_params={"x": 1})):
        with pytest.raises(Exception) as caught:
            dg.materialize([people], resources={"io_manager": manager})
        assert "needs exactly one of connection" in error_text(caught.value)


def test_the_connector_type_is_inferred_from_the_connection_type(memory):
    assert default_connector_type("memory_table") == "memory_table"
    assert default_connector_type("s3") == "s3"
    assert default_connector_type("file") == "file"
    for dialect in ("postgresql", "postgres", "mariadb", "mysql", "sqlite",
                    "postgresql+psycopg2"):
        assert default_connector_type(dialect) == "database"
    with pytest.raises(SpecError, match=r"connection of type 'nosuch'.*connector_type"):
        default_connector_type("nosuch")
    with pytest.raises(SpecError, match="resolved only at run time"):
        default_connector_type("${DB_TYPE}")


def test_importing_the_package_does_not_import_dagster():
    code = ("import sys, nexus_dagster; assert 'dagster' not in sys.modules; "
            "from nexus_dagster import NexusIOManager; assert 'dagster' in sys.modules; "
            "print(NexusIOManager.__name__)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "NexusIOManager"
