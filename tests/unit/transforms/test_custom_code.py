"""Custom code: the Nexus promise (df, pd, np, datetime, timedelta, source frames)."""

from __future__ import annotations

from decimal import Decimal

import pyarrow as pa
import pytest

from nexus_dagster.errors import SpecError, TransformError
from nexus_dagster.relation import Relation
from nexus_dagster.transforms.chain import apply_transformations
from nexus_dagster.transforms.code_policy import CUSTOM_CODE_ENV

from .helpers import run, step

DOCS_EXAMPLE = """
# Available variables: df, pd, np, datetime, timedelta
df['email'] = df['email'].str.lower().str.strip()
df['phone'] = df['phone'].str.replace(r'\\D', '', regex=True)
df['is_vip'] = df['total_spent'] > 10000

def categorize_customer(row):
    if row['total_spent'] > 50000:
        return 'Enterprise'
    elif row['total_spent'] > 10000:
        return 'Premium'
    return 'Basic'

df['customer_tier'] = df.apply(categorize_customer, axis=1)
df['month'] = pd.to_datetime(df['order_date']).dt.month
df['sales_zscore'] = (df['sales'] - df['sales'].mean()) / df['sales'].std()
df['email_domain'] = df['email'].str.split('@').str[1]
df['later'] = datetime(2024, 1, 1) + timedelta(days=1)
df['sq'] = np.sqrt(df['sales'])
df = df[df['email'].str.contains('@', na=False)]
print(f"Processed {len(df)} rows")
"""

CUSTOMERS = pa.table(
    {
        "email": [" A@X.COM", "b@y.org ", "nope"],
        "phone": ["+49 (30) 1234", "555-0100", "1"],
        "total_spent": [60000.0, 20000.0, 5.0],
        "order_date": ["2024-03-05", "2024-07-01", "2024-01-01"],
        "sales": [4.0, 9.0, 16.0],
    }
)


def code_step(code: str, name: str = "advanced_processing", **config: object):  # type: ignore[no-untyped-def]
    return step(name, "custom_code", code=code, **config)


def test_documented_example_runs() -> None:
    out = run(CUSTOMERS, code_step(DOCS_EXAMPLE)).to_pylist()
    assert [r["email"] for r in out] == ["a@x.com", "b@y.org"]
    assert [r["phone"] for r in out] == ["49301234", "5550100"]
    assert [r["customer_tier"] for r in out] == ["Enterprise", "Premium"]
    assert [r["month"] for r in out] == [3, 7]
    assert [r["email_domain"] for r in out] == ["x.com", "y.org"]
    assert out[0]["is_vip"] is True and out[0]["sq"] == 2.0


def test_result_types_are_restored() -> None:
    table = pa.table(
        {
            "id": pa.array([1, 2, 3], pa.int64()),
            "amount": pa.array([Decimal("1.50"), None, Decimal("2.25")], pa.decimal128(12, 2)),
            "ts": pa.array([0, 1, 2], pa.timestamp("us", tz="Europe/Berlin")),
            "name": pa.array(["a", None, "c"], pa.string()),
            "maybe": pa.array([1, None, 3], pa.int32()),
        }
    )
    out = run(table, code_step("df['extra'] = 1\n"))
    for field in table.schema:
        assert out.schema.field(field.name).type == field.type
    assert out.column("maybe").to_pylist() == [1, None, 3]


def test_source_frames_by_name() -> None:
    orders = pa.table({"customer_id": [1, 2, 1], "amount": [5.0, 6.0, 7.0]})
    customers = pa.table({"customer_id": [1, 2], "name": ["Ann", "Bob"]})
    code = "df = orders.merge(customers, on='customer_id')\n"
    out = run({"orders": orders, "customers": customers}, code_step(code))
    assert out.column("name").to_pylist() == ["Ann", "Bob", "Ann"]


def test_source_frame_and_sql_use_the_same_one_pass_source() -> None:
    orders = pa.table({"customer_id": [1, 2, 1], "amount": [5.0, 6.0, 7.0]})
    relation = Relation.from_batches(orders.schema, iter(orders.to_batches()), "orders")
    result = apply_transformations(
        {"orders": relation},
        [
            step("f", "filter", condition="amount > 5"),
            code_step("df['share'] = df['amount'] / orders['amount'].sum()\n", name="c"),
        ],
    ).to_table()
    assert result.column("share").to_pylist() == [6 / 18, 7 / 18]


def test_per_batch_streams() -> None:
    seen = []
    schema = pa.schema([("x", pa.int64())])
    rows, count = 10_000, 100

    def batches():  # type: ignore[no-untyped-def]
        for i in range(count):
            seen.append(i)
            yield pa.record_batch({"x": list(range(i * rows, (i + 1) * rows))}, schema=schema)

    code = "df['y'] = df['x'] * 2\ndf = df[df['x'] % 2 == 0]\n"
    result = apply_transformations(
        {"src": Relation(schema, batches)},
        [code_step(code, per_batch=True), step("f", "filter", condition="x < 600000")],
        batch_size=1000,
    )
    iterator = iter(result)
    first = next(iterator)
    assert first.num_rows <= 1000
    # DuckDB reads a bounded window ahead (a few hundred thousand rows), not everything
    assert len(seen) < count / 2
    rest = pa.Table.from_batches([first, *iterator])
    assert rest.column("y").to_pylist() == [2 * x for x in range(0, 600000, 2)]


