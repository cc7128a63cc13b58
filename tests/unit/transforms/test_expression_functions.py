"""The expression functions (date, text, regex, hash, mask, choice and math), each compared with
pandas/Python on awkward data: nulls, empty strings, unicode, time zones across DST changes."""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import re

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from dateutil.relativedelta import relativedelta

from nexus_dagster.errors import ExpressionError
from nexus_dagster.secrets import mask as mask_secrets
from nexus_dagster.spec.loader import collect
from nexus_dagster.transforms.expressions import validate_expression

from .helpers import run, step

BERLIN = "Europe/Berlin"


def _berlin(*stamps: str | None) -> pa.Array:
    values = [None if s is None else pd.Timestamp(s).tz_convert(BERLIN) for s in stamps]
    return pa.array(values, pa.timestamp("us", tz=BERLIN))


@pytest.fixture
def events() -> pa.Table:
    """Zoned timestamps around both 2024 DST changes in Berlin, naive ones, dates, nulls."""
    return pa.table(
        {
            "ts": _berlin(
                "2024-03-30 23:30+01:00", "2024-03-31 01:59+01:00", "2024-03-31 03:00+02:00",
                "2024-10-27 02:30+01:00", "2024-12-31 23:59+01:00", None,
            ),
            "start": _berlin(
                "2024-03-30 12:00+01:00", "2024-01-31 10:00+01:00", "2023-03-31 03:00+02:00",
                "2024-10-26 02:30+02:00", "2024-12-31 00:00+01:00", "2024-01-01 00:00+01:00",
            ),
            "naive": pa.array(
                [dt.datetime(2024, 1, 1, 0, 0), dt.datetime(2024, 2, 29, 12, 0),
                 dt.datetime(2024, 12, 30, 6, 0), None, dt.datetime(2021, 1, 3, 9, 0),
                 dt.datetime(2024, 7, 4, 23, 59, 59)],
                pa.timestamp("us"),
            ),
            "d": pa.array(
                [dt.date(2024, 1, 31), dt.date(2024, 2, 29), None, dt.date(2023, 12, 31),
                 dt.date(2024, 3, 31), dt.date(2021, 1, 3)],
                pa.date32(),
            ),
        }
    )


def _map(table: pa.Table, **mappings: str) -> pd.DataFrame:
    out = run(table, step("m", "map", mappings=mappings))
    return out.select(list(mappings)).to_pandas()


def _same(actual: pd.Series, expected: pd.Series) -> None:
    assert [None if pd.isna(v) else v for v in actual] == [
        None if pd.isna(v) else v for v in expected
    ]


# ----------------------------------------------------------------------------- dates
def test_date_parts_of_a_zoned_timestamp_are_local_like_pandas(events: pa.Table) -> None:
    got = _map(
        events,
        dow="day_of_week(ts)", doy="day_of_year(ts)", wk="week(ts)", q="quarter(ts)",
        y="year(ts)", h="hour(ts)", dd="day(ts)",
    )
    s = events.column("ts").to_pandas()
    _same(got["dow"], s.dt.day_of_week)
    _same(got["doy"], s.dt.day_of_year)
    _same(got["wk"], s.dt.isocalendar().week)
    _same(got["q"], s.dt.quarter)
    _same(got["y"], s.dt.year)
    _same(got["h"], s.dt.hour)
    _same(got["dd"], s.dt.day)


def test_date_parts_of_naive_timestamps_and_dates_match_pandas(events: pa.Table) -> None:
    got = _map(events, dow="day_of_week(naive)", wk="week(naive)", ddow="day_of_week(d)",
               dq="quarter(d)", ddoy="day_of_year(d)")
    naive = events.column("naive").to_pandas()
    dates = pd.to_datetime(events.column("d").to_pandas())
    _same(got["dow"], naive.dt.day_of_week)
    _same(got["wk"], naive.dt.isocalendar().week)
    _same(got["ddow"], dates.dt.day_of_week)
    _same(got["dq"], dates.dt.quarter)
    _same(got["ddoy"], dates.dt.day_of_year)


def test_date_trunc_keeps_the_type_and_floors_local_time(events: pa.Table) -> None:
    out = run(events, step("m", "map", mappings={
        "day": "date_trunc('day', ts)", "month_d": "date_trunc('month', d)",
        "week_n": "date_trunc('week', naive)", "q_d": "date_trunc('quarter', d)",
    }))
    assert out.schema.field("month_d").type == pa.date32()
    assert pa.types.is_timestamp(out.schema.field("day").type)
    ts = events.column("ts").to_pandas()
    got_day = out.column("day").to_pandas().dt.tz_convert(BERLIN)
    _same(got_day, ts.dt.floor("D"))
    dates = pd.to_datetime(events.column("d").to_pandas())
    _same(pd.to_datetime(out.column("month_d").to_pandas()), dates.dt.to_period("M").dt.start_time)
    _same(pd.to_datetime(out.column("q_d").to_pandas()), dates.dt.to_period("Q").dt.start_time)
    naive = events.column("naive").to_pandas()
    _same(out.column("week_n").to_pandas(), naive.dt.to_period("W").dt.start_time)


