"""Parser exceptions (pyarrow, openpyxl, codecs) turned into :class:`DataError` naming the file
and the fix."""

from __future__ import annotations

import contextlib
import re
import zipfile
from collections.abc import Iterator

import pyarrow as pa

from nexus_dagster.errors import DataError, SpecError


@contextlib.contextmanager
def translate_errors(name: str, fmt: str, encoding: str = "utf8") -> Iterator[None]:
    """Turn parser exceptions into :class:`DataError` naming the file."""
    try:
        yield
    except (DataError, SpecError):
        raise
    except UnicodeError as exc:
        raise DataError(encoding_message(name, encoding, exc)) from exc
    except (
        pa.ArrowException,
        ValueError,
        EOFError,
        OSError,
        KeyError,
        zipfile.BadZipFile,
    ) as exc:
        text = str(exc)
        if isinstance(exc, FileNotFoundError):
            raise
        if re.search(r"utf-?8|invalid encoding|unicode", text, re.I):
            raise DataError(encoding_message(name, encoding, exc)) from exc
        if text.startswith(("Empty CSV file", "Empty JSON")):
            raise DataError(f"file {name} is empty") from exc
        hint = ""
        if "conversion error" in text.lower() or "unable to merge" in text.lower():
            hint = " (set options.column_types to read the column with another type)"
        raise DataError(f"cannot read {name} as {fmt}: {text}{hint}") from exc


def encoding_message(name: str, encoding: str, exc: Exception) -> str:
    """The message for a file that is not text in ``encoding``, with the ``options.encoding``
    fix."""
    shown = "utf-8" if encoding == "utf8" else encoding
    return (
        f"file {name} is not valid {shown} text ({exc}); set options.encoding to the file's "
        "encoding (for example latin-1 or cp1252)"
    )