def test_per_batch_int_column_with_nulls_keeps_its_type() -> None:
    table = pa.table({"x": pa.array([1, None, 3, 4], pa.int64())})
    relation = Relation.from_table(table, batch_size=2)
    result = apply_transformations(
        {"src": relation}, [code_step("df['z'] = 1\n", per_batch=True)]
    ).to_table()
    assert result.schema.field("x").type == pa.int64()
    assert result.column("x").to_pylist() == [1, None, 3, 4]


def test_error_names_transformation_and_line() -> None:
    code = "df['a'] = 1\n\ndf['b'] = df['missing'] + 1\n"
    with pytest.raises(TransformError) as info:
        run(CUSTOMERS, code_step(code, name="enrich"))
    message = str(info.value)
    assert "'enrich'" in message
    assert "line 3" in message
    assert "df['missing']" in message
    assert "KeyError" in message


def test_error_in_a_function_defined_by_the_code() -> None:
    code = "def f(row):\n    return 1 / 0\n\ndf['x'] = df.apply(f, axis=1)\n"
    with pytest.raises(TransformError, match=r"line 2.*ZeroDivisionError"):
        run(CUSTOMERS, code_step(code))


def test_per_batch_error() -> None:
    with pytest.raises(TransformError, match="line 1"):
        run(CUSTOMERS, code_step("raise ValueError('bad batch')", per_batch=True))


def test_syntax_error_is_reported_before_reading() -> None:
    opened = []

    def open_():  # type: ignore[no-untyped-def]
        opened.append(1)
        return iter(CUSTOMERS.to_batches())

    with pytest.raises(TransformError, match="syntax error at line 2"):
        apply_transformations(
            {"src": Relation(CUSTOMERS.schema, open_)}, [code_step("x = 1\nif\n")]
        )
    assert opened == []


def test_df_must_stay_a_dataframe() -> None:
    with pytest.raises(TransformError, match="must be a pandas DataFrame"):
        run(CUSTOMERS, code_step("df = 5\n"))


def test_unconvertible_result() -> None:
    with pytest.raises(TransformError, match="cannot be converted"):
        run(CUSTOMERS, code_step("df['mixed'] = [1, 'a', object()]\n"))


@pytest.mark.parametrize("value", ["0", "false", "off"])
def test_disabled_by_environment(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(CUSTOM_CODE_ENV, value)
    with pytest.raises(SpecError, match="disabled") as info:
        run(CUSTOMERS, code_step("df['x'] = 1\n"))
    assert CUSTOM_CODE_ENV in str(info.value)


def test_enabled_explicitly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CUSTOM_CODE_ENV, "1")
    assert run(CUSTOMERS, code_step("df['x'] = 1\n")).column("x").to_pylist() == [1, 1, 1]


def test_chain_sql_code_sql() -> None:
    out = run(
        CUSTOMERS,
        step("f", "filter", condition="sales > 4"),
        code_step("df['double'] = df['sales'] * 2\n", name="c"),
        step("s", "sort", columns="double", ascending=False),
        step("a", "aggregate", aggregations={"total": ("double", "sum")}),
    )
    assert out.to_pylist() == [{"total": 50.0}]


def test_join_with_the_custom_code_result() -> None:
    orders = pa.table({"customer_id": [1, 2], "amount": [5.0, 6.0]})
    customers = pa.table({"customer_id": [1, 2], "name": ["Ann", "Bob"]})
    out = run(
        {"orders": orders, "customers": customers},
        step("j", "join", left="orders", right="customers", on="customer_id"),
        code_step("df['name'] = df['name'].str.upper()\n", name="c"),
        step("j2", "join", left="c", right="customers", on="customer_id"),
    )
    assert out.column("name_x").to_pylist() == ["ANN", "BOB"]
    with pytest.raises(SpecError, match="since the last custom_code step"):
        run(
            {"orders": orders, "customers": customers},
            step("j", "join", left="orders", right="customers", on="customer_id"),
            code_step("df['x'] = 1\n", name="c"),
            step("j2", "join", left="j", right="customers", on="customer_id"),
        )


def test_code_first_with_two_sources_gets_the_union() -> None:
    a = pa.table({"x": [1]})
    b = pa.table({"x": [2], "y": ["q"]})
    out = run({"a": a, "b": b}, code_step("df['n'] = len(df)\n"))
    assert out.to_pylist() == [{"x": 1, "y": None, "n": 2}, {"x": 2, "y": "q", "n": 2}]


def test_decimals_reach_the_code_as_floats_and_untouched_ones_come_back_exact() -> None:
    table = pa.table({
        "amount": pa.array([Decimal("1.50"), None, Decimal("3418.22")], pa.decimal128(18, 2)),
        "price": pa.array([Decimal("1.00"), Decimal("3.00"), Decimal("3.30")],
                          pa.decimal128(18, 2)),
    })
    code = ("assert str(df['amount'].dtype) == 'float64'\n"
            "assert list(df.select_dtypes(include=[np.number]).columns) == ['amount', 'price']\n"
            "assert df['price'].tolist() == [1.0, 3.0, 3.3]\n"
            "df['log_amount'] = np.log(df['amount'])\n"
            "df['price'] = df['price'] * 1.1\n")
    out = run(table, code_step(code))
    # untouched: the input's decimal type and exact values
    assert out.schema.field("amount").type == pa.decimal128(18, 2)
    assert out.column("amount").to_pylist() == [Decimal("1.50"), None, Decimal("3418.22")]
    # changed by the code into values no decimal(18, 2) holds: stays float64, nothing rounded
    assert out.schema.field("price").type == pa.float64()
    assert out.column("price").to_pylist() == [1.0 * 1.1, 3.0 * 1.1, 3.3 * 1.1]
