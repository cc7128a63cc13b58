"""``after_load`` on file and object-store sources: delete the files read, or move them under
an archive folder/prefix, once every target committed.

A moved file keeps its path below the read's base (the folder of the file, of the glob's
first wildcard, or the prefix read), so ``in/2024/a.csv`` read by ``in/**/*.csv`` with
``move_to: done/`` lands at ``done/2024/a.csv``; a name already taken there gets the UTC time
appended (``a-20240101T020000Z.csv``), so an archive never overwrites an earlier file.

Example:
    >>> archive_files(connector, ["/data/in/a.csv"], "in/*.csv",
    ...               AfterLoad(move_to="done/"))  # doctest: +SKIP
    {'files_moved': 1}
"""

from __future__ import annotations

import datetime as dt
import posixpath
import re
from collections.abc import Sequence
from typing import Any

from nexus_dagster import secrets
from nexus_dagster.connectors.base import AfterLoad
from nexus_dagster.errors import ConnectorError

__all__ = ["archive_files", "read_base"]

_GLOB = re.compile(r"[*?\[]")


def read_base(resolved: str, is_dir: bool) -> str:
    """The folder the files of a read are placed below: a prefix or folder read as such, the
    part of a glob before its first wildcard, or a file's folder."""
    match = _GLOB.search(resolved)
    if match:
        return posixpath.dirname(resolved[: match.start()]).rstrip("/") or "/"
    if is_dir or resolved.endswith("/"):
        return resolved.rstrip("/") or "/"
    return posixpath.dirname(resolved) or "/"


def _free_name(fs: Any, path: str) -> str:
    if not fs.exists(path):
        return path
    stem, ext = posixpath.splitext(path)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    return f"{stem}-{stamp}{ext}"


def archive_files(
    connector: Any, paths: Sequence[str], pattern: str, action: AfterLoad
) -> dict[str, int]:
    """Delete or move ``paths`` (filesystem paths a read of ``pattern`` returned) with the
    connector's filesystem; ``action.move_to`` is confined to the connector's root like any
    path.

    Raises:
        ConnectorError: a file could not be deleted or moved; the message says how many were
            and which one failed (the load itself is committed).
    """
    fs = connector.filesystem()
    object_store = bool(getattr(connector, "object_store", False))
    done = 0
    verb = "deleted" if action.delete else "moved"
    current = ""
    try:
        if action.delete:
            for current in paths:
                fs.rm(current)
                done += 1
            return {"files_deleted": done}
        resolved = connector.resolve(pattern)
        base = read_base(resolved, not _GLOB.search(resolved) and fs.isdir(resolved.rstrip("/")))
        root = connector.resolve(str(action.move_to)).rstrip("/")
        for current in paths:
            inside = current.startswith(base.rstrip("/") + "/")
            relative = current[len(base.rstrip("/")) + 1:] if inside else posixpath.basename(
                current)
            destination = _free_name(fs, posixpath.join(root, relative))
            if object_store:  # a server-side copy, then the delete (as loads commit)
                fs.copy(current, destination)
                fs.rm(current)
            else:
                fs.makedirs(posixpath.dirname(destination), exist_ok=True)
                fs.mv(current, destination)
            done += 1
        return {"files_moved": done}
    except Exception as exc:
        detail = secrets.mask(f"{type(exc).__name__}: {exc}")[:300]
        raise ConnectorError(
            f"after_load: the load committed, but only {done} of {len(paths)} file(s) were "
            f"{verb}; {connector.location(current)} failed ({detail}). The files left will "
            "be read again by the next run; fix the cause (permissions, the move_to folder) "
            f"or {'delete' if action.delete else 'move'} them by hand"
        ) from None
