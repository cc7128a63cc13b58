"""Zip archives: which members a source reads, and each member opened as a stream.

Every file member is read, or the read fails: never only the first one. A member is chosen by
``options.archive_members`` (a glob on its path inside the archive, ``*.csv``,
``2024/*.jsonl``) when given, else by its extension: the members whose format is the source's
(``file_format``, or the one the archive's name gives, ``orders.csv.zip``), or, when neither
names one, every member with a known format extension, each read in its own format. Directory
entries are no files; hidden files (``.DS_Store``, ``__MACOSX/``) are skipped; every other member
left out is named in the relation's ``skipped_members`` statistic and logged. A member may be
compressed itself (``jan.csv.gz``); a member that is an archive, or is encrypted with a zip
password, fails the read.
"""

from __future__ import annotations

import fnmatch
import io
import logging
import posixpath
import zipfile
from dataclasses import dataclass
from typing import IO, Any

from nexus_dagster.connectors.formats.names import (
    FORMATS,
    infer_format,
    split_compression,
)
from nexus_dagster.errors import DataError, SpecError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ArchiveMember:
    """A member of a zip archive to read.

    Attributes:
        name: its path inside the archive.
        fmt: the format it is read in.
        compression: its own compression (``jan.csv.gz`` -> ``gzip``), or None.
        size: its uncompressed size in bytes.
    """

    name: str
    fmt: str
    compression: str | None
    size: int


def _format_of(name: str) -> str | None:
    try:
        return infer_format(name)
    except SpecError:
        return None


def _hidden(name: str) -> bool:
    parts = name.split("/")
    return parts[0] == "__MACOSX" or any(p.startswith(".") for p in parts if p)


def select_members(
    raw: IO[bytes], archive: str, fmt: str | None, pattern: str | None
) -> tuple[list[ArchiveMember], list[str]]:
    """The members of the zip archive in ``raw`` to read, in archive order, and those skipped.

    Args:
        raw: the archive, seekable.
        archive: the archive as shown in messages.
        fmt: the source's format (``file_format`` or the archive name's), or None.
        pattern: ``options.archive_members``, or None.

    Raises:
        DataError: the file is not a zip archive, a chosen member is an archive or is
            password-protected, or no member is chosen.
        SpecError: a member chosen by ``pattern`` has no format to read it in.
    """
    try:
        infos = zipfile.ZipFile(raw).infolist()
    except zipfile.BadZipFile as exc:
        raise DataError(f"{archive} is not a readable zip archive ({exc})") from exc
    chosen: list[ArchiveMember] = []
    skipped: list[str] = []
    for info in infos:
        if info.is_dir():
            continue
        name = info.filename
        stem, compression = split_compression(name)
        member_fmt = _format_of(stem)
        if _hidden(name):
            wanted = False
        elif pattern:
            wanted = fnmatch.fnmatchcase(name, pattern)
            member_fmt = fmt or member_fmt
            if wanted and member_fmt is None:
                raise SpecError(
                    f"{archive}!{name}: options.archive_members chose it but its format cannot "
                    f"be told from its name; set file_format (one of: {', '.join(FORMATS)})"
                )
        else:
            wanted = member_fmt is not None and (fmt is None or member_fmt == fmt)
        if not wanted:
            skipped.append(name)
            continue
        if compression == "zip":
            raise DataError(
                f"{archive}!{name} is an archive inside the archive; nested archives are not "
                "read: unpack it, or leave it out with options.archive_members"
            )
        if info.flag_bits & 0x1:
            raise DataError(
                f"{archive}!{name} is encrypted with a zip password, which is not supported; "
                "use options.encryption: fernet on the whole file instead"
            )
        chosen.append(ArchiveMember(name, str(member_fmt), compression, info.file_size))
    if not chosen:
        listed = ", ".join(skipped[:20]) or "no file members"
        raise DataError(
            f"{archive}: no member to read ({listed}); set file_format or "
            "options.archive_members (a glob such as *.csv) to choose them"
        )
    if skipped:
        log.warning("%s: members not read (format/archive_members): %s", archive, skipped)
    return chosen, skipped


class _MemberFile(io.RawIOBase):
    """A member's bytes; closing it closes the archive and the file holding it."""

    def __init__(self, member: IO[bytes], archive: zipfile.ZipFile, raw: IO[bytes]):
        self._member = member
        self._archive = archive
        self._raw = raw

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._member.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            try:
                self._member.close()
                self._archive.close()
            finally:
                self._raw.close()
        super().close()


def open_member(raw: IO[bytes], member: str) -> IO[bytes]:
    """The decompressed bytes of ``member`` of the zip archive in ``raw`` (seekable), streamed;
    closing the result closes ``raw``."""
    archive = zipfile.ZipFile(raw)
    try:
        return io.BufferedReader(_MemberFile(archive.open(member), archive, raw), 1 << 20)
    except BaseException:
        archive.close()
        raw.close()
        raise


def member_label(archive_label: str, member: str) -> str:
    """How a member is named in ``_source_file`` and messages: ``orders.zip!jan.csv``."""
    return f"{archive_label}!{posixpath.normpath(member)}"
