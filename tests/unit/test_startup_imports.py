"""Start-up: loading the code location imports only what the project's specs use.

`dagster job execute`, `dg launch` and every code server import ``nexus_dagster.definitions``
before a run starts; modules only some specs need are imported when a spec (or a run) uses
them. Each test loads the code location in a fresh interpreter.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

#: modules the demo project (CSV -> SQLite + Parquet, SQLite -> CSV, steps) never needs to load
NOT_FOR_THE_DEMO = (
    "pandas",  # custom_code steps and the pandas IO manager
    "duckdb",  # blocking steps, at run time
    "jsonschema",  # `nexus schema`
    "psycopg2",  # PostgreSQL connections and change data capture
    "nexus_dagster.connectors.sql.change_capture",  # cdc: true sources
    "nexus_dagster.connectors.sql.pgoutput",
    "nexus_dagster.connectors.http.auth",  # api_auth / api_pagination of REST API endpoints
    "nexus_dagster.connectors.http.pagination",
    "nexus_dagster.connectors.rest_api",
    "nexus_dagster.connectors.kafka",  # connectors the demo's specs do not name
    "nexus_dagster.connectors.remote",
    "urllib.request",  # webhook notifications, when one is sent
)


def loaded_modules(specs: Path, names: tuple[str, ...]) -> dict[str, bool]:
    """Which of ``names`` a fresh interpreter has imported after loading the code location of
    ``specs`` (it also checks that the definitions hold the project's jobs)."""
    code = (
        "import json, sys\n"
        "import nexus_dagster.definitions as d\n"
        "jobs = sorted(j.name for j in d.defs.resolve_all_job_defs())\n"
        f"loaded = {{n: n in sys.modules for n in {names!r}}}\n"
        "print(json.dumps({'jobs': jobs, 'loaded': loaded}))"
    )
    env = {**os.environ, "NEXUS_JOB_SPECS": str(specs)}
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, check=True,
                         capture_output=True, text=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    assert {"demo_orders", "category_totals"} <= set(result["jobs"])
    return result["loaded"]


def test_loading_the_demo_code_location_skips_what_its_specs_do_not_use():
    loaded = loaded_modules(REPO / "job_specs", NOT_FOR_THE_DEMO)
    assert [name for name, yes in loaded.items() if yes] == []
