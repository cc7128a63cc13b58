"""Progress lines of a long load: rows so far, rows per second and bytes, in the run's log.

A line is logged every ``NEXUS_PROGRESS_SECONDS`` seconds (default 10) and, when
``NEXUS_PROGRESS_BATCHES`` is set to N > 0, also every N batches, while a target loads (the
general path reads, transforms and loads one stream, so the line covers all three). The
PostgreSQL COPY pipe decodes no rows: its lines count the bytes that went through the pipe, and
the rows are known when the COPY ends. After the load, :meth:`Progress.rows_per_second` is the
target's final rate (``nexus/rows_per_second`` in the materialization's metadata).

Example:
    >>> progress = Progress(None, "dst", ProgressSettings(seconds=10.0))
    >>> progress.add(rows=1000, nbytes=8000)
    >>> progress.rows
    1000
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from nexus_dagster.errors import SpecError
from nexus_dagster.relation import Relation

__all__ = ["BATCHES_ENV", "SECONDS_ENV", "Progress", "ProgressSettings"]

SECONDS_ENV = "NEXUS_PROGRESS_SECONDS"
BATCHES_ENV = "NEXUS_PROGRESS_BATCHES"


@dataclass(frozen=True)
class ProgressSettings:
    """How often a load logs a progress line.

    Attributes:
        seconds: a line at least this often while rows move (> 0).
        batches: also a line every this many batches; 0 logs by time only.
    """

    seconds: float = 10.0
    batches: int = 0

    @classmethod
    def from_env(cls) -> ProgressSettings:
        """The settings from ``NEXUS_PROGRESS_SECONDS`` and ``NEXUS_PROGRESS_BATCHES``.

        Raises:
            SpecError: a value that is not a number (seconds > 0, batches >= 0).
        """
        seconds = _number(SECONDS_ENV, float, cls.seconds)
        batches = _number(BATCHES_ENV, int, cls.batches)
        if seconds <= 0 or batches < 0:
            raise SpecError(
                f"{SECONDS_ENV} must be > 0 and {BATCHES_ENV} >= 0 (got {seconds}, {batches}); "
                "unset them for a line every 10 s"
            )
        return cls(seconds=seconds, batches=batches)


def _number(name: str, kind: Callable[[str], Any], default: Any) -> Any:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return kind(raw)
    except ValueError:
        raise SpecError(
            f"environment variable {name}={raw!r} is not a {kind.__name__}; set a number or "
            "unset it"
        ) from None


class Progress:
    """Counts what one load moved and logs a progress line when one is due.

    Args:
        log: a logger-like object with ``info`` (the run's log), or None for no lines.
        label: what moves, e.g. the target's name.
        settings: how often; default from the environment (:meth:`ProgressSettings.from_env`).
        clock: seconds, monotonic (tests pass their own).
    """

    def __init__(
        self, log: Any, label: str, settings: ProgressSettings | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):  # fmt: skip
        self.log = log
        self.label = label
        self.settings = settings or ProgressSettings.from_env()
        self.clock = clock
        self.rows = 0
        self.bytes = 0
        self.batches = 0
        self.lines = 0
        self.started = clock()
        self.finished: float | None = None
        self._line_at = self.started
        self._line_batches = 0

    def add(self, rows: int = 0, nbytes: int = 0) -> None:
        """Count one batch (or one chunk of a byte stream) and log a line when one is due."""
        self.rows += rows
        self.bytes += nbytes
        self.batches += 1
        now = self.clock()
        every = self.settings.batches
        if now - self._line_at >= self.settings.seconds or (
            every and self.batches - self._line_batches >= every
        ):
            self._line_at, self._line_batches = now, self.batches
            self._say(now)

    def add_bytes(self, nbytes: int) -> None:
        """Count bytes of a stream whose rows are counted only at its end (a COPY pipe)."""
        self.add(0, nbytes)

    def wrap(self, relation: Relation) -> Relation:
        """The same relation, counted (rows and Arrow bytes of each batch) as it is read."""

        def open_() -> Iterator[pa.RecordBatch]:
            for batch in relation:
                self.add(batch.num_rows, batch.nbytes)
                yield batch

        return Relation(relation.schema, open_, relation.name, relation.stats)

    def finish(self) -> None:
        """The load ended: the clock of :meth:`rows_per_second` stops."""
        self.finished = self.clock()

    def seconds(self) -> float:
        """Seconds since the load started (until :meth:`finish`)."""
        end = self.finished if self.finished is not None else self.clock()
        return end - self.started

    def rows_per_second(self, rows: int | None = None) -> float:
        """``rows`` (default: the rows counted) per second of the load, rounded to 0.1."""
        seconds = self.seconds()
        count = self.rows if rows is None else rows
        return round(count / seconds, 1) if seconds > 0 else 0.0

    def _say(self, now: float) -> None:
        self.lines += 1
        if self.log is None:
            return
        seconds = max(now - self.started, 1e-9)
        size = f"{self.bytes / 1e6:,.1f} MB"
        if self.rows:
            what = (f"{self.rows:,} rows, {self.rows / seconds:,.0f} rows/s, {size} "
                    f"({self.batches:,} batches)")
        else:  # a byte stream: rows are counted when it ends
            what = f"{size} through the pipe, {self.bytes / 1e6 / seconds:,.1f} MB/s"
        self.log.info(f"progress {self.label}: {what} in {seconds:,.1f} s")
