"""Use cases of the Nexus docs that needed pandas custom code for text, hashing, masking, math
and type conversion (PII masking, text cleaning, geospatial distances, schema conversion),
written as YAML specs with the expression functions and the select step, and run end to end
from CSV files and PostgreSQL into PostgreSQL and Parquet."""

from __future__ import annotations

import hashlib
import math
import re
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from tests.integration.use_cases.helpers import execute, insert, project, rows, run

SALT = "uc87-pepper-0f3a"


def test_uc87_pii_masking_and_salted_hashing(tmp_path: Path, pg_url: str, monkeypatch) -> None:
    """Use case 87, "PII Detection and Masking": e-mail shown as a***@domain, phone as
    ***-***-1234, SSN as *****6789, a salted SHA-256 of the e-mail (salt from ${ENV}, never in
    the run's events) as a join key, originals dropped; the docs did it in custom code."""
    monkeypatch.setenv("NEXUS_UC87_SALT", SALT)
    people = [
        ("1", "Ann.Lee@Example.com", "+1 (555) 010-1234", "123-45-6789"),
        ("2", "bob@mail.example.org", "555.010.9876", "987-65-4321"),
        ("3", "", "", ""),
        ("4", "cid@x.io", "12", "1234"),
    ]
    data = tmp_path / "customers.csv"
    data.write_text("id,email,phone,ssn\n" + "".join(
        ",".join(f'"{v}"' if v else "" for v in row) + "\n" for row in people))
    folder = project(tmp_path, f"""\
        name: uc87_pii
        sources:
          - {{name: customers, source_type: file, file_path: '{data}', file_format: csv}}
        transformations:
          - name: masked
            transformation_type: map
            config:
              mappings:
                email_masked: 'substr(email, 1, 1) + "***@" + split_part(email, "@", 2)'
                phone_masked: '"***-***-" + regex_extract(phone, "([0-9]{{4}})$", 1)'
                ssn_masked: mask(regex_replace(ssn, "[^0-9]", ""), keep_last=4)
                email_key: 'sha256(lower(strip(email)), "${{NEXUS_UC87_SALT}}")'
          - {{name: no_pii, transformation_type: select, config: {{drop: [email, phone, ssn]}}}}
        targets:
          - {{name: out, target_type: database, connection: dw, table: customers_safe,
             write_mode: overwrite}}
        """, dw=pg_url)
    result = run(folder, "uc87_pii")

    def expected(email: str, phone: str, ssn: str) -> tuple:
        if not email:
            return (None, None, None, None)
        digits = re.search(r"([0-9]{4})$", phone)
        ssn_digits = re.sub(r"[^0-9]", "", ssn)
        return (
            f"{email[0]}***@{email.split('@')[1]}",
            f"***-***-{digits.group(1)}" if digits else None,
            "*" * max(len(ssn_digits) - 4, 0) + ssn_digits[-4:],
            hashlib.sha256((SALT + email.strip().lower()).encode()).hexdigest(),
        )

    got = rows(pg_url, "select * from customers_safe order by id")
    assert got == [(int(i), *expected(e, p, s)) for i, e, p, s in people]
    events = " ".join(f"{e.message} {e.event_specific_data}" for e in result.all_events)
    assert SALT not in events and "NEXUS_UC87_SALT" not in events


def test_uc64_text_cleaning_keywords_and_sentiment(tmp_path: Path, pg_url: str) -> None:
    """Use case 64, "Text Mining and NLP": lower-cased text stripped of everything but letters
    and spaces, its first word, flags for positive and negative words and a sentiment score;
    formerly str.replace + apply in custom code."""
    reviews = [
        (1, "GREAT product!!! Works as advertised, 10/10"),
        (2, "Bad packaging; terrible support :("),
        (3, None),
        (4, "  it's ok, not the best & not the worst  "),
        (5, "Löve it — excellent"),
    ]
    execute(pg_url, "create table reviews (id int, description text)")
    insert(pg_url, "reviews", reviews)
    folder = project(tmp_path, r"""
        name: uc64_text
        sources:
          - {name: reviews, source_type: database, connection: app, table: reviews}
        transformations:
          - name: clean
            transformation_type: map
            config:
              mappings:
                clean_text: 'strip(regex_replace(lower(description), r"[^a-z\s]", ""))'
                first_word: split_part(clean_text, " ", 1)
                positive: matches(clean_text, r"\b(?:good|great|excellent|love|best)\b")
                negative: matches(clean_text, r"\b(?:bad|poor|worst|hate|terrible)\b")
                sentiment: 'if_else(positive, 1, 0) - if_else(negative, 1, 0)'
        targets:
          - {name: out, target_type: database, connection: app, table: reviews_clean,
             write_mode: overwrite}
        """, app=pg_url)
    run(folder, "uc64_text")
    df = pd.DataFrame(reviews, columns=["id", "description"])
    clean = df["description"].str.lower().str.replace(r"[^a-z\s]", "", regex=True).str.strip()
    positive = clean.str.contains(r"\b(?:good|great|excellent|love|best)\b", regex=True)
    negative = clean.str.contains(r"\b(?:bad|poor|worst|hate|terrible)\b", regex=True)
    expected = [
        (i, None if pd.isna(c) else c, None if pd.isna(c) else c.split(" ")[0],
         bool(p), bool(n), int(bool(p)) - int(bool(n)))
        for i, c, p, n in zip(df["id"], clean, positive.fillna(False), negative.fillna(False),
                              strict=True)
    ]
    assert rows(pg_url, "select id, clean_text, first_word, positive, negative, sentiment "
                        "from reviews_clean order by id") == expected