def test_date_add_calendar_units_keep_wall_clock_across_dst(events: pa.Table) -> None:
    out = run(events, step("m", "map", mappings={
        "next_day": "date_add(ts, 1, 'day')", "plus_2h": "date_add(ts, 2, 'hour')",
        "next_month": "date_add(d, 1, 'month')", "minus_q": "date_add(d, -1, 'quarter')",
        "next_year": "date_add(naive, 1, 'year')",
    }))
    ts = events.column("ts").to_pandas()
    _same(out.column("next_day").to_pandas().dt.tz_convert(BERLIN), ts + pd.DateOffset(days=1))
    _same(out.column("plus_2h").to_pandas(), ts + pd.Timedelta(hours=2))
    assert out.schema.field("next_month").type == pa.date32()
    dates = pd.to_datetime(events.column("d").to_pandas())
    _same(pd.to_datetime(out.column("next_month").to_pandas()), dates + pd.DateOffset(months=1))
    _same(pd.to_datetime(out.column("minus_q").to_pandas()), dates - pd.DateOffset(months=3))
    naive = events.column("naive").to_pandas()
    _same(out.column("next_year").to_pandas(), naive + pd.DateOffset(years=1))


def test_date_diff_counts_whole_units_like_relativedelta(events: pa.Table) -> None:
    got = _map(
        events,
        days="date_diff('day', start, ts)", hours="date_diff('hour', start, ts)",
        months="date_diff('month', start, ts)", years="date_diff('year', start, ts)",
        back="date_diff('day', ts, start)",
    )
    start, ts = events.column("start").to_pandas(), events.column("ts").to_pandas()
    delta = ts - start
    _same(got["days"], np.trunc(delta / pd.Timedelta(days=1)))
    _same(got["hours"], np.trunc(delta / pd.Timedelta(hours=1)))
    _same(got["back"], np.trunc(-delta / pd.Timedelta(days=1)))
    rel = [None if pd.isna(b) else relativedelta(b.to_pydatetime(), a.to_pydatetime())
           for a, b in zip(start, ts, strict=True)]
    _same(got["months"], [None if r is None else r.years * 12 + r.months for r in rel])
    _same(got["years"], [None if r is None else r.years for r in rel])


def test_strftime_formats_local_time(events: pa.Table) -> None:
    got = _map(events, f="strftime(ts, '%Y-%m-%d %H:%M')", g="strftime(d, '%d.%m.%Y')")
    _same(got["f"], events.column("ts").to_pandas().dt.strftime("%Y-%m-%d %H:%M"))
    _same(got["g"], pd.to_datetime(events.column("d").to_pandas()).dt.strftime("%d.%m.%Y"))


def test_now_and_today_are_the_run_time_in_utc() -> None:
    before = pd.Timestamp.now(tz="UTC")
    out = run(pa.table({"a": [1, 2]}), step("m", "map", mappings={"t": "now()", "d": "today()"}))
    after = pd.Timestamp.now(tz="UTC")
    stamps = out.column("t").to_pandas()
    assert stamps.nunique() == 1 and before <= stamps[0] <= after
    assert set(out.column("d").to_pylist()) <= {before.date(), after.date()}


# ----------------------------------------------------------------------------- text
TEXT = pa.table(
    {
        "s": ["Order #123 from ACME", "", None, "héllo wörld 42", "no digits", "a-b-c"],
        "phone": ["+49 170 1234567", "12", None, "555-0199", "", "0123456789"],
    }
)


def test_regex_functions_match_pandas_str() -> None:
    got = _map(
        TEXT,
        num="regex_extract(s, '[0-9]+')", word="regex_extract(s, '([a-zé]+) (w)', 1)",
        clean="regex_replace(s, '[^a-z ]', '')", has="matches(s, '[0-9]')",
        digits="regex_replace(phone, '[^0-9]', '')",
    )
    s, phone = TEXT.column("s").to_pandas(), TEXT.column("phone").to_pandas()
    _same(got["num"], s.str.extract(r"([0-9]+)", expand=False))
    _same(got["word"], s.str.extract(r"([a-zé]+) (w)", expand=True)[0])
    _same(got["clean"], s.str.replace(r"[^a-z ]", "", regex=True))
    _same(got["has"], s.str.contains(r"[0-9]", regex=True))
    _same(got["digits"], phone.str.replace(r"[^0-9]", "", regex=True))


