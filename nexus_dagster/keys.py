"""Master key rotation: re-encrypt every ``enc:`` value of spec files with the first key.

Rotation in three steps (see the README's Security section):

1. ``nexus keygen`` makes a new key; put it FIRST in ``MASTER_ENCRYPTION_KEY`` and keep the old
   one after it (``MASTER_ENCRYPTION_KEY=new,old``): both decrypt, new tokens use ``new``.
2. ``nexus rotate-keys job_specs/`` rewrites every token with the first key.
3. Drop the old key from ``MASTER_ENCRYPTION_KEY``.

Only the token text changes: the files are edited in place, not re-dumped, so comments,
quoting, order and indentation stay as they were. Every token of every file is checked before
any file is written, so a token that no key can decrypt leaves all files untouched.

Example:
    >>> rotated = rotate_paths(["job_specs"])        # doctest: +SKIP
    >>> {str(p): n for p, n in rotated.items()}      # doctest: +SKIP
    {'job_specs/connections.yaml': 3}
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterable
from pathlib import Path

from nexus_dagster import secrets
from nexus_dagster.errors import SpecError, SpecProblem

#: ``enc:`` followed by a Fernet token (url-safe base64), anywhere in a YAML line
TOKEN_RE = re.compile(r"(?<![A-Za-z0-9_])enc:([A-Za-z0-9_\-]+=*)")

__all__ = ["TOKEN_RE", "rotate_paths", "rotate_text"]


def rotate_text(text: str, *, file: str = "<text>", keys: str | None = None) -> tuple[str, int]:
    """``text`` with every ``enc:`` token re-encrypted with the first master key.

    Args:
        text: the file's text.
        file: the file name, for messages.
        keys: comma-separated master keys (default ``$MASTER_ENCRYPTION_KEY``).

    Returns:
        (new text, number of tokens rotated).

    Raises:
        SpecError: a token no key decrypts, one problem per token with its line.
    """
    from cryptography.fernet import InvalidToken

    fernet = secrets.fernet(keys)
    problems: list[SpecProblem] = []
    count = 0

    def rotate(match: re.Match[str]) -> str:
        nonlocal count
        try:
            fresh = fernet.rotate(match.group(1).encode()).decode()
        except InvalidToken:
            line = text.count("\n", 0, match.start()) + 1
            problems.append(SpecProblem(
                "this enc: value cannot be decrypted with any key in "
                f"{secrets.MASTER_KEY_ENV}",
                file=file, line=line,
                fix="add the key it was made with to MASTER_ENCRYPTION_KEY (after the new one)",
            ))
            return match.group(0)
        count += 1
        return secrets.ENC_PREFIX + fresh

    new = TOKEN_RE.sub(rotate, text)
    if problems:
        raise SpecError(problems)
    return new, count


def _yaml_files(paths: Iterable[str | Path]) -> list[Path]:
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml")
                            and p.is_file() and not p.name.startswith("."))
        elif path.is_file():
            files.append(path)
        else:
            raise SpecError([SpecProblem("no such file or folder", file=str(path))])
    return files


def _replace(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (temp file in the same folder, fsync, rename),
    keeping the file's permissions."""
    mode = path.stat().st_mode & 0o7777
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, mode)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def rotate_paths(paths: Iterable[str | Path], *, keys: str | None = None) -> dict[Path, int]:
    """Re-encrypt every ``enc:`` value in the YAML files under ``paths`` with the first key.

    Args:
        paths: spec files or folders (searched recursively for ``*.yaml``/``*.yml``).
        keys: comma-separated master keys (default ``$MASTER_ENCRYPTION_KEY``).

    Returns:
        file -> number of tokens rotated, for every file that held at least one.

    Raises:
        SpecError: a path is missing, or some token cannot be decrypted (nothing is written).
    """
    planned: dict[Path, tuple[str, int]] = {}
    problems: list[SpecProblem] = []
    for path in _yaml_files(paths):
        with open(path, encoding="utf-8", newline="") as handle:  # keep \r\n as it is
            text = handle.read()
        if secrets.ENC_PREFIX not in text:
            continue
        try:
            new, count = rotate_text(text, file=str(path), keys=keys)
        except SpecError as exc:
            problems += exc.problems
            continue
        if count:
            planned[path] = (new, count)
    if problems:
        raise SpecError(problems)
    for path, (new, _) in planned.items():
        _replace(path, new)
    return {path: count for path, (_, count) in planned.items()}
