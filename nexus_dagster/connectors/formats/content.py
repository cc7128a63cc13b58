"""What stands between a stored file and a format reader: Fernet decryption, a zip archive's
members and compression.

:class:`ContentOpener` turns each stored file of a read into the :class:`Content` items the
format readers read (one per file, or one per chosen archive member) and opens each as a stream:

``stored bytes -> decrypted (options.encryption: fernet) -> zip member -> decompressed``

Paths name the layers from the outside in: ``orders.csv.gz.enc`` is an encrypted gzip of CSV,
``orders.zip`` an archive whose members name their own formats (see
:mod:`~nexus_dagster.connectors.formats.zip_members`). Formats that need a seekable file (Parquet,
Excel) and archives inside an encrypted file are held in memory; everything else streams.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO

from fsspec.compression import compr

from nexus_dagster.connectors.formats import fernet_stream
from nexus_dagster.connectors.formats.names import (
    SEEKABLE_FORMATS,
    infer_format,
    normalize_format,
    split_compression,
    strip_encrypted_suffix,
)
from nexus_dagster.connectors.formats.reader import Opener
from nexus_dagster.connectors.formats.zip_members import (
    ArchiveMember,
    member_label,
    open_member,
    select_members,
)
from nexus_dagster.errors import DataError, SpecError


@dataclass(frozen=True)
class Content:
    """One input of a read: a stored file, or one member of a zip archive stored as a file.

    Attributes:
        path: the stored file (filesystem path).
        fmt: the format it is read in.
        name: how it is shown in messages (``s3://b/orders.zip!jan.csv``).
        label: its ``_source_file`` value (``orders.zip!jan.csv``).
        compression: the compression of the file, or of the member when there is one.
        member: the archive member, or None.
        stored_name: how the stored file is shown in messages.
    """

    path: str
    fmt: str
    name: str
    label: str
    compression: str | None = None
    member: ArchiveMember | None = None
    stored_name: str = ""


class ContentOpener:
    """Finds and opens the contents of one read's stored files.

    Args:
        open_raw: opens a stored file (a filesystem path) for reading as stored, seekable.
        encryption: ``options.encryption`` (``fernet``) or None.
    """

    def __init__(self, open_raw: Callable[[str], IO[bytes]], encryption: str | None = None):
        self._open_raw = open_raw
        self._keys = fernet_stream.keys() if encryption else None
        self._verified: dict[str, int] = {}
        self._plain_archives: dict[str, bytes] = {}
        #: archive members left out (``archive!member``), for the relation's statistics
        self.skipped: list[str] = []
        #: archive members holding no bytes (read as no rows)
        self.empty: list[str] = []

    def contents(
        self, path: str, name: str, label: str, file_format: str | None, pattern: str | None
    ) -> list[Content]:
        """The contents of the stored file ``path`` (shown as ``name``, labelled ``label``).

        Args:
            file_format: the source's ``file_format``, or None to infer it from the names.
            pattern: ``options.archive_members``.

        Raises:
            SpecError: the format cannot be told from the name.
            DataError: an archive has no member to read, or only empty ones.
        """
        plain = strip_encrypted_suffix(path) if self._keys is not None else path
        stem, compression = split_compression(plain)
        fmt = normalize_format(file_format) if file_format else None
        if compression != "zip":
            return [Content(path, fmt or infer_format(plain), name, label, compression,
                            stored_name=name)]
        if fmt is None:
            try:
                fmt = infer_format(stem)
            except SpecError:
                fmt = None
        with self._seekable(path, name) as f:
            members, skipped = select_members(f, name, fmt, pattern)
        self.skipped.extend(member_label(label, m) for m in skipped)
        found = []
        for member in members:
            if member.size == 0:
                self.empty.append(member_label(label, member.name))
                continue
            found.append(Content(path, member.fmt, member_label(name, member.name),
                                 member_label(label, member.name), member.compression, member,
                                 stored_name=name))
        if not found:
            raise DataError(f"{name}: every member chosen to be read is empty")
        return found

    def _stored(self, path: str, name: str) -> IO[bytes]:
        """The stored file's bytes, decrypted when the read is encrypted."""
        if self._keys is None:
            return self._open_raw(path)
        return fernet_stream.open_decrypted(
            lambda: self._open_raw(path), self._keys, name, self._verified
        )

    def _seekable(self, path: str, name: str) -> IO[bytes]:
        """The stored file's bytes, seekable (an encrypted archive: decrypted in memory)."""
        if self._keys is None:
            return self._open_raw(path)
        if path not in self._plain_archives:
            with self._stored(path, name) as f:
                self._plain_archives[path] = f.read()
        return io.BytesIO(self._plain_archives[path])

    def opener(self, content: Content) -> Opener:
        """A callable opening ``content`` for its format reader (decrypted, decompressed)."""

        def open_content() -> IO[bytes]:
            if content.member is not None:
                f = open_member(self._seekable(content.path, content.stored_name),
                                content.member.name)
            else:
                f = self._stored(content.path, content.stored_name)
            if content.compression:
                f = compr[content.compression](f, mode="rb")
            layered = content.compression or content.member or self._keys is not None
            if layered and content.fmt in SEEKABLE_FORMATS:
                with f:
                    return io.BytesIO(f.read())
            return f

        return open_content