def test_split_position_and_pad_match_pandas_str() -> None:
    got = _map(
        TEXT,
        second="split_part(s, '-', 2)", last="split_part(s, ' ', -1)",
        pos="position(s, 'o')", left="lpad(phone, 12, '0')", right="rpad(phone, 4)",
        side="pad(phone, 5, '*', 'right')", kw="pad(phone, width=3, char='.')",
    )
    s, phone = TEXT.column("s").to_pandas(), TEXT.column("phone").to_pandas()
    _same(got["second"], s.str.split("-").str[1])
    _same(got["last"], s.str.split(" ").str[-1])
    _same(got["pos"], s.str.find("o") + 1)
    _same(got["left"], phone.str.pad(12, side="left", fillchar="0"))
    _same(got["right"], phone.str.pad(4, side="right"))
    _same(got["side"], phone.str.pad(5, side="right", fillchar="*"))
    _same(got["kw"], phone.str.pad(3, side="left", fillchar="."))


def test_hashes_and_mask_match_python() -> None:
    got = _map(TEXT, md="md5(phone)", sh="sha256(phone)", salted="sha256(phone, 'pepper')",
               masked="mask(phone)", two="mask(phone, keep_last=2, char='#')", none="mask(s, 0)")

    def py(values, fn):
        return [None if v is None else fn(v) for v in values]

    phones, texts = TEXT.column("phone").to_pylist(), TEXT.column("s").to_pylist()
    _same(got["md"], py(phones, lambda v: hashlib.md5(v.encode()).hexdigest()))
    _same(got["sh"], py(phones, lambda v: hashlib.sha256(v.encode()).hexdigest()))
    _same(got["salted"], py(phones, lambda v: hashlib.sha256(("pepper" + v).encode()).hexdigest()))
    _same(got["masked"], py(phones, lambda v: "*" * max(len(v) - 4, 0) + v[-4:]))
    _same(got["two"], py(phones, lambda v: "#" * max(len(v) - 2, 0) + v[-2:]))
    _same(got["none"], py(texts, lambda v: "*" * len(v)))


def test_sha256_salt_from_env_is_resolved_at_run_time_and_masked(monkeypatch) -> None:
    expression = 'sha256(phone, "${NEXUS_TEST_HASH_SALT}")'
    validate_expression(expression)  # load time: the variable need not exist
    monkeypatch.setenv("NEXUS_TEST_HASH_SALT", "s3cr3t-salt")
    got = _map(TEXT, h=expression)
    _same(got["h"], [None if v is None else hashlib.sha256(("s3cr3t-salt" + v).encode())
                     .hexdigest() for v in TEXT.column("phone").to_pylist()])
    assert mask_secrets("salt is s3cr3t-salt") == "salt is ***"


def test_sha256_salt_with_an_unset_variable_names_it_not_a_value(monkeypatch) -> None:
    monkeypatch.delenv("NEXUS_TEST_NO_SALT", raising=False)
    with pytest.raises(Exception, match="NEXUS_TEST_NO_SALT is not set"):
        _map(TEXT, h='sha256(phone, "${NEXUS_TEST_NO_SALT}")')


# ----------------------------------------------------------------------------- choices, math
NUMBERS = pa.table(
    {
        "x": pa.array([-5.5, 0.0, None, 3.25, 100.0, 1e-9], pa.float64()),
        "n": pa.array([-3, 0, 7, None, 12, 1], pa.int64()),
        "lat": pa.array([52.52, 48.1374, None, 40.7128, -33.8688, 0.0], pa.float64()),
        "lon": pa.array([13.405, 11.5755, 2.0, -74.006, 151.2093, 0.0], pa.float64()),
    }
)


def test_if_else_case_and_clip_match_numpy() -> None:
    got = _map(
        NUMBERS,
        sign="if_else(x > 0, 'pos', 'not pos')",
        band="case(n < 0, 'neg', n == 0, 'zero', n < 10, 'small', 'big')",
        clipped="clip(x, 0, 10)", low="clip(n, 1, None)",
    )
    x, n = NUMBERS.column("x").to_pandas(), NUMBERS.column("n").to_pandas()
    _same(got["sign"], np.where(x > 0, "pos", "not pos"))
    expected = np.select([n < 0, n == 0, n < 10], ["neg", "zero", "small"], "big")
    _same(got["band"], expected)
    _same(got["clipped"], x.clip(0, 10))
    _same(got["low"], n.clip(lower=1))


