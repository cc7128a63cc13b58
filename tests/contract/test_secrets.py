"""Contract 1: no secret in describe(), repr or the errors a wrong secret causes.

Each case gives the connection a distinctive, fresh secret where the system expects its
credential (a password, a secret key, an account key, a service-account key file, a SASL
password, a bearer token) and greps everything the connector shows for it: ``describe()``,
``repr``/``str`` of the connector and of its validated params, and the whole error (message,
``args`` and every chained cause) of an operation with that secret. Where the test server checks
the credential the operation must fail.
"""

from __future__ import annotations

import traceback

import pytest

from tests.contract.endpoints import ENTRIES, Endpoint, Entry, cases, new_secret


def _error_text(error: BaseException) -> str:
    chain, current = [], error
    while current is not None and len(chain) < 20:
        chain.append(current)
        current = current.__cause__ or current.__context__
    shown = ["".join(traceback.format_exception(error))]
    shown += [f"{e!r} {e.args!r}" for e in chain]
    return "\n".join(shown)


@pytest.mark.parametrize(
    "entry", cases("test_no_secret_in_describe_repr_or_errors",
                   [e for e in ENTRIES if not e.no_secret], server=False),
)
def test_no_secret_in_describe_repr_or_errors(endpoint: Endpoint, entry: Entry):
    secret = new_secret()
    assert endpoint.secret is not None, f"{entry.id}: give the factory a Secret or no_secret"
    connector = endpoint.connector(endpoint.secret.params(secret))
    shown = {
        "describe()": connector.describe(),
        "repr(connector)": repr(connector),
        "str(connector)": str(connector),
        "repr(connector.config)": repr(connector.config),
        "str(connector.config)": str(connector.config),
    }
    assert [where for where, text in shown.items() if secret in text] == []

    error = None
    try:
        connector.read(endpoint.read_back(endpoint.first_mode())).to_table()
    except Exception as exc:  # what a run would log
        error = exc
    if endpoint.secret.refused and not entry.server_free:
        assert error is not None, "the server should have refused the wrong secret"
    if error is not None:
        text = _error_text(error)
        assert secret not in text, text
