"""Hand-written assets stored through NexusIOManager into PostgreSQL, MariaDB, SQLite, a local
Parquet file and S3, and read back downstream as a DataFrame and as an Arrow table; upserts,
materialization metadata, failed writes and secrets."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import dagster as dg
import pandas as pd
import pyarrow as pa

from tests.integration.io_manager.helpers import Backend, failure_text, metadata_of

ROWS = [{"id": 1, "name": "Ann", "amount": 1.5},
        {"id": 2, "name": "Bob", "amount": 2.25},
        {"id": 3, "name": "Cy", "amount": 3.0}]
SCHEMA = pa.schema({"id": pa.int64(), "name": pa.string(), "amount": pa.float64()})


def rows_of(data: pa.Table | pd.DataFrame) -> list[dict[str, Any]]:
    """Rows sorted by id, as plain Python values."""
    table = pa.Table.from_pandas(data, preserve_index=False) if isinstance(
        data, pd.DataFrame) else data
    return sorted(({k: (float(v) if k == "amount" else v) for k, v in row.items()}
                   for row in table.to_pylist()), key=lambda row: row["id"])


def reader(rows: list[dict[str, Any]], fail_after: int | None = None) -> pa.RecordBatchReader:
    """A one-pass reader over ``rows``, one batch per row; raises after ``fail_after`` batches."""

    def batches() -> Iterator[pa.RecordBatch]:
        for index, row in enumerate(rows):
            if fail_after is not None and index == fail_after:
                raise RuntimeError("the source broke off mid-stream")
            yield pa.RecordBatch.from_pylist([row], schema=SCHEMA)

    return pa.RecordBatchReader.from_batches(SCHEMA, batches())


def test_outputs_are_stored_and_loaded_downstream(backend: Backend):
    seen: dict[str, Any] = {}

    @dg.asset
    def frame_rows() -> pd.DataFrame:
        return pd.DataFrame(ROWS)

    @dg.asset
    def arrow_rows() -> pa.Table:
        return pa.Table.from_pylist(ROWS, schema=SCHEMA)

    @dg.asset
    def reader_rows() -> pa.RecordBatchReader:
        return reader(ROWS)

    @dg.asset
    def as_frames(frame_rows: pd.DataFrame, arrow_rows, reader_rows: pd.DataFrame) -> None:
        seen["frames"] = [frame_rows, arrow_rows, reader_rows]

    @dg.asset
    def as_tables(frame_rows: pa.Table, arrow_rows: pa.Table, reader_rows: pa.Table) -> None:
        seen["tables"] = [frame_rows, arrow_rows, reader_rows]

    result = dg.materialize([frame_rows, arrow_rows, reader_rows, as_frames, as_tables],
                            resources={"io_manager": backend.io_manager()})
    assert result.success, failure_text(result)
    assert all(isinstance(frame, pd.DataFrame) for frame in seen["frames"])
    assert all(isinstance(table, pa.Table) for table in seen["tables"])
    for data in [*seen["frames"], *seen["tables"]]:
        assert rows_of(data) == ROWS
    for name in ("frame_rows", "arrow_rows", "reader_rows"):
        assert rows_of(backend.read(name)) == ROWS
        metadata = metadata_of(result, name)
        assert metadata["dagster/row_count"] == 3
        assert [c.name for c in metadata["dagster/column_schema"].columns] == [
            "id", "name", "amount"]
        assert metadata["dagster/table_name"] == backend.table_name(name)
        assert metadata["nexus/write_mode"] == "overwrite"
        if backend.stores_files:
            assert metadata["dagster/uri"] == backend.table_name(name)


def test_upsert_with_key_columns(database: Backend):
    batches = [ROWS[:2], [{**ROWS[1], "amount": 20.0}, ROWS[2]]]

    @dg.asset(metadata={"nexus/table": "customers", "nexus/write_mode": "upsert",
                        "nexus/key_columns": ["id"]})
    def customer_changes() -> pd.DataFrame:
        return pd.DataFrame(batches.pop(0))

    manager = database.io_manager()
    assert dg.materialize([customer_changes], resources={"io_manager": manager}).success
    result = dg.materialize([customer_changes], resources={"io_manager": manager})
    assert result.success, failure_text(result)
    assert rows_of(database.read("customers")) == [ROWS[0], {**ROWS[1], "amount": 20.0}, ROWS[2]]
    metadata = metadata_of(result, "customer_changes")
    assert metadata["nexus/write_mode"] == "upsert"
    assert (metadata["nexus/rows_inserted"], metadata["nexus/rows_updated"]) == (1, 1)
    assert metadata["dagster/table_name"] == database.table_name("customers")


def test_a_failing_write_leaves_the_target_as_it_was(backend: Backend):
    runs = [lambda: reader(ROWS), lambda: reader([{**r, "amount": 0.0} for r in ROWS], 2)]

    @dg.asset
    def payments() -> pa.RecordBatchReader:
        return runs.pop(0)()

    manager = backend.io_manager()
    assert dg.materialize([payments], resources={"io_manager": manager}).success
    result = dg.materialize([payments], resources={"io_manager": manager},
                            raise_on_error=False)
    assert not result.success
    assert "the source broke off mid-stream" in failure_text(result)
    assert rows_of(backend.read("payments")) == ROWS
    if backend.stores_files:  # no temporary object left behind
        assert backend.files() == ["payments.parquet"]


def test_secrets_stay_out_of_logs_metadata_and_errors(server_database: Backend, monkeypatch):
    database = server_database

    @dg.asset
    def accounts() -> pd.DataFrame:
        return pd.DataFrame(ROWS)

    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize([accounts], resources={"io_manager": database.io_manager()},
                            instance=instance)
    assert result.success, failure_text(result)
    shown = "\n".join(str(record) for record in instance.get_records_for_run(
        result.run_id).records)
    assert "accounts" in shown and database.secret not in shown

    monkeypatch.setenv("NEXUS_IO_TEST_DB_PASSWORD", "wrong-Secret-4711")
    failed = dg.materialize([accounts], resources={"io_manager": database.io_manager()},
                            instance=instance, raise_on_error=False)
    assert not failed.success
    shown = failure_text(failed) + "\n".join(
        str(record) for record in instance.get_records_for_run(failed.run_id).records)
    assert "wrong-Secret-4711" not in shown and "failed" in shown
