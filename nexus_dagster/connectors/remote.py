"""What object stores and remote filesystems share on top of :class:`FileConnector`.

:class:`RemoteFileConnector` keeps every format on the file connector's single code path and
changes only the storage:

* paths resolve against the bucket/container (object stores) or ``base_dir`` (SFTP, FTP; ``/``
  by default) and may not leave it; object stores also accept their URL form
  (``s3://bucket/key``);
* a *prefix* (a folder, or a path ending in ``/``) reads every file under it, in sorted order;
* ``write_mode: overwrite`` writes ``.<name>.tmp-<uuid>`` next to the target and then moves it
  onto the final name (server-side copy on object stores, an atomic rename on SFTP/FTP), so the
  final name never holds a half-written object; it then deletes the part files earlier
  ``append`` runs left under ``<dir>/<stem>/``, so the dataset is the new object alone. The order
  (new object first, old parts after) means a failed overwrite deletes nothing, and no reader
  ever sees new rows next to old parts: the object name shows old-or-new, the parts prefix
  shows old parts only, then nothing;
* ``write_mode: append`` never rewrites what is there: each load adds a new part file
  ``<dir>/<stem>/part-<UTC timestamp>-<run id>.<ext>`` (time first, so the parts sort in load
  order); read them all back with the prefix ``<dir>/<stem>/`` or a glob such as
  ``<dir>/<stem>/*.parquet``;
* reads go through ranged requests of ``block_size`` bytes (default 8 MiB) with a
  ``readahead`` cache on object stores, so a large object is parsed block by block, never
  downloaded whole (``cache_type`` may be set to ``none`` / ``bytes`` / ...);
* errors from the store are wrapped in :class:`~nexus_dagster.errors.ConnectorError` naming the
  connection and the parameters to check, with every secret parameter masked.

Subclasses set :attr:`protocol`, :attr:`system`, :attr:`auth_params`, their typed ``Params``
(extending :class:`RemoteParams`, or :class:`ObjectStoreParams` for bucket stores) and build
their filesystem in :meth:`RemoteFileConnector.open_filesystem`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import posixpath
import re
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

import fsspec
from pydantic import Field, SecretStr

from nexus_dagster import secrets
from nexus_dagster.connectors.base import LoadResult, ReadRequest, WriteRequest
from nexus_dagster.connectors.file import FileConnector, FileParams, has_glob, is_temp_file
from nexus_dagster.connectors.formats.names import split_compression
from nexus_dagster.errors import ConnectorError, NexusError, SpecError
from nexus_dagster.relation import Relation

__all__ = [
    "ObjectStoreParams",
    "RemoteFileConnector",
    "RemoteParams",
    "file_version",
    "part_path",
]

#: default bytes per ranged GET when reading from an object store
DEFAULT_BLOCK_SIZE = 8 * 2**20

_AUTH_WORDS = (
    "authenticat", "credential", "accessdenied", "access denied", "forbidden", "403",
    "signature", "invalidaccesskeyid", "not authorized", "login incorrect", "530",
    "permission denied", "password", "key",
)


class RemoteParams(FileParams):
    """What every remote store accepts besides its own settings: ``base_dir``, a default
    ``file_path`` and ``file_format``. Unknown keys are errors."""

    base_dir: str | None = Field(
        None,
        description="the prefix (object stores) or server folder (SFTP/FTP, default /) every "
        "path resolves against and may not leave",
    )


class ObjectStoreParams(RemoteParams):
    """:class:`RemoteParams` plus the ranged-read settings of bucket stores (S3, Azure, GCS)."""

    block_size: int | None = Field(
        None, ge=1, description="bytes per ranged GET when reading (default 8 MiB)"
    )
    cache_type: str | None = Field(
        None, description="the fsspec read cache (default readahead; none for no read-ahead)"
    )


def _part_layout(target: str) -> tuple[str, str]:
    """The folder the parts of ``target`` go to and their extension (``.csv.gz``)."""
    directory, name = posixpath.split(target)
    base, compression = split_compression(name)
    stem, ext = posixpath.splitext(base)
    if compression:
        ext += name[len(base):]
    return posixpath.join(directory, stem or name), ext


def part_path(target: str, run_id: str | None, now: dt.datetime | None = None) -> str:
    """The part file an append writes for ``target``: ``<dir>/<stem>/part-<time>-<run>.<ext>``.

    Example:
        >>> part_path("exports/orders.csv.gz", "1a2b3c4d-x", dt.datetime(2024, 5, 1, 12))
        'exports/orders/part-20240501T120000000000Z-1a2b3c4d.csv.gz'
    """
    folder, ext = _part_layout(target)
    stamp = (now or dt.datetime.now(dt.UTC)).strftime("%Y%m%dT%H%M%S%fZ")
    run = (run_id or uuid.uuid4().hex)[:8]
    return posixpath.join(folder, f"part-{stamp}-{run}{ext}")


def is_part_of(path: str, target: str) -> bool:
    """Whether ``path`` is a part file an ``append`` to ``target`` wrote (:func:`part_path`).

    Example:
        >>> is_part_of("x/orders/part-20240501T120000000000Z-1a2b3c4d.csv", "x/orders.csv")
        True
    """
    folder, ext = _part_layout(target)
    name = rf"part-\d{{8}}T\d{{12}}Z-[^/]+{re.escape(ext)}"
    return posixpath.dirname(path) == folder and bool(re.fullmatch(name, posixpath.basename(path)))


def file_version(info: Mapping[str, Any]) -> str:
    """A value that changes when a file changes: its ETag / generation / mtime, plus its size."""
    for key in ("ETag", "etag", "md5Hash", "generation", "mtime", "modify", "LastModified",
                "last_modified", "updated", "created"):
        value = info.get(key)
        if value not in (None, ""):
            if isinstance(value, dt.datetime):
                value = value.isoformat()
            return f"{str(value).strip(chr(34))}:{info.get('size')}"
    return str(info.get("size"))


class RemoteFileConnector(FileConnector):
    """Base of the S3, Azure Blob, GCS, SFTP and FTP connectors (see the module docstring)."""

    #: fsspec protocol, also the scheme shown in locations (``s3``, ``az``, ``gs``, ...)
    protocol: ClassVar[str] = ""
    #: the system's name in messages
    system: ClassVar[str] = ""
    #: True for bucket/container stores (paths start with the bucket, no real directories)
    object_store: ClassVar[bool] = True
    #: the param holding the bucket/container name (object stores)
    bucket_param: ClassVar[str] = "bucket"
    #: params a user should check when the store refuses the credentials
    auth_params: ClassVar[tuple[str, ...]] = ()
    Params: ClassVar[type[RemoteParams]] = RemoteParams
    config: RemoteParams

    def __init__(self, params: Mapping[str, Any] | None = None):
        super().__init__(params)
        for name in type(self.config).model_fields:
            value = getattr(self.config, name)
            if isinstance(value, SecretStr):
                secrets.register_secret(value.get_secret_value())

    # ------------------------------------------------------------------ hooks for subclasses

    @classmethod
    def prepare_params(cls, params: Mapping[str, Any], *, root: Path, role: str) -> dict[str, Any]:
        """Remote stores have no local paths to resolve."""
        return dict(params)

    def read_back(self, request: WriteRequest) -> ReadRequest:
        """The object and every part file appends added to it (``with_parts``)."""
        back = super().read_back(request)
        return replace(back, options={**back.options, "with_parts": True})

    def resolve_path(self, path: str | None, root: Path) -> str | None:
        """Keys and remote paths are relative to the bucket/container/server, never to the
        project root: kept as written."""
        return path

    def open_filesystem(self) -> fsspec.AbstractFileSystem:
        """Build the fsspec filesystem from ``self.config`` (called once, lazily)."""
        raise NotImplementedError

    def endpoint(self) -> str:
        """Where the store is, for messages (host:port, account), never with a secret."""
        return ""

    # ------------------------------------------------------------------ storage hooks

    def filesystem(self) -> fsspec.AbstractFileSystem:
        if self._fs is None:
            with self.errors("connect"):
                self._fs = self.open_filesystem()
        return self._fs

    @property
    def is_local(self) -> bool:
        return False

    def bucket(self) -> str:
        """The bucket/container (object stores)."""
        name = str(getattr(self.config, self.bucket_param, None) or "").strip("/")
        if not name:
            raise SpecError(
                f"a {self.system} connection needs {self.bucket_param} in connection_params"
            )
        return name

    def root(self) -> str:
        """Object stores: ``bucket[/base_dir]``; SFTP/FTP: ``base_dir`` (default ``/``)."""
        base = str(self.config.base_dir or "").strip()
        if self.object_store:
            prefix = posixpath.normpath("/" + base.lstrip("/")).strip("/") if base else ""
            return posixpath.join(self.bucket(), prefix) if prefix else self.bucket()
        return posixpath.normpath("/" + base.lstrip("/")) if base else "/"

    def resolve(self, path: str) -> str:
        """The filesystem path of a user path, glob or URL, confined to :meth:`root`.

        Raises:
            ConnectorError: the path leaves the bucket/container or base_dir.
        """
        raw = str(path)
        root = self.root()
        scheme = f"{self.protocol}://"
        if raw.startswith(scheme) and self.object_store:
            candidate = raw[len(scheme):]
        elif self.object_store:
            candidate = (
                posixpath.join(self.bucket(), raw.lstrip("/")) if raw.startswith("/")
                else posixpath.join(root, raw)
            )
        else:
            candidate = raw if raw.startswith("/") else posixpath.join(root, raw)
        trailing = "/" if raw.endswith("/") else ""
        candidate = posixpath.normpath(candidate)
        if candidate.startswith("//"):
            candidate = candidate[1:]
        if not self._inside(candidate, root):
            inside = f"the {self.bucket_param} and base_dir" if self.object_store else "base_dir"
            raise ConnectorError(
                f"path {path!r} is outside {self.location(root)}; use a path inside {inside}"
            )
        return candidate + trailing if candidate != "/" else candidate

    def location(self, path: str) -> str:
        """``<protocol>://bucket/key`` or ``<protocol>://host:port/path``."""
        if self.object_store:
            return f"{self.protocol}://{path.lstrip('/')}"
        return f"{self.protocol}://{self.endpoint()}{path}"

    def commit(self, temp_path: str, final_path: str) -> None:
        """Object stores: server-side copy of the finished temporary object onto the final key
        (the key shows the old object until the copy completes, then the whole new one), then
        delete the temporary object. SFTP/FTP: a rename."""
        fs = self.filesystem()
        if not self.object_store:
            fs.mv(temp_path, final_path)
            return
        fs.copy(temp_path, final_path)
        fs.rm(temp_path)

    def read_options(self) -> dict[str, Any]:
        """Object stores: ranged reads of ``block_size`` bytes through a ``cache_type`` cache
        (``readahead`` by default): memory stays at about one block per open file."""
        config = self.config
        if not self.object_store or not isinstance(config, ObjectStoreParams):
            return {}
        return {
            "block_size": config.block_size or DEFAULT_BLOCK_SIZE,
            "cache_type": config.cache_type or "readahead",
        }

    def user_path(self, fs_path: str) -> str:
        """A form of a filesystem path that :meth:`resolve` maps back to it."""
        return self.location(fs_path) if self.object_store else fs_path

    # ------------------------------------------------------------------ Connector API

    def describe(self) -> str:
        try:
            return self.location(self.root())
        except Exception:
            return self.system

    def test_connection(self) -> bool:
        try:
            fs = self.filesystem()
            fs.ls(self.root())
            return True
        except Exception:
            return False

    def read(self, request: ReadRequest) -> Relation:
        """A lazy relation over one object, a glob or a prefix (see the module docstring)."""
        with self.errors("read"):
            return super().read(request)

    def write(self, relation: Relation, request: WriteRequest) -> LoadResult:
        """Overwrite the target atomically, or append a new part file next to it."""
        mode = request.write_mode
        target = request.path or self.config.file_path
        if mode == "append" and target and not has_glob(str(target)):
            part = part_path(str(target), request.run_id)
            with self.errors("write"):
                # parts are named per run: a killed run's temporary part is any ".part-*.tmp-"
                self.remove_stale_temps(posixpath.dirname(self.resolve(part)), "part-")
                result = super().write(relation, replace(request, path=part,
                                                         write_mode="overwrite"))
            result.extra.update({"write_mode": "append", "part": result.location})
            return result
        with self.errors("write"):
            result = super().write(relation, request)
        if mode == "overwrite" and target and not has_glob(str(target)):
            removed = self._drop_parts(self.resolve(str(target)))
            if removed:
                result.extra["parts_removed"] = removed
        return result

    def close(self) -> None:
        """Drop the filesystem (SFTP/FTP subclasses also close their session)."""
        self._fs = None

    # ------------------------------------------------------------------ helpers

    def _drop_parts(self, final: str) -> int:
        """Delete the part files of earlier appends to ``final`` (after it was overwritten)."""
        fs = self.filesystem()
        folder, _ = _part_layout(final)
        with self.errors("list parts of"):
            try:
                found = fs.find(folder) if fs.isdir(folder) else []
            except FileNotFoundError:
                found = []
        parts = sorted(p for p in found if is_part_of(p, final))
        if not parts:
            return 0
        try:
            fs.rm(parts)
            if not self.object_store and not fs.ls(folder):
                fs.rmdir(folder)
        except Exception as exc:
            raise ConnectorError(
                f"{self.location(final)} was overwritten but the old part files under "
                f"{self.location(folder)}/ could not all be deleted "
                f"({secrets.mask(f'{type(exc).__name__}: {exc}')[:300]}); delete them, or run "
                "the overwrite again"
            ) from None
        return len(parts)

    @contextlib.contextmanager
    def errors(self, action: str) -> Iterator[None]:
        """Turn a store's exception into a ConnectorError naming what to check, secrets masked."""
        try:
            yield
        except NexusError as exc:
            text = secrets.mask(str(exc))
            if text != str(exc):
                raise type(exc)(text) from None
            raise
        except Exception as exc:
            detail = secrets.mask(f"{type(exc).__name__}: {exc}")[:400]
            where = self.describe()
            if _looks_like_auth(exc):
                raise ConnectorError(
                    f"{self.system} at {self.endpoint() or where} refused the credentials "
                    f"({action} {where}): check {', '.join(self.auth_params)} in the connection "
                    f"params ({detail})"
                ) from None
            if isinstance(exc, FileNotFoundError):
                raise ConnectorError(f"{self.system}: not found ({action} {where}): {detail}") \
                    from None
            if isinstance(exc, ConnectionError | TimeoutError | OSError) and not isinstance(
                exc, PermissionError
            ):
                raise ConnectorError(
                    f"cannot reach {self.system} at {self.endpoint() or where} ({action}): "
                    f"{detail}; check host/port or endpoint and that the server is running"
                ) from None
            raise ConnectorError(f"{self.system} {action} of {where} failed: {detail}") from None

    def _expand(self, pattern: str, with_parts: bool = False) -> list[str]:
        """A path, a glob or a prefix (every file under a folder), sorted; ``with_parts``: the
        file and the part files appends wrote for it (see :func:`part_path`)."""
        fs = self.filesystem()
        resolved = self.resolve(pattern)
        if with_parts and not has_glob(resolved) and not resolved.endswith("/"):
            folder, _ = _part_layout(resolved)
            parts = sorted(
                p for p in (fs.find(folder) if fs.isdir(folder) else []) if is_part_of(p, resolved)
            )
            files = ([resolved] if fs.isfile(resolved) else []) + parts
            if not files:
                raise ConnectorError(
                    f"no file {self.location(resolved)} and no part file under "
                    f"{self.location(folder)}/"
                )
            return files
        if has_glob(resolved):
            return super()._expand(pattern)
        bare = resolved.rstrip("/") or "/"
        if resolved.endswith("/") or fs.isdir(bare):
            found = fs.find(bare, detail=True)
            files = sorted(
                p for p, info in found.items()
                if info.get("type") == "file" and not is_temp_file(p)
                and not posixpath.basename(p).startswith(".")
            )
            if not files:
                raise ConnectorError(f"no file under {self.location(bare)}/")
            return files
        return super()._expand(pattern)


def _looks_like_auth(exc: BaseException) -> bool:
    names = {type(e).__name__ for e in _chain(exc)}
    if names & {"AuthenticationException", "BadAuthenticationType", "ClientAuthenticationError",
                "PermissionError", "SSHException", "DefaultCredentialsError", "RefreshError",
                "error_perm", "MalformedError"}:
        text = " ".join(str(e).lower() for e in _chain(exc))
        return "no such file" not in text and "not found" not in text
    text = " ".join(str(e).lower() for e in _chain(exc))
    return any(word in text for word in _AUTH_WORDS[:10])


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 10:
        yield current
        current = current.__cause__ or current.__context__
        seen += 1
