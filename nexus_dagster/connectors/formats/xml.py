"""XML (``file_format: xml``): a streaming reader of records, and a streaming writer.

Records are the elements at ``options.records_path``: element names separated by ``/``,
``/orders/order`` from the root, or ``order`` / ``orders/order`` for such elements wherever they
are (the outermost match; matches inside a record belong to it). Without it, the root's
children are the records. Names match without their namespace, and columns are named without
it.

A record becomes a document, then columns by the rule the document stores use
(:func:`nexus_dagster.connectors.documents.flatten`): attributes and child elements are fields
(an attribute whose name a child element also has is ``@name``), a child with children or
attributes is a nested document whose fields become ``child.field`` columns, the text of an
element that also has attributes or children is its ``_text`` field, a repeated child is a list
(JSON text), an empty element and ``xsi:nil="true"`` are null. Values are text, typed like CSV
columns (``column_types`` overrides them).

The file is parsed with lxml's ``iterparse``, record by record, each record freed once read:
entities are never expanded, no DTD is loaded and nothing is fetched from the network. The
schema comes from a first pass over the whole file (so a field that only late records have is
still a column); the rows from a second.

The writer writes ``<records><record><column>value</column>...</record></records>``
(``options.root_element``, ``options.record_element``), nulls as absent elements.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import IO, Any

import pyarrow as pa

from nexus_dagster.connectors import documents
from nexus_dagster.connectors.formats.options import ReadOptions
from nexus_dagster.connectors.formats.parse_errors import translate_errors
from nexus_dagster.connectors.formats.reader import FormatReader, Opener
from nexus_dagster.connectors.formats.schemas import check_text_types
from nexus_dagster.connectors.formats.text_columns import (
    merge_text_types,
    text_schema,
    typed_batch,
    with_nulls,
)
from nexus_dagster.errors import DataError, LoadError

_XSI_NIL = "{http://www.w3.org/2001/XMLSchema-instance}nil"
TEXT_FIELD = "_text"


def _local(tag: str) -> str:
    """A tag or attribute name without its namespace (``{uri}name`` -> ``name``)."""
    return tag.rsplit("}", 1)[-1]


def _path_steps(records_path: str | None) -> tuple[tuple[str, ...], bool]:
    """The path's element names (prefixes dropped) and whether it starts at the root."""
    if not records_path:
        return (), True
    steps = tuple(_local(s).split(":")[-1] for s in records_path.strip().split("/") if s)
    return steps, records_path.strip().startswith("/")


def element_document(element: Any) -> Any:
    """An element as a document (see the module docstring): text, None or a dict."""
    attributes = {_local(k): v for k, v in element.attrib.items() if k != _XSI_NIL}
    if element.get(_XSI_NIL) in ("true", "1"):
        return None
    children = [c for c in element if isinstance(c.tag, str)]
    text = ((element.text or "") + "".join(c.tail or "" for c in element)).strip()
    if not children and not attributes:
        return text or None
    names = {_local(c.tag) for c in children}
    document: dict[str, Any] = {
        (f"@{k}" if k in names else k): v for k, v in attributes.items()
    }
    lists: set[str] = set()
    for child in children:
        key, value = _local(child.tag), element_document(child)
        if key in lists:
            document[key].append(value)
        elif key in document:
            document[key] = [document[key], value]
            lists.add(key)
        else:
            document[key] = value
    if text:
        document[TEXT_FIELD] = text
    return document


def _records(f: IO[bytes], records_path: str | None) -> Iterator[dict[str, Any]]:
    """The records of an XML stream as flat rows, one element in memory at a time."""
    from lxml import etree  # lxml is loaded when XML is read or written, not with the connector

    steps, rooted = _path_steps(records_path)
    path: list[str] = []
    inside = 0  # depth of the record being read, 0 outside records
    parser = etree.iterparse(
        f,
        events=("start", "end"),
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )
    for event, element in parser:
        if event == "start":
            path.append(_local(element.tag))
            if not inside and _is_record(path, steps, rooted):
                inside = len(path)
            continue
        if inside == len(path):
            inside = 0
            document = element_document(element)
            if not isinstance(document, dict):
                document = {_local(element.tag): document}
            yield documents.flatten(document)
            element.clear(keep_tail=False)
            parent = element.getparent()
            if parent is not None:
                while element.getprevious() is not None:
                    del parent[0]
        elif not inside and len(path) > 1:
            element.clear(keep_tail=False)
        path.pop()


