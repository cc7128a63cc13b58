"""Files on a filesystem: CSV, TSV, JSON, JSON Lines, Parquet, Excel, XML and fixed-width
text, read and written (zip members, compressed and Fernet-encrypted files: see
:mod:`nexus_dagster.connectors.formats.content`).

The connector works on an fsspec filesystem, the local disk by default. Object stores and remote
filesystems (S3, Azure, GCS, SFTP, FTP) subclass :class:`FileConnector` and override the storage
hooks only:

* :meth:`FileConnector.filesystem` - the ``fsspec.AbstractFileSystem`` to use;
* :meth:`FileConnector.root` - the directory/bucket prefix relative paths resolve against;
* :meth:`FileConnector.location` - how a path is shown in messages (``s3://bucket/key``);
* :meth:`FileConnector.commit` - how a finished temporary file replaces the target.

Params (:class:`FileParams`):
    base_dir: optional root (relative: to the project root). Relative paths resolve against it
        and no path (read or written) may leave it, neither through ``..`` nor through a
        symbolic link.
    file_path / path: default path when a request names none.
    file_format: default format when a request names none (otherwise inferred from the
        extension).

Reading streams ``ReadRequest.batch_size`` rows per batch; a glob (``data/*.csv``) reads the
matching files in sorted order as one relation. Writing goes to ``.<name>.tmp-<uuid>`` in the
target's directory, is fsynced and renamed onto the target, so the target is either the old file
or the complete new one.
"""

from __future__ import annotations

import contextlib
import io
import os
import posixpath
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any, ClassVar

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
from fsspec.implementations.local import LocalFileSystem
from pydantic import AliasChoices, ConfigDict, Field

from nexus_dagster.connectors.archive import archive_files
from nexus_dagster.connectors.base import (
    AfterLoad,
    Connector,
    ConnectorParams,
    LoadResult,
    ReadRequest,
    WriteRequest,
)
from nexus_dagster.connectors.formats import READERS, fernet_stream
from nexus_dagster.connectors.formats.content import Content, ContentOpener
from nexus_dagster.connectors.formats.csv import read_csv_header, write_csv
from nexus_dagster.connectors.formats.excel import write_excel
from nexus_dagster.connectors.formats.fernet_stream import FernetWriter
from nexus_dagster.connectors.formats.fixed_width import fixed_widths, write_fixed_width
from nexus_dagster.connectors.formats.json import write_json, write_jsonl
from nexus_dagster.connectors.formats.names import (
    SEEKABLE_FORMATS,
    infer_format,
    normalize_format,
    split_compression,
    strip_encrypted_suffix,
)
from nexus_dagster.connectors.formats.options import (
    ReadOptions,
    normalize_encoding,
    parse_encryption,
)
from nexus_dagster.connectors.formats.parquet import write_parquet
from nexus_dagster.connectors.formats.schemas import unify_schemas
from nexus_dagster.connectors.formats.xml import write_xml, xml_options
from nexus_dagster.errors import ConnectorError, DataError, LoadError, NexusError, SpecError
from nexus_dagster.relation import Relation, conform, rebatch

__all__ = ["FileConnector", "FileParams", "has_glob", "is_temp_file"]

_GLOB_CHARS = frozenset("*?[")
_WRITE_FORMATS = frozenset(
    {"csv", "tsv", "json", "jsonl", "parquet", "excel", "xml", "fixed_width"}
)
_STREAM_COMPRESSIONS = frozenset({"gzip", "bz2", "xz", "zstd"})
#: file format -> the Dagster kind shown on assets
_FORMAT_KINDS = {"csv": "csv", "tsv": "csv", "json": "json", "jsonl": "json",
                 "parquet": "parquet", "excel": "excel", "xlsx": "excel", "xml": "xml"}


def has_glob(path: str) -> bool:
    """True when ``path`` is a glob pattern (``*``, ``?`` or ``[``)."""
    return any(c in _GLOB_CHARS for c in path)


def _is_relative_local(path: object) -> bool:
    """True for a non-empty relative path on the local disk (not a URL, not ``~/...``)."""
    return (
        isinstance(path, str)
        and bool(path)
        and "://" not in path
        and not path.startswith("~")
        and not Path(path).is_absolute()
    )


