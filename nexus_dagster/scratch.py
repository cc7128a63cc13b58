"""Scratch folders that a killed run cannot leave behind for long.

A folder is named ``<prefix><pid>-<random>`` in the system temp directory (or ``parent``). A
process that ends normally removes its own; one killed with SIGKILL cannot, so every new
folder first removes the folders of the same prefix whose process no longer exists.

Example:
    >>> with scratch_folder("nexus-load-") as folder:  # doctest: +SKIP
    ...     (folder / "rows.tsv").write_bytes(b"...")
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["make_scratch_folder", "remove_orphans", "scratch_folder"]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_orphans(prefix: str, parent: str | Path | None = None) -> list[Path]:
    """Delete the ``<prefix><pid>-*`` folders in ``parent`` (the temp directory by default)
    whose process is gone; returns them."""
    folder = Path(parent or tempfile.gettempdir())
    pattern = re.compile(rf"{re.escape(prefix)}(\d+)-")
    removed = []
    with contextlib.suppress(OSError):
        for entry in folder.iterdir():
            found = pattern.match(entry.name)
            if found and entry.is_dir() and not _alive(int(found.group(1))):
                shutil.rmtree(entry, ignore_errors=True)
                removed.append(entry)
    return removed


def make_scratch_folder(prefix: str, parent: str | Path | None = None) -> Path:
    """A new folder ``<prefix><pid>-<random>`` (after :func:`remove_orphans`); the caller
    removes it."""
    remove_orphans(prefix, parent)
    return Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-", dir=parent))


@contextlib.contextmanager
def scratch_folder(prefix: str, parent: str | Path | None = None) -> Iterator[Path]:
    """:func:`make_scratch_folder`, removed on exit."""
    folder = make_scratch_folder(prefix, parent)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
