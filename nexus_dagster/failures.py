"""Which failures are transient (worth a retry) and which are permanent: ONE classifier.

A failure is transient when the other side could not be reached, was restarting or shutting
down, dropped the session, timed out, asked us to come back later (HTTP 429 and 5xx), or aborted
the transaction for a concurrency reason (serialization failure, deadlock, lock wait timeout):
the same work may succeed a moment later. Everything else is permanent: a bad spec, wrong
credentials, a missing permission, a missing table or column, a constraint violation, malformed
data, a bug; a retry would fail the same way, so the run fails at once.

:func:`is_transient` looks at one driver or library error (connectors use it to raise
:class:`~nexus_dagster.errors.RetriableError` / ``RetriableLoadError``); :func:`is_retriable`
decides for a whole failed run (the Dagster step retries only those).

Example:
    >>> is_transient(OSError("connection refused"))
    True
    >>> is_retriable(SpecError("targets[0]: table is required"))
    False
"""

from __future__ import annotations

import errno
import re

import sqlalchemy as sa

from nexus_dagster.errors import NexusError, RetriableError

__all__ = ["is_retriable", "is_transient"]

#: PostgreSQL SQLSTATEs: class 08 (connection exception), 40001 serialization failure,
#: 40P01 deadlock, 55P03 lock not available, 57P01-57P03 admin/crash shutdown and cannot
#: connect now (starting up, shutting down, recovery), 53300 too many connections
_PG_CODES = ("08", "40001", "40P01", "55P03", "57P01", "57P02", "57P03", "53300")
#: MySQL/MariaDB codes: too many connections, shutdown in progress, lock wait timeout,
#: deadlock, can't connect, server gone away, lost connection
_MYSQL_CODES = frozenset({1040, 1053, 1205, 1213, 2002, 2003, 2006, 2013, 2055})
_MESSAGES = re.compile(
    r"could not connect|connection refused|timed? ?out|server closed|lost connection"
    r"|can't connect|connection reset|too many connections|database is locked"
    r"|terminating connection|connection already closed|connection not open"
    r"|closed unexpectedly|the database system is (?:starting up|shutting down"
    r"|in recovery mode)|ssl syscall error|server has gone away|broken pipe"
    r"|could not serialize access|deadlock detected|deadlock found",
    re.IGNORECASE,
)
#: socket errors of an unreachable or vanished peer
_ERRNOS = frozenset({errno.ECONNREFUSED, errno.ECONNRESET, errno.ECONNABORTED, errno.EPIPE,
                     errno.ETIMEDOUT, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ENETDOWN})
#: class names (of any base class) of client libraries' network errors (botocore, aiohttp,
#: requests, urllib3, paramiko, confluent-kafka, pymongo ...)
_NETWORK_CLASSES = re.compile(
    r"Timeout|ConnectionError|ConnectError|ConnectionClosed|Disconnected|ServerSelection"
    r"|NetworkError|AutoReconnect|ProtocolError|SSHException|RemoteDisconnected",
)


def is_transient(exc: BaseException, detail: str | None = None) -> bool:
    """True when ``exc`` (or the driver error it wraps) is a connection-type or concurrency
    failure of a database: SQLAlchemy's per-dialect disconnect detection
    (``connection_invalidated``), the SQLSTATEs and MySQL codes above, and the driver messages
    that say so (for errors raised outside SQLAlchemy, such as the raw COPY path).

    Args:
        exc: the exception raised by SQLAlchemy or the driver.
        detail: its already-formatted message, if at hand (defaults to ``str(exc)``).
    """
    if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, sa.exc.DisconnectionError | sa.exc.TimeoutError):
        return True
    driver = getattr(exc, "orig", None) or exc
    code = getattr(driver, "pgcode", None) or getattr(driver, "sqlstate", None)
    if isinstance(code, str) and code.startswith(_PG_CODES):
        return True
    args = getattr(driver, "args", ())
    if args and isinstance(args[0], int) and args[0] in _MYSQL_CODES:
        return True
    return bool(_MESSAGES.search(detail if detail is not None else str(exc)))


def _http_status(exc: BaseException) -> int | None:
    """The HTTP status an HTTP client error carries (requests, httpx, urllib, botocore)."""
    response = getattr(exc, "response", None)
    for holder, name in ((exc, "status"), (exc, "code"), (response, "status_code"),
                         (response, "status")):
        value = getattr(holder, name, None)
        if isinstance(value, int) and 100 <= value <= 599:
            return value
    if isinstance(response, dict):  # botocore ClientError
        value = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if isinstance(value, int):
            return value
    return None


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and the errors it was raised from (``from``, or while handling; not past
    ``from None``)."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen and len(seen) < 20:
        seen.append(current)
        if current.__cause__ is not None:
            current = current.__cause__
        elif current.__suppress_context__:
            break
        else:
            current = current.__context__
    return seen


def _one_is_transient(exc: BaseException) -> bool | None:
    """True/False when ``exc`` itself decides, None when it says nothing either way."""
    if isinstance(exc, RetriableError):
        return True
    if isinstance(exc, NexusError):  # SpecError, LoadError, DataError ...: a kind we chose
        return False
    if isinstance(exc, PermissionError | FileNotFoundError | FileExistsError):
        return False
    status = _http_status(exc)
    if status is not None:
        return status == 429 or status >= 500 or status == 408
    if isinstance(exc, sa.exc.SQLAlchemyError) or getattr(exc, "orig", None) is not None:
        return is_transient(exc)
    if isinstance(exc, ConnectionError | TimeoutError):
        return True
    if isinstance(exc, OSError) and exc.errno in _ERRNOS:
        return True
    if any(_NETWORK_CLASSES.search(cls.__name__) for cls in type(exc).__mro__):
        return True
    return None


def is_retriable(exc: BaseException) -> bool:
    """True when a run that failed with ``exc`` may succeed if run again unchanged.

    The error and the errors it was raised from are looked at: it is transient when one of them
    is (``RetriableError`` and its subclasses, HTTP 408/429/5xx, database connection,
    serialization and deadlock failures, network errors of the client libraries; e.g. custom
    code whose API call lost its connection, wrapped in a ``TransformError``). Everything else
    is permanent: our other kinds (``SpecError``, ``LoadError`` of a constraint violation,
    ``DataError`` ...), wrong credentials, missing permissions or objects, and errors nothing
    recognises (a bug, bad data inside a library).
    """
    return any(_one_is_transient(error) for error in _chain(exc))
