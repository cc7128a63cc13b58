"""PostgreSQL binary COPY input: Arrow batches encoded by pgpq, used when it loads the same values
as CSV text would.

In ``COPY ... FROM STDIN (FORMAT binary)`` each field is in the binary form of the *target*
column's type, and the server checks little of it, so binary is chosen only when every column's
Arrow type has exactly that form (:data:`BINARY_FORMS`): ``bigint`` from int64 (or a narrower
integer, widened first), ``integer`` from int32/int16/int8, ``numeric`` from a decimal (the
column's own precision and scale apply on the server, as for text), ``text``/``varchar``/``char``
from strings (their length limits apply), ``timestamptz`` from UTC timestamps and ``timestamp``
from naive ones (microseconds, as ``normalize_for_write`` makes them), ``date``, ``time``,
``boolean``, ``bytea``, ``real``/``double precision`` from float32/float64. Anything else (a
string into an integer or JSON column, a float into numeric, a naive timestamp into
``timestamptz``, enums, domains, arrays, ...) keeps CSV text, which the server parses with its
own input rules. ``NEXUS_PG_BINARY_COPY=0`` keeps CSV for every load.

Binary saves the server the text parsing that dominates a CSV COPY: 2,000,000 rows of an
8-column orders table load in ~2.5x less time (``tests/benchmarks/run.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

import pyarrow as pa

from nexus_dagster.switches import switched_on

#: set to 0 to load every PostgreSQL table through CSV text
BINARY_SWITCH = "NEXUS_PG_BINARY_COPY"


def _integer(bits: int) -> Callable[[pa.DataType], bool]:
    return lambda t: pa.types.is_signed_integer(t) and t.bit_width <= bits


def _text(t: pa.DataType) -> bool:
    return pa.types.is_string(t)


#: target column type OID -> (the Arrow types whose binary form it reads, the Arrow type to
#: encode them as: narrower integers and date64 are cast to it first, losslessly)
BINARY_FORMS: Mapping[int, tuple[Callable[[pa.DataType], bool], pa.DataType | None]] = {
    16: (pa.types.is_boolean, None),  # boolean
    17: (pa.types.is_binary, None),  # bytea
    20: (_integer(64), pa.int64()),  # bigint
    21: (_integer(16), pa.int16()),  # smallint
    23: (_integer(32), pa.int32()),  # integer
    25: (_text, None),  # text
    700: (pa.types.is_float32, None),  # real
    701: (pa.types.is_float64, None),  # double precision
    1042: (_text, None),  # char(n)
    1043: (_text, None),  # varchar(n)
    1082: (lambda t: pa.types.is_date32(t) or pa.types.is_date64(t), pa.date32()),  # date
    1083: (lambda t: t == pa.time64("us"), None),  # time
    1114: (lambda t: t == pa.timestamp("us"), None),  # timestamp
    1184: (lambda t: t == pa.timestamp("us", tz="UTC"), None),  # timestamptz
    1700: (pa.types.is_decimal, None),  # numeric
}

_TYPES_SQL = (
    "SELECT attname, atttypid FROM pg_attribute "
    "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped"
)


def enabled() -> bool:
    """False when ``NEXUS_PG_BINARY_COPY=0`` turns binary COPY off."""
    return switched_on(BINARY_SWITCH)


def column_type_oids(dbapi_connection: object, table_sql: str) -> dict[str, int]:
    """The type OID of each column of ``table_sql`` (a quoted table name), by column name."""
    with dbapi_connection.cursor() as cursor:  # type: ignore[attr-defined]
        cursor.execute(_TYPES_SQL, (table_sql,))
        return {name: int(oid) for name, oid in cursor.fetchall()}


def encoded_schema(schema: pa.Schema, type_oids: Mapping[str, int]) -> pa.Schema | None:
    """The schema to encode ``schema``'s batches as for columns of ``type_oids``, or None when
    one column has no binary form that the target reads exactly (CSV text is used then)."""
    fields = []
    for field in schema:
        form = BINARY_FORMS.get(type_oids.get(field.name, 0))
        if form is None or not form[0](field.type):
            return None
        fields.append(field.with_type(form[1] or field.type))
    return pa.schema(fields)


class BinaryChunks:
    """Encode batches of one schema as binary COPY data, ``rows`` rows a buffer.

    Args:
        schema: what :func:`encoded_schema` returned for the load.
        rows: rows per buffer (each buffer is one ``bytes`` the COPY sends).
    """

    def __init__(self, schema: pa.Schema, rows: int):
        from pgpq import ArrowToPostgresBinaryEncoder

        self.schema = schema
        self._rows = rows
        self._encoder = ArrowToPostgresBinaryEncoder(schema)

    def header(self) -> bytes:
        """The COPY's header (sent once, first)."""
        return self._encoder.write_header()

    def batch(self, batch: pa.RecordBatch) -> Iterator[bytes]:
        """A batch's rows, cast to the encoded schema first when its types are narrower."""
        if batch.schema != self.schema:
            batch = _cast(batch, self.schema)
        for offset in range(0, batch.num_rows, self._rows):
            yield self._encoder.write_batch(batch.slice(offset, self._rows))

    def trailer(self) -> bytes:
        """The COPY's end marker (sent once, last)."""
        return self._encoder.finish()


def _cast(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    arrays = [
        col if col.type == field.type else col.cast(field.type)
        for col, field in zip(batch.columns, schema, strict=True)
    ]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)