def _is_record(path: list[str], steps: tuple[str, ...], rooted: bool) -> bool:
    if not steps:
        return len(path) == 2
    if rooted:
        return tuple(path) == steps
    return len(path) >= len(steps) and tuple(path[-len(steps):]) == steps


def _columns(rows: list[dict[str, Any]], names: Iterable[str], opts: ReadOptions
             ) -> dict[str, pa.Array]:
    nulls = tuple(opts.null_values)
    return {
        n: with_nulls(pa.array([r.get(n) for r in rows], pa.string()), nulls) for n in names
    }


class XmlReader(FormatReader):
    """Streaming XML records (see the module docstring)."""

    fmt = "xml"

    def _rows(self, opener: Opener, name: str, opts: ReadOptions, batch_size: int
              ) -> Iterator[list[dict[str, Any]]]:
        from lxml import etree

        found = False
        with translate_errors(name, self.fmt, opts.encoding), opener() as f:
            try:
                rows: list[dict[str, Any]] = []
                for row in _records(f, opts.records_path):
                    found = True
                    rows.append(row)
                    if len(rows) >= batch_size:
                        yield rows
                        rows = []
                if rows:
                    yield rows
            except etree.XMLSyntaxError as exc:
                raise DataError(f"cannot read {name} as xml: {exc}") from exc
        if not found:
            where = f"at options.records_path {opts.records_path!r}" if opts.records_path \
                else "under the root element"
            raise DataError(
                f"{name}: no record {where}; set options.records_path to the records' element "
                "path (e.g. orders/order)"
            )

    def schema(self, opener: Opener, name: str, opts: ReadOptions, batch_size: int) -> pa.Schema:
        types: dict[str, pa.DataType] = {}
        for rows in self._rows(opener, name, opts, batch_size):
            names = dict.fromkeys(k for r in rows for k in r)
            batch = text_schema(_columns(rows, names, opts), opts.column_types)
            for field in batch:
                if field.name in types:
                    types[field.name] = merge_text_types(types[field.name], field.type)
                else:
                    types[field.name] = field.type
        for column, type_ in opts.column_types.items():
            if column in types:
                types[column] = type_
        return pa.schema(list(types.items()))

    def batches(
        self, opener: Opener, name: str, opts: ReadOptions, schema: pa.Schema, batch_size: int
    ) -> Iterator[pa.RecordBatch]:
        for rows in self._rows(opener, name, opts, batch_size):
            known = set(schema.names)
            extra = sorted({k for r in rows for k in r} - known)
            if extra:
                raise DataError(
                    f"{name}: field(s) {extra[:5]} appeared after the schema was read (did the "
                    "file change during the run?); run it again"
                )
            yield typed_batch(_columns(rows, schema.names, opts), schema, name)


def _element_name(name: str, what: str) -> str:
    from lxml import etree

    try:
        return str(etree.QName(name).localname)
    except ValueError:
        raise LoadError(f"{what} {name!r} is not an XML element name") from None


def write_xml(
    out: IO[bytes],
    batches: Iterable[pa.RecordBatch],
    schema: pa.Schema,
    *,
    root_element: str = "records",
    record_element: str = "record",
) -> int:
    """Stream batches as one XML document, a ``record_element`` per row under
    ``root_element``, a child element per non-null value (dates ISO 8601, decimals as text).

    Raises:
        LoadError: a column name is not an XML element name, or a column is nested.
    """
    from lxml import etree

    check_text_types(schema, "xml")
    root = _element_name(root_element, "options.root_element")
    record = _element_name(record_element, "options.record_element")
    columns = [_element_name(n, "column name") for n in schema.names]
    total = 0
    with etree.xmlfile(out, encoding="utf-8") as document:
        document.write_declaration()
        with document.element(root):
            for batch in batches:
                for row in batch.to_pylist():
                    element = etree.Element(record)
                    for column, value in zip(columns, row.values(), strict=True):
                        if value is not None:
                            child = etree.SubElement(element, column)
                            child.text = _xml_text(value)
                    document.write(element)
                    document.write("\n")
                total += batch.num_rows
    return total


def _xml_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def xml_options(options: Mapping[str, Any]) -> dict[str, str]:
    """The writer's element names from a target's options (defaults ``records``/``record``)."""
    return {
        "root_element": str(options.get("root_element") or "records"),
        "record_element": str(options.get("record_element") or "record"),
    }
