"""Use cases of the Nexus docs that needed pandas custom code for dates and times (time-based
features, lineage timestamps, change-data-capture flags), written as YAML specs with the date
expression functions and run end to end from PostgreSQL into PostgreSQL."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd

from tests.integration.use_cases.helpers import execute, insert, project, rows, run

EVENTS = [
    (1, "2024-03-30 23:30:00+00", "2023-02-28"),  # Saturday; signup on Feb 28
    (2, "2024-03-31 01:15:00+00", "2024-02-29"),  # Sunday, the night Europe moves clocks
    (3, "2024-12-30 08:00:00+00", "2024-01-31"),  # Monday of ISO week 1 of 2025
    (4, "2025-01-01 00:00:00+00", "2020-12-31"),
    (5, "2024-07-04 12:45:59+00", "2024-07-04"),
]


def test_uc70_time_based_feature_extraction(tmp_path: Path, pg_url: str) -> None:
    """Use case 70, "Time-based feature extraction": day of week, weekend flag, hour, ISO week,
    quarter, month bucket, tenure in days and whole years, next renewal date and a year-month
    label from a timestamptz and a date column; formerly pandas .dt code."""
    execute(pg_url, "create table events (id int, ts timestamptz, signup date)")
    insert(pg_url, "events", EVENTS)
    folder = project(tmp_path, """\
        name: uc70_time_features
        sources:
          - {name: events, source_type: database, connection: app, table: events}
        transformations:
          - name: features
            transformation_type: map
            config:
              mappings:
                dow: day_of_week(ts)
                is_weekend: day_of_week(ts) >= 5
                hour_of_day: hour(ts)
                iso_week: week(ts)
                qtr: quarter(ts)
                doy: day_of_year(signup)
                signup_month: date_trunc("month", signup)
                tenure_days: date_diff("day", signup, ts)
                tenure_years: date_diff("year", signup, ts)
                renewal: date_add(signup, 1, "year")
                ym: strftime(ts, "%Y-%m")
        targets:
          - {name: out, target_type: database, connection: app, table: event_features,
             write_mode: overwrite}
        """, app=pg_url)
    run(folder, "uc70_time_features")

    expected = []
    for i, t, s in EVENTS:
        ts = pd.Timestamp(t)  # UTC, as PostgreSQL timestamptz arrives
        signup = pd.Timestamp(s)
        tenure = (ts.tz_localize(None) - signup)
        years = ts.year - signup.year - ((ts.month, ts.day) < (signup.month, signup.day))
        expected.append((
            i, ts.day_of_week, ts.day_of_week >= 5, ts.hour, ts.isocalendar()[1], ts.quarter,
            signup.day_of_year, signup.replace(day=1).date(), tenure.days, years,
            (signup + pd.DateOffset(years=1)).date(), ts.strftime("%Y-%m"),
        ))
    assert rows(pg_url, "select id, dow, is_weekend, hour_of_day, iso_week, qtr, doy, "
                        "signup_month, tenure_days, tenure_years, renewal, ym "
                        "from event_features order by id") == expected


def test_uc88_lineage_columns_with_the_load_time(tmp_path: Path, pg_url: str) -> None:
    """Use case 88, "Data Lineage Tracking": _source_system, _extracted_at (the run's time,
    one value for every row), _load_date and _data_version added to each row; the docs used
    pd.Timestamp.now() in custom code."""
    execute(pg_url, "create table crm (id int, name text)",
            "insert into crm values (1, 'Ann'), (2, 'Bob'), (3, null)")
    folder = project(tmp_path, """\
        name: uc88_lineage
        sources:
          - {name: crm, source_type: database, connection: crm_db, table: crm}
        transformations:
          - name: lineage
            transformation_type: map
            config:
              mappings:
                _source_system: '"CRM_DB"'
                _extracted_at: now()
                _load_date: today()
                _data_version: "1"
        targets:
          - {name: out, target_type: database, connection: crm_db, table: crm_copy,
             write_mode: overwrite}
        """, crm_db=pg_url)
    before = dt.datetime.now(dt.UTC)
    run(folder, "uc88_lineage")
    after = dt.datetime.now(dt.UTC)
    got = rows(pg_url, "select id, name, _source_system, _extracted_at, _load_date, "
                       "_data_version from crm_copy order by id")
    assert [r[:3] for r in got] == [(1, "Ann", "CRM_DB"), (2, "Bob", "CRM_DB"), (3, None, "CRM_DB")]
    stamps = {r[3] for r in got}
    assert len(stamps) == 1 and before <= stamps.pop() <= after
    assert {r[4] for r in got} <= {before.date(), after.date()}
    assert {r[5] for r in got} == {1}


def test_uc78_change_data_capture_flags(tmp_path: Path, pg_url: str) -> None:
    """Use case 78, "CDC (Change Data Capture) Simulation": rows changed since the last run
    marked INSERT when created_at == updated_at, else UPDATE, with the hours since the change
    and the change day; formerly filtered and labelled in custom code."""
    changes = [
        (1, "2024-01-01 10:00", "2024-01-01 10:00"), (2, "2023-12-01 09:00", "2024-01-02 11:30"),
        (3, "2023-11-01 00:00", "2023-12-31 23:59"), (4, "2024-01-03 00:00", "2024-01-03 00:00"),
    ]
    execute(pg_url, "create table customers (id int, created_at timestamp, updated_at timestamp)")
    insert(pg_url, "customers", changes)
    folder = project(tmp_path, """\
        name: uc78_cdc
        sources:
          - {name: customers, source_type: database, connection: app, table: customers}
        transformations:
          - {name: since_last_run, transformation_type: filter,
             config: {condition: 'updated_at > to_datetime("2024-01-01 00:00:00")'}}
          - name: operation
            transformation_type: map
            config:
              mappings:
                operation: if_else(created_at == updated_at, "INSERT", "UPDATE")
                change_day: date_trunc("day", updated_at)
                age_hours: date_diff("hour", created_at, updated_at)
        targets:
          - {name: out, target_type: database, connection: app, table: customer_changes,
             write_mode: overwrite}
        """, app=pg_url)
    run(folder, "uc78_cdc")
    expected = []
    for i, c, u in changes:
        created, updated = pd.Timestamp(c), pd.Timestamp(u)
        if updated > pd.Timestamp("2024-01-01"):
            expected.append((i, "INSERT" if created == updated else "UPDATE",
                             updated.floor("D").to_pydatetime(),
                             int((updated - created) // pd.Timedelta(hours=1))))
    assert rows(pg_url, "select id, operation, change_day, age_hours from customer_changes "
                        "order by id") == expected
