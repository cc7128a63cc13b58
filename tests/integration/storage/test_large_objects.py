"""Large objects stream: a multi-hundred-MB CSV on S3 goes through a whole job in bounded memory.

The object is generated on the fly and uploaded as a multipart stream (never held whole in
memory). The jobs run in a child process (``stream_probe.py``) that reports the growth of its
peak RSS during each run and the size of every ranged GET s3fs made.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from tests.support import cleanup, make_store

MiB = 2**20
OBJECT_SIZE = 300 * MiB
#: the limit on the run's peak RSS growth, far below the object size
MEMORY_LIMIT = 150 * MiB
BLOCK_SIZE = 8 * MiB


def upload_csv(fs, path: str, size: int) -> int:
    """Stream a generated CSV of about ``size`` bytes to ``path``; return its row count."""
    rows = 0
    with fs.open(path, "wb", block_size=16 * MiB) as out:
        out.write(b"id,customer,ts,amount,note\n")
        written = 0
        while written < size:
            chunk = b"".join(
                b"%d,customer_%d,2024-01-01 10:00:00,%d.45,padding text for width\n"
                % (i, i % 9973, i % 1000)
                for i in range(rows, rows + 50_000)
            )
            out.write(chunk)
            written += len(chunk)
            rows += 50_000
    return rows


def endpoint(role: str, kind: str, path: str, params: dict | None = None, **extra) -> dict:
    spec = {"name": "data", f"{role}_type": kind, "file_path": path, **extra}
    if params:
        spec["connection_params"] = params
    return spec


def job(name: str, source: dict, target: dict) -> dict:
    return {"name": name, "sources": [source], "targets": [{**target, "name": "out"}]}


@pytest.mark.s3
def test_large_s3_csv_streams_through_a_job_in_bounded_memory(tmp_path: Path):
    store = make_store("s3")
    try:
        params = {**store.params, "block_size": BLOCK_SIZE}
        conn = store.connector()
        fs = conn.filesystem()
        rows = upload_csv(fs, conn.resolve("big/orders.csv"), OBJECT_SIZE)
        size = fs.size(conn.resolve("big/orders.csv"))
        upload_csv(fs, conn.resolve("small/orders.csv"), 16 * MiB)

        local_csv_out = tmp_path / "orders_from_csv.parquet"
        local_pq_out = tmp_path / "orders_from_parquet.parquet"
        jobs = [
            # the same path on a small object first: Dagster's and pyarrow's one-off setup
            # (imports, thread pools, allocator arenas) is not data memory
            job("warm_up", endpoint("source", "s3", "small/orders.csv", params),
                endpoint("target", "file", str(tmp_path / "warm.parquet"),
                         write_mode="overwrite")),
            # S3 CSV -> local Parquet: ranged GETs, CSV parsed block by block
            job("csv_to_local", endpoint("source", "s3", "big/orders.csv", params),
                endpoint("target", "file", str(local_csv_out), write_mode="overwrite")),
            # local Parquet -> S3 Parquet: multipart upload, row group by row group
            job("parquet_to_s3", endpoint("source", "file", str(local_csv_out)),
                endpoint("target", "s3", "big/orders.parquet", params,
                         write_mode="overwrite")),
            # S3 Parquet -> local Parquet: row groups through ranged GETs
            job("parquet_to_local", endpoint("source", "s3", "big/orders.parquet", params),
                endpoint("target", "file", str(local_pq_out), write_mode="overwrite")),
        ]
        folder = tmp_path / "job_specs"
        folder.mkdir()
        for spec in jobs:
            (folder / f"{spec['name']}.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))

        probe = Path(__file__).with_name("stream_probe.py")
        done = subprocess.run(
            [sys.executable, str(probe), str(folder), "warm_up", "csv_to_local",
             "parquet_to_s3", "parquet_to_local"],
            capture_output=True, text=True, timeout=600, env={**os.environ},
        )
        assert done.returncode == 0, done.stderr[-3000:]
        report = json.loads(done.stdout.strip().splitlines()[-1])
        print(json.dumps({"object_bytes": size, "rows": rows,
                          "parquet_bytes": fs.size(conn.resolve("big/orders.parquet")),
                          **report}, indent=1))
        for name, measured in report.items():
            assert measured["success"], (name, measured["errors"])

        csv_run = report["csv_to_local"]
        assert pq.ParquetFile(local_csv_out).metadata.num_rows == rows
        assert csv_run["peak_growth"] < MEMORY_LIMIT < size, csv_run
        # the object came in many bounded ranged GETs (block + one parser block each), once
        assert csv_run["ranged_gets"] >= size // (32 * MiB), csv_run
        assert csv_run["largest_get"] <= 32 * MiB, csv_run
        assert size <= csv_run["bytes_fetched"] < 1.2 * size, csv_run

        assert report["parquet_to_s3"]["peak_growth"] < MEMORY_LIMIT

        parquet_size = fs.size(conn.resolve("big/orders.parquet"))
        remote = pq.ParquetFile(fs.open(conn.resolve("big/orders.parquet"), "rb"))
        assert remote.metadata.num_rows == rows and remote.metadata.num_row_groups > 10
        pq_run = report["parquet_to_local"]
        assert pq.ParquetFile(local_pq_out).metadata.num_rows == rows
        assert pq_run["peak_growth"] < MEMORY_LIMIT, pq_run
        # footer, then the row groups through block-sized GETs, none near the whole object
        assert pq_run["ranged_gets"] >= parquet_size // (16 * MiB), (pq_run, parquet_size)
        assert pq_run["largest_get"] <= min(16 * MiB, parquet_size // 3), (pq_run, parquet_size)
        assert pq_run["bytes_fetched"] < 1.2 * parquet_size, (pq_run, parquet_size)
    finally:
        cleanup(store)
