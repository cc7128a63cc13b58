"""Which database errors are connection-type failures, i.e. worth retrying.

A failure is transient when the server could not be reached, was restarting or shutting down,
or dropped the session: SQLAlchemy's own per-dialect disconnect detection
(``connection_invalidated``), the PostgreSQL SQLSTATEs of those cases, MySQL/MariaDB client
error codes, and the driver messages that say so (for errors raised outside SQLAlchemy, such as
the raw COPY path). Anything else (bad SQL, missing table, wrong password, constraint
violation) is not: a retry would fail the same way.

Example:
    >>> is_transient(OSError("connection refused"))
    True
"""

from __future__ import annotations

import re

import sqlalchemy as sa

#: PostgreSQL: class 08 (connection exception), admin/crash shutdown, cannot connect now
#: (starting up, shutting down, recovery), too many connections
_PG_CODES = ("08", "57P01", "57P02", "57P03", "53300")
#: MySQL/MariaDB client and server codes: can't connect, server gone away, lost connection,
#: too many connections, server shutdown in progress
_MYSQL_CODES = frozenset({1040, 1053, 2002, 2003, 2006, 2013, 2055})
_MESSAGES = re.compile(
    r"could not connect|connection refused|timed? ?out|server closed|lost connection"
    r"|can't connect|connection reset|too many connections|database is locked"
    r"|terminating connection|connection already closed|connection not open"
    r"|closed unexpectedly|the database system is (?:starting up|shutting down"
    r"|in recovery mode)|ssl syscall error|server has gone away|broken pipe",
    re.IGNORECASE,
)


def is_transient(exc: BaseException, detail: str | None = None) -> bool:
    """True when ``exc`` (or the driver error it wraps) is a connection-type failure.

    Args:
        exc: the exception raised by SQLAlchemy or the driver.
        detail: its already-formatted message, if at hand (defaults to ``str(exc)``).
    """
    if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, sa.exc.DisconnectionError | sa.exc.TimeoutError):
        return True
    driver = getattr(exc, "orig", None) or exc
    code = getattr(driver, "pgcode", None)
    if isinstance(code, str) and code.startswith(_PG_CODES):
        return True
    args = getattr(driver, "args", ())
    if args and isinstance(args[0], int) and args[0] in _MYSQL_CODES:
        return True
    return bool(_MESSAGES.search(detail if detail is not None else str(exc)))