def is_temp_file(path: str) -> bool:
    """True for a temporary file of an unfinished write (``.<name>.tmp-<uuid>``)."""
    base = posixpath.basename(path)
    return base.startswith(".") and ".tmp-" in base


class FileParams(ConnectorParams):
    """The ``connection_params`` of a ``file`` source or target; all optional, unknown keys are
    errors.

    Example:
        >>> FileParams.model_validate({"base_dir": "data", "path": "in/*.csv"}).file_path
        'in/*.csv'
    """

    model_config = ConfigDict(extra="forbid")

    base_dir: str | None = Field(
        None,
        description="the folder every path is confined to; relative paths resolve against it "
        "(a relative base_dir against the project root)",
    )
    file_path: str | None = Field(
        None,
        validation_alias=AliasChoices("file_path", "path"),
        description="the default path or glob when the spec names none",
    )
    file_format: str | None = Field(
        None,
        description="the default format (csv, tsv, json, jsonl, parquet, excel, xml, "
        "fixed_width) when the spec names none; otherwise inferred from the extension",
    )


class FileConnector(Connector):
    """Source and target for files on an fsspec filesystem (local disk by default)."""

    kinds: ClassVar[tuple[str, ...]] = ("file",)
    is_source: ClassVar[bool] = True
    is_target: ClassVar[bool] = True
    write_modes: ClassVar[frozenset[str]] = frozenset({"append", "overwrite"})
    after_load_actions: ClassVar[frozenset[str]] = frozenset({"delete", "move_to"})
    source_requires: ClassVar[tuple[tuple[str, ...], ...]] = (("file_path",),)
    target_requires: ClassVar[tuple[tuple[str, ...], ...]] = (("file_path",),)
    Params: ClassVar[type[FileParams]] = FileParams
    config: FileParams

    def __init__(self, params: Mapping[str, Any] | None = None):
        super().__init__(params or {})
        self._fs: fsspec.AbstractFileSystem | None = None

    # ------------------------------------------------------------------ storage hooks

    @classmethod
    def prepare_params(cls, params: Mapping[str, Any], *, root: Path, role: str) -> dict[str, Any]:
        """A relative ``base_dir`` is taken from the project root; without a ``base_dir``, so is
        a relative default ``file_path``/``path``."""
        prepared = dict(params)
        if _is_relative_local(prepared.get("base_dir")):
            prepared["base_dir"] = str(Path(root) / prepared["base_dir"])
        elif not prepared.get("base_dir"):
            for name in ("file_path", "path"):
                if _is_relative_local(prepared.get(name)):
                    prepared[name] = str(Path(root) / prepared[name])
        return prepared

    def resolve_path(self, path: str | None, root: Path) -> str | None:
        """A relative local path is taken from the project root; URLs, absolute (or ``~``)
        paths and paths under a ``base_dir`` (resolved against it by :meth:`resolve`) stay as
        written."""
        if self.config.base_dir or not _is_relative_local(path):
            return path
        return str(Path(root) / str(path))

    @classmethod
    def spec_problems(
        cls, role: str, table: str | None, options: Mapping[str, Any], params: Mapping[str, Any]
    ) -> list[tuple[str, str, str]]:
        """The format options, checked at load time: a source's reader options (widths,
        colspecs, names, encryption, archive_members, ...), a target's encryption and widths."""
        try:
            if role == "source":
                ReadOptions.parse(options)
            else:
                parse_encryption(options.get("encryption"))
                if options.get("widths") is not None or options.get("colspecs") is not None:
                    fixed_widths(options)
        except SpecError as exc:
            return [("options", exc.problems[0].message, "see the file options in the README")]
        return []

    @classmethod
    def asset_kinds(
        cls, type_name: str, params: Mapping[str, Any], file_format: str | None = None
    ) -> set[str]:
        """The file format (csv, json, parquet, excel), plus the system for remote stores."""
        kinds = {_FORMAT_KINDS[file_format]} if file_format in _FORMAT_KINDS else set()
        if type_name != "file":
            kinds.add(type_name)
        return kinds or {type_name}

    def filesystem(self) -> fsspec.AbstractFileSystem:
        """The fsspec filesystem holding the files. Subclasses return theirs (s3fs, adlfs...)."""
        if self._fs is None:
            self._fs = fsspec.filesystem("file")
        return self._fs

    @property
    def is_local(self) -> bool:
        """True when the filesystem is the local disk (symlinks and fsync apply)."""
        return isinstance(self.filesystem(), LocalFileSystem)

    def root(self) -> str | None:
        """The directory every relative path resolves against, or None (no confinement).

        The default is the ``base_dir`` param, made absolute on the local disk.
        """
        base = self.config.base_dir
        if not base:
            return None
        base = self._strip_protocol(str(base))
        if self.is_local:
            return os.path.abspath(os.path.expanduser(base))
        return posixpath.normpath(base).rstrip("/") or "/"

    def _strip_protocol(self, path: str) -> str:
        """Remove this filesystem's URL scheme from a user path (``file://`` for local)."""
        if self.is_local and path.startswith("file://"):
            return path[len("file://") :]
        return path

    def resolve(self, path: str) -> str:
        """The filesystem path for a user path (or glob), confined to :meth:`root`.

        Raises:
            ConnectorError: the path leaves the root, lexically (``..``, an absolute path
                elsewhere) or through a symbolic link.
        """
        raw = self._strip_protocol(str(path))
        if self.is_local:
            raw = os.path.expanduser(raw)
        root = self.root()
        if root is None:
            return os.path.abspath(raw) if self.is_local else raw
        candidate = raw if posixpath.isabs(raw) else posixpath.join(root, raw)
        candidate = posixpath.normpath(candidate)
        if not self._inside(candidate, root):
            raise ConnectorError(
                f"path {path!r} is outside base_dir {self.location(root)}; "
                "use a path inside base_dir"
            )
        self._check_links(candidate, path)
        return candidate

    @staticmethod
    def _inside(path: str, root: str) -> bool:
        root = root.rstrip("/") or "/"
        return path == root or path.startswith(root if root == "/" else root + "/")

    def _check_links(self, resolved: str, original: str) -> None:
        """Reject a path that escapes the root through a symbolic link (local disk only)."""
        root = self.root()
        if root is None or not self.is_local:
            return
        real = os.path.realpath(resolved)
        if not self._inside(real, os.path.realpath(root)):
            raise ConnectorError(
                f"path {original!r} leads outside base_dir {root} through a symbolic link"
            )

    def location(self, path: str) -> str:
        """How a resolved path is shown in messages and results (never holds a secret)."""
        return path

    def commit(self, temp_path: str, final_path: str) -> None:
        """Move a completely written temporary file onto the target path.

        Local disk: ``os.replace`` (atomic) and an fsync of the directory. Elsewhere
        ``fs.mv``; object stores override this when they have a better primitive.
        """
        if self.is_local:
            os.replace(temp_path, final_path)
            with contextlib.suppress(OSError):
                fd = os.open(os.path.dirname(final_path) or ".", os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        else:
            self.filesystem().mv(temp_path, final_path)

    def remove_stale_temps(self, folder: str, prefix: str) -> list[str]:
        """Delete the temporary files ``.<prefix>...`` in ``folder`` that an earlier write left
        when its process was killed (SIGKILL, power loss: no ``except`` ran); returns them.

        Called at the start of every write, for the target's own temporary files only. A
        write of the same target running at that moment (which the run guard prevents) would
        lose its temporary file and fail; it never corrupts the target.
        """
        fs = self.filesystem()
        try:
            found = fs.ls(folder, detail=False)
        except FileNotFoundError:
            return []
        stale = [p for p in found
                 if posixpath.basename(p).startswith(f".{prefix}") and is_temp_file(p)]
        for path in stale:
            with contextlib.suppress(FileNotFoundError):
                fs.rm(path)
        return stale

    # ------------------------------------------------------------------ Connector API

    def describe(self) -> str:
        """The resolved default path (``file_path`` param), else base_dir, else the cwd."""
        try:
            default = self.config.file_path
            if default:
                return self.location(self.resolve(str(default)))
            root = self.root()
            if root is not None:
                return self.location(root)
            return self.location(os.getcwd() if self.is_local else "/")
        except Exception:
            return "file"

    def test_connection(self) -> bool:
        """True when the root (or, without one, the filesystem) can be listed."""
        try:
            fs = self.filesystem()
            root = self.root()
            if root is None:
                return bool(fs.exists(os.getcwd() if self.is_local else "/"))
            return bool(fs.isdir(root))
        except Exception:
            return False

    def read(self, request: ReadRequest) -> Relation:
        """A lazy relation over one file or a glob of files.

        The schema is determined now (each file's head is peeked and the schemas unified);
        the rows are read only when the relation is iterated, ``request.batch_size`` at a time.

        Raises:
            ConnectorError: no such file, nothing matches the glob, or the path leaves
                base_dir.
            DataError: a file is empty, corrupt, or not in the given encoding.
            SpecError: bad options or an unknown format.
        """
        pattern = request.path or self.config.file_path
        if not pattern:
            raise SpecError("a file source needs a path (file_path)")
        opts = ReadOptions.parse(request.options)
        batch_size = max(1, int(request.batch_size or 50_000))
        files = self._expand(str(pattern), with_parts=opts.with_parts)
        fmt_param = request.file_format or self.config.file_format
        contents = ContentOpener(self.open_raw, opts.encryption)
        plans: list[Content] = []
        for path in files:
            name = self.location(path)
            if self.filesystem().size(path) == 0:
                raise DataError(f"file {name} is empty")
            plans.extend(contents.contents(path, name, self._source_label(path), fmt_param,
                                           opts.archive_members))

        schemas = []
        for plan in plans:
            reader = READERS[plan.fmt]
            schemas.append((plan.name, reader.schema(contents.opener(plan), plan.name, opts,
                                                     batch_size)))
        data_schema = unify_schemas(schemas)
        schema = data_schema
        source_column = opts.source_file_column
        if source_column:
            if source_column in data_schema.names:
                raise DataError(
                    f"the data already has a column {source_column!r}; set "
                    "options.source_file_column to another name"
                )
            schema = schema.append(pa.field(source_column, pa.string()))

        def file_batches() -> Iterator[pa.RecordBatch]:
            for plan in plans:
                reader = READERS[plan.fmt]
                for batch in reader.batches(
                    contents.opener(plan), plan.name, opts, data_schema, batch_size
                ):
                    try:
                        batch = conform(batch, data_schema)
                    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                        raise DataError(f"cannot read {plan.name}: {exc}") from exc
                    if source_column:
                        batch = batch.append_column(
                            pa.field(source_column, pa.string()),
                            pa.array([plan.label] * batch.num_rows, pa.string()),
                        )
                    yield batch

        def open_batches() -> Iterator[pa.RecordBatch]:
            return rebatch(file_batches(), batch_size)

        shown = self.location(self.resolve(str(pattern)))
        relation = Relation(schema, open_batches, name=f"file {shown}")
        relation.stats.update({"files": [plan.name for plan in plans]})
        relation.stats["paths"] = list(files)  # filesystem paths, for after_load
        if contents.skipped or contents.empty:
            relation.stats.update(
                {"skipped_members": contents.skipped, "empty_members": contents.empty}
            )
        return relation

    def after_load(
        self, relation: Relation, request: ReadRequest, action: AfterLoad
    ) -> dict[str, int]:
        """Delete the files this run read, or move them under ``action.move_to``
        (:func:`~nexus_dagster.connectors.archive.archive_files`)."""
        pattern = str(request.path or self.config.file_path)
        return archive_files(self, relation.stats.get("paths", []), pattern, action)

    def write(self, relation: Relation, request: WriteRequest) -> LoadResult:
        """Write the relation to a file, atomically.

        ``overwrite`` replaces the file; ``append`` adds rows to it (CSV/TSV/JSONL: old bytes
        then the new rows; JSON: old records then new; Parquet: old row groups then new ones,
        the schemas having to match) or creates it. Parent directories are created.

        Raises:
            LoadError: the write failed; the previous file is untouched and no temporary
                file is left behind.
            ConnectorError: the path leaves base_dir.
            SpecError: unknown format or write mode.
        """
        mode = request.write_mode
        if mode not in self.write_modes:
            raise SpecError(
                f"write_mode {mode!r} is not supported for files; use one of "
                f"{', '.join(sorted(self.write_modes))}"
            )
        target = request.path or self.config.file_path
        if not target:
            raise SpecError("a file target needs a path (file_path)")
        if has_glob(str(target)):
            raise SpecError(f"a file target cannot be a glob: {target!r}")
        final = self.resolve(str(target))
        fmt_param = request.file_format or self.config.file_format
        encryption = parse_encryption((request.options or {}).get("encryption"))
        plain = strip_encrypted_suffix(final) if encryption else final
        fmt = normalize_format(fmt_param) if fmt_param else infer_format(plain)
        _, compression = split_compression(plain)
        if compression and (fmt in SEEKABLE_FORMATS or compression not in {"gzip"}):
            raise SpecError(
                f"cannot write {fmt} compressed with {compression}; only csv/tsv/json/jsonl "
                "can be gzip-compressed"
            )
        options = dict(request.options or {})
        fs = self.filesystem()
        shown = self.location(final)
        if fs.isdir(final):
            raise LoadError(f"cannot write {shown}: it is a directory")
        parent = posixpath.dirname(final)
        fs.makedirs(parent, exist_ok=True)
        self._check_links(final, str(target))
        self.remove_stale_temps(parent, f"{posixpath.basename(final)}.tmp-")
        temp = posixpath.join(parent, f".{posixpath.basename(final)}.tmp-{uuid.uuid4().hex}")
        appending = mode == "append" and fs.exists(final) and fs.size(final) > 0
        batch_size = max(1, int(request.batch_size or 50_000))

        try:
            rows = self._write_temp(
                relation, fmt, compression, temp, final if appending else None, options, batch_size
            )
            if self.is_local and fs.exists(final):
                with contextlib.suppress(OSError):
                    os.chmod(temp, os.stat(final).st_mode & 0o7777)
            self.commit(temp, final)
        except BaseException as exc:
            with contextlib.suppress(Exception):
                if fs.exists(temp):
                    fs.rm(temp)
            if isinstance(exc, NexusError) or not isinstance(exc, Exception):
                raise
            raise LoadError(
                f"writing {shown} failed ({type(exc).__name__}: {exc}); the previous file "
                "was left unchanged"
            ) from exc

        size = None
        with contextlib.suppress(Exception):
            size = fs.size(final)
        return LoadResult(
            rows_loaded=rows,
            location=shown,
            rows_inserted=rows,
            extra={"file_format": fmt, "write_mode": mode, "appended": appending, "bytes": size},
        )

    # ------------------------------------------------------------------ reading helpers

    def _expand(self, pattern: str, with_parts: bool = False) -> list[str]:
        """The files a path or glob names, sorted (local files have no append parts)."""
        fs = self.filesystem()
        resolved = self.resolve(pattern)
        shown = self.location(resolved)
        if has_glob(resolved):
            try:
                found = fs.glob(resolved, detail=True)
            except FileNotFoundError:
                found = {}
            files = sorted(
                path
                for path, info in found.items()
                if info.get("type") == "file" and not is_temp_file(path)
            )
            if not files:
                raise ConnectorError(f"no file matches {shown}")
            for path in files:
                self._check_links(path, pattern)
            return files
        if not fs.exists(resolved):
            raise ConnectorError(f"file not found: {shown}")
        if fs.isdir(resolved):
            raise ConnectorError(
                f"{shown} is a directory; name a file or a glob such as {shown}/*.csv"
            )
        return [resolved]

    def _source_label(self, path: str) -> str:
        """The ``_source_file`` value: the path relative to base_dir, else the shown path."""
        root = self.root()
        if root is not None and self._inside(path, root) and path != root:
            return path[len(root.rstrip("/")) + 1 :]
        return self.location(path)

    def read_options(self) -> dict[str, Any]:
        """Extra ``fs.open`` arguments for reading (remote stores: block size, cache type)."""
        return {}

    def open_raw(self, path: str) -> IO[bytes]:
        """``path`` opened for reading as stored (no decompression): a seekable file of the
        filesystem with this connector's read options (block size, read cache)."""
        return self.filesystem().open(path, "rb", **self.read_options())

    # ------------------------------------------------------------------ writing helpers

    def _write_temp(
        self,
        relation: Relation,
        fmt: str,
        compression: str | None,
        temp: str,
        existing: str | None,
        options: dict[str, Any],
        batch_size: int,
    ) -> int:
        """Write the whole new file content to ``temp``; return the new rows written."""
        fs = self.filesystem()
        schema = _plain_schema(relation.schema)
        shown = self.location(existing) if existing else ""
        delimiter = (
            options.get("delimiter") or options.get("sep") or ("\t" if fmt == "tsv" else ",")
        )
        delimiter = {"\\t": "\t", "tab": "\t"}.get(delimiter, delimiter)
        encoding = normalize_encoding(options.get("encoding") or "utf8")

        encryption = parse_encryption(options.get("encryption"))
        if existing and encryption:
            raise LoadError(
                f"appending to an encrypted file ({shown}) is not supported; use write_mode "
                "overwrite (object stores and SFTP/FTP append a new encrypted part file)"
            )
        prior = None
        header = bool(options.get("header", True))
        if existing and fmt in ("csv", "tsv") and header:
            with fs.open(existing, "rb", compression=compression) as f:
                old_names = read_csv_header(f, delimiter, encoding)
            schema = _match_columns(old_names, schema, shown)
        elif existing and fmt == "parquet":
            prior_file = fs.open(existing, "rb")
            try:
                prior = pq.ParquetFile(prior_file)
            except (pa.ArrowException, OSError) as exc:
                prior_file.close()
                raise LoadError(
                    f"cannot append to {shown}: not a readable parquet file ({exc})"
                ) from exc
            schema = _match_parquet(prior.schema_arrow, schema, shown)
        elif existing and fmt in ("excel", "xml"):
            raise LoadError(
                f"appending to an {fmt} file ({shown}) is not supported; use write_mode overwrite"
            )

        def batches() -> Iterator[pa.RecordBatch]:
            for batch in relation:
                yield conform(batch, schema)

        with fs.open(temp, "wb") as raw:
            if existing and fmt in ("csv", "tsv", "jsonl", "fixed_width"):
                self._copy_raw(existing, raw, compression)
            sink: Any = raw
            sealed = None
            if encryption:
                sealed = sink = FernetWriter(raw, fernet_stream.keys()[0])
            gz = None
            if compression == "gzip":
                import gzip

                gz = gzip.GzipFile(fileobj=sink, mode="wb", filename="")
                sink = gz
            try:
                if fmt in ("csv", "tsv"):
                    rows = write_csv(
                        sink,
                        batches(),
                        schema,
                        delimiter=delimiter,
                        header=header and not existing,
                        encoding=encoding,
                    )
                elif fmt == "jsonl":
                    rows = write_jsonl(sink, batches(), schema)
                elif fmt == "json":
                    prefix = self._json_prefix(existing, compression) if existing else ()
                    rows = write_json(sink, batches(), schema, prefix=prefix)
                elif fmt == "parquet":
                    rows = write_parquet(
                        sink,
                        batches(),
                        schema,
                        row_group_size=int(options.get("row_group_size") or batch_size),
                        compression=str(options.get("compression") or "snappy"),
                        prior=prior,
                    )
                elif fmt == "xml":
                    rows = write_xml(sink, batches(), schema, **xml_options(options))
                elif fmt == "fixed_width":
                    rows = write_fixed_width(
                        sink,
                        batches(),
                        schema,
                        widths=fixed_widths(options),
                        header=bool(options.get("header", False)),
                        encoding=encoding,
                    )
                else:
                    rows = write_excel(
                        sink,
                        batches(),
                        schema,
                        sheet_name=str(options.get("sheet_name") or "Sheet1"),
                    )
            finally:
                if gz is not None:
                    gz.close()
                if sealed is not None:
                    sealed.close()
                if prior is not None:
                    prior.close()
            raw.flush()
            with contextlib.suppress(AttributeError, OSError, io.UnsupportedOperation):
                os.fsync(raw.fileno())
        return rows

    def _copy_raw(self, existing: str, raw: IO[bytes], compression: str | None) -> None:
        """Copy the old file's bytes as they are, ending with a newline (append)."""
        fs = self.filesystem()
        last = b"\n"
        with fs.open(existing, "rb") as old:
            while chunk := old.read(1 << 20):
                raw.write(chunk)
                last = chunk[-1:]
        if compression is None and last != b"\n":
            raw.write(b"\n")
        elif compression == "gzip":
            # gzip members concatenate; the decompressed text must still end with a newline
            tail = b"\n"
            with fs.open(existing, "rb", compression="gzip") as old:
                while chunk := old.read(1 << 20):
                    tail = chunk[-1:]
            if tail != b"\n":
                import gzip

                with gzip.GzipFile(fileobj=raw, mode="wb", filename="") as gz:
                    gz.write(b"\n")

    def _json_prefix(self, existing: str, compression: str | None) -> Iterator[str]:
        """The records of an existing JSON array file, re-encoded (append; in memory)."""
        import json

        with self.filesystem().open(existing, "rb", compression=compression) as f:
            try:
                document = json.loads(f.read())
            except (ValueError, UnicodeDecodeError) as exc:
                raise LoadError(
                    f"cannot append to {self.location(existing)}: not a JSON document ({exc})"
                ) from exc
        if not isinstance(document, list):
            raise LoadError(f"cannot append to {self.location(existing)}: it is not a JSON array")
        for record in document:
            yield json.dumps(record, ensure_ascii=False)


def _plain_schema(schema: pa.Schema) -> pa.Schema:
    """The schema with dictionary columns decoded (writers take plain value types)."""
    return pa.schema(
        [
            pa.field(f.name, f.type.value_type if pa.types.is_dictionary(f.type) else f.type)
            for f in schema
        ]
    )


def _match_columns(old_names: list[str], schema: pa.Schema, shown: str) -> pa.Schema:
    """The new rows' schema in the existing CSV's column order, or a LoadError naming columns."""
    if not old_names:
        return schema
    new_names = list(schema.names)
    missing = [n for n in old_names if n not in new_names]
    extra = [n for n in new_names if n not in old_names]
    if missing or extra or len(old_names) != len(new_names):
        parts = []
        if missing:
            parts.append(f"missing from the new rows: {', '.join(missing)}")
        if extra:
            parts.append(f"not in the file: {', '.join(extra)}")
        if not parts:
            parts.append(f"file columns {old_names} vs new columns {new_names}")
        raise LoadError(f"cannot append to {shown}: columns differ ({'; '.join(parts)})")
    return pa.schema([schema.field(n) for n in old_names])


def _match_parquet(old: pa.Schema, new: pa.Schema, shown: str) -> pa.Schema:
    """The existing Parquet schema if the new rows fit it, else a LoadError naming columns."""
    missing = [n for n in old.names if n not in new.names]
    extra = [n for n in new.names if n not in old.names]
    problems = []
    if missing:
        problems.append(f"missing from the new rows: {', '.join(missing)}")
    if extra:
        problems.append(f"not in the file: {', '.join(extra)}")
    for f in old:
        if f.name in new.names:
            new_type = new.field(f.name).type
            if new_type != f.type and not _castable(new_type, f.type):
                problems.append(f"column {f.name} is {f.type} in the file but {new_type} now")
    if problems:
        raise LoadError(f"cannot append to {shown}: schema differs ({'; '.join(problems)})")
    return pa.schema([pa.field(f.name, f.type) for f in old])


def _castable(source: pa.DataType, target: pa.DataType) -> bool:
    """Whether values of ``source`` go into ``target`` without changing meaning."""
    if pa.types.is_null(source):
        return True
    if pa.types.is_integer(source) and pa.types.is_integer(target):
        return True
    if pa.types.is_integer(source) and pa.types.is_floating(target):
        return True
    if pa.types.is_floating(source) and pa.types.is_floating(target):
        return True
    if pa.types.is_timestamp(source) and pa.types.is_timestamp(target):
        return (source.tz is None) == (target.tz is None)
    if pa.types.is_decimal(source) and pa.types.is_decimal(target):
        return target.scale >= source.scale and (
            target.precision - target.scale >= source.precision - source.scale
        )
    string_types = (pa.string(), pa.large_string())
    return source in string_types and target in string_types