def test_uc65_geospatial_distance_from_headquarters(tmp_path: Path, pg_url: str) -> None:
    """Use case 65, "Geospatial Analysis": haversine distance of each store from the New York
    headquarters and a distance category (Local/Regional/National/International) written to
    Parquet; formerly a Python function applied row by row."""
    stores = [(1, 40.7306, -73.9352), (2, 39.9526, -75.1652), (3, 41.8781, -87.6298),
              (4, 51.5072, -0.1276), (5, None, None), (6, 40.7128, -74.0060)]
    execute(pg_url, "create table stores (id int, latitude double precision, "
            "longitude double precision)")
    insert(pg_url, "stores", stores)
    out = tmp_path / "stores.parquet"
    folder = project(tmp_path, f"""\
        name: uc65_geo
        sources:
          - {{name: stores, source_type: database, connection: app, table: stores}}
        transformations:
          - name: distance
            transformation_type: map
            config:
              mappings:
                a: >-
                  pow(sin(radians(latitude - 40.7128) / 2), 2) + cos(radians(40.7128))
                  * cos(radians(latitude)) * pow(sin(radians(longitude + 74.0060) / 2), 2)
                distance_from_hq: 2 * 6371 * asin(sqrt(a))
                distance_category: >-
                  case(distance_from_hq < 50, "Local", distance_from_hq < 200, "Regional",
                       distance_from_hq < 500, "National", isnull(distance_from_hq), None,
                       "International")
          - {{name: tidy, transformation_type: select, config: {{drop: [a]}}}}
        targets:
          - {{name: out, target_type: file, file_path: '{out}', file_format: parquet,
             write_mode: overwrite}}
        """, app=pg_url)
    run(folder, "uc65_geo")

    def haversine(lat: float, lon: float) -> float:
        lon1, lat1, lon2, lat2 = map(math.radians, [-74.0060, 40.7128, lon, lat])
        a = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin(
            (lon2 - lon1) / 2) ** 2
        return 2 * 6371 * math.asin(math.sqrt(a))

    got = pq.read_table(out).to_pandas()
    assert got.columns.tolist() == ["id", "latitude", "longitude", "distance_from_hq",
                                    "distance_category"]
    distances = [None if a is None else haversine(a, b) for _, a, b in stores]
    assert got["distance_from_hq"].isna().tolist() == [d is None for d in distances]
    assert got["distance_from_hq"].dropna().tolist() == pytest.approx(
        [d for d in distances if d is not None], rel=1e-12)
    labels = pd.cut(pd.Series(distances, dtype=float), bins=[-1, 50, 200, 500, 1e9],
                    labels=["Local", "Regional", "National", "International"], right=False)
    assert [None if pd.isna(v) else v for v in got["distance_category"]] == [
        None if pd.isna(v) else v for v in labels]


def test_uc89_schema_conversion_with_select(tmp_path: Path, pg_url: str) -> None:
    """Use case 89, "Schema Validation": a CSV read as text converted to the expected schema
    (customer_id int, age int, created_at timestamp, balance decimal(12,2), active bool),
    renamed and reordered in one select step; formerly astype() in custom code."""
    data = tmp_path / "customers.csv"
    data.write_text("cust,age_years,created,balance,active,junk\n"
                    "7,34,2024-03-31 02:30:00,1234.5,true,x\n"
                    "8,,2024-01-01 00:00:00,-0.01,false,y\n"
                    "9,51,,0,,z\n")
    folder = project(tmp_path, f"""\
        name: uc89_schema
        sources:
          - {{name: raw, source_type: file, file_path: '{data}', file_format: csv,
             options: {{column_types: {{cust: string, age_years: string, created: string,
                                        balance: string, active: string, junk: string}}}}}}
        transformations:
          - name: typed
            transformation_type: select
            config:
              columns: [cust, created, age_years, balance, active]
              rename: {{cust: customer_id, created: created_at, age_years: age}}
              cast: {{cust: int, age_years: int, created: timestamp, balance: "decimal(12,2)",
                      active: bool}}
        targets:
          - {{name: out, target_type: database, connection: dw, table: customers_typed,
             write_mode: overwrite}}
        """, dw=pg_url)
    run(folder, "uc89_schema")
    assert rows(pg_url, "select column_name, data_type from information_schema.columns "
                        "where table_name = 'customers_typed' order by ordinal_position") == [
        ("customer_id", "bigint"), ("created_at", "timestamp without time zone"),
        ("age", "bigint"), ("balance", "numeric"), ("active", "boolean"),
    ]
    assert rows(pg_url, "select * from customers_typed order by customer_id") == [
        (7, pd.Timestamp("2024-03-31 02:30:00").to_pydatetime(), 34, Decimal("1234.50"), True),
        (8, pd.Timestamp("2024-01-01").to_pydatetime(), None, Decimal("-0.01"), False),
        (9, None, 51, Decimal("0.00"), None),
    ]