def test_math_functions_match_numpy_including_a_haversine_distance() -> None:
    got = _map(
        NUMBERS,
        ln="log(x)", l2="log(n, 2)", e="exp(n)", p="pow(x, 2)", r="sqrt(abs(x))",
        trig="sin(radians(lat)) + cos(radians(lon)) + tan(0.5) + atan2(lat, lon)",
        inv="asin(0.5) + acos(0.5) + atan(1) + degrees(pi())",
        km="2 * 6371 * asin(sqrt(pow(sin(radians(lat - 40.7128) / 2), 2) + cos(radians(lat)) "
           "* cos(radians(40.7128)) * pow(sin(radians(lon + 74.006) / 2), 2)))",
    )
    x, n = NUMBERS.column("x").to_pandas(), NUMBERS.column("n").to_pandas().astype(float)
    lat, lon = NUMBERS.column("lat").to_pandas(), NUMBERS.column("lon").to_pandas()
    with np.errstate(all="ignore"):
        expected = {
            "ln": np.log(x), "l2": np.log(n) / np.log(2), "e": np.exp(n), "p": x**2,
            "r": np.sqrt(x.abs()),
            "trig": np.sin(np.radians(lat)) + np.cos(np.radians(lon)) + math.tan(0.5)
            + np.arctan2(lat, lon),
            "inv": [math.asin(0.5) + math.acos(0.5) + math.atan(1) + 180.0] * len(x),
        }
    for name, values in expected.items():
        np.testing.assert_allclose(got[name].astype(float), pd.Series(values).astype(float),
                                   rtol=1e-12, equal_nan=True, err_msg=name)

    def haversine(a: float, b: float) -> float:
        la1, lo1, la2, lo2 = map(math.radians, (40.7128, -74.006, a, b))
        h = math.sin((la2 - la1) / 2) ** 2 + math.cos(la1) * math.cos(la2) * math.sin(
            (lo2 - lo1) / 2) ** 2
        return 2 * 6371 * math.asin(math.sqrt(h))

    km = [None if pd.isna(a) else haversine(a, b) for a, b in zip(lat, lon, strict=True)]
    np.testing.assert_allclose(got["km"].astype(float), pd.Series(km, dtype=float),
                               rtol=1e-9, equal_nan=True)


# ----------------------------------------------------------------------------- spec errors
@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("date_diff('days', a, b)", "unknown unit 'days'; use one of: second, minute"),
        ("date_trunc('fortnight', a)", "unknown unit 'fortnight'"),
        ("date_add(a, 1, unit)", "unit must be a literal str"),
        ("regex_extract(s, '([0-9]+')", "invalid regular expression"),
        ("matches(s, '(?=x)')", "lookaround or a backreference"),
        ("regex_replace(s, '(a)\\\\1', 'b')", "lookaround or a backreference"),
        ("regex_extract(s, '[0-9]+', 2)", "group 2 does not exist"),
        ("matches(s, '\\bword')", "holds a control character"),
        ("regex_extract(s, pattern_column)", "pattern must be a literal str"),
        ("mask(s, keep_last=-1)", "keep_last must be 0 or more"),
        ("mask(s, keep=2)", "mask() has no argument 'keep'"),
        ("lower(s, x=1)", "lower() takes no keyword arguments"),
        ("pad(s, 3, '00')", "one character"),
        ("pad(s, 3, '0', 'middle')", "side must be 'left' or 'right'"),
        ("split_part(s, ',', 0)", "count from 1"),
        ("case(a > 1, 'x', a > 2, 'y')", "condition/value pairs and a default"),
        ("if_else(a > 1, 2)", "if_else() takes 3 arguments, got 2"),
        ("sha256(s, salt_column)", "salt must be a literal str"),
    ],
)
def test_bad_function_arguments_are_refused_without_columns(expression: str, message: str):
    with pytest.raises(ExpressionError, match=re.escape(message)):
        validate_expression(expression)


def test_a_bad_unit_is_a_spec_error_at_its_file_line_and_field(tmp_path) -> None:
    folder = tmp_path / "job_specs"
    folder.mkdir()
    (folder / "job.yaml").write_text(
        "name: dates\n"
        "sources:\n"
        "  - {name: s, source_type: file, file_path: s.csv}\n"
        "transformations:\n"
        "  - name: m\n"
        "    transformation_type: map\n"
        "    config:\n"
        "      mappings:\n"
        "        age: 'date_diff(\"years\", born, today())'\n"
        "targets:\n"
        "  - {name: o, target_type: file, file_path: o.csv}\n"
    )
    _, problems = collect([folder])
    assert [(p.line, p.field) for p in problems] == [(9, "transformations[0].config.mappings.age")]
    assert "unknown unit 'years'; use one of: second, minute, hour, day" in problems[0].message
