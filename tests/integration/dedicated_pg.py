"""A PostgreSQL server of the test's own (initdb into a temp dir, its own port, TLS on with a
self-signed certificate, optional server settings such as ``wal_level=logical``), which a test
may stop, restart, kill or configure without touching shared servers; and a :class:`Trap` that
makes that server hold a transfer open at a chosen row, so a test can strike in the middle of
it. Used by the security fault tests, the retry test and the change data capture tests.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

PG_BIN = Path("/usr/lib/postgresql/15/bin")
PASSWORD = "dedicated-Pw-7f3a"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def self_signed(folder: Path, common_name: str = "127.0.0.1") -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost (its own CA): (cert, key) paths."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
            critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "server.crt", folder / "server.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.TraditionalOpenSSL,
                                           serialization.NoEncryption()))
    return cert_path, key_path


class DedicatedPostgres:
    """initdb + pg_ctl as the postgres user on 127.0.0.1:<free port>, TLS on, password auth.

    ``settings`` are server parameters given at start (``{"wal_level": "logical"}``).
    """

    def __init__(self, settings: dict[str, str] | None = None) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="nexus-dedicated-pg-"))
        self.data = self.dir / "data"
        self.port = _free_port()
        self.cert: Path | None = None
        self.settings = dict(settings or {})

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(list(args), user="postgres", group="postgres", extra_groups=[],
                              env={**os.environ, "HOME": "/tmp"}, cwd="/", text=True,
                              capture_output=True, timeout=120, check=check)

    def init(self) -> None:
        shutil.chown(self.dir, "postgres", "postgres")
        os.chmod(self.dir, 0o755)
        self._run(str(PG_BIN / "initdb"), "-A", "trust", "-U", "postgres", "-E", "UTF8",
                  "--locale=C", "-D", str(self.data))
        self.cert, key = self_signed(self.data)
        for path in (self.cert, key):
            shutil.chown(path, "postgres", "postgres")
        os.chmod(key, 0o600)
        (self.data / "pg_hba.conf").write_text(
            "local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n")
        self.start()
        self._run(str(PG_BIN / "psql"), "-X", "-q", "-h", str(self.dir), "-p", str(self.port),
                  "-U", "postgres", "-c", f"ALTER ROLE postgres PASSWORD '{PASSWORD}'")

    def start(self) -> None:
        opts = (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c ssl=on "
                f"-c ssl_cert_file=server.crt -c ssl_key_file=server.key")
        opts += "".join(f" -c {name}={value}" for name, value in self.settings.items())
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.dir / "log"),
                  "-o", opts, "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        """``fast`` ends sessions cleanly; ``immediate`` kills the server like a crash."""
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop",
                  check=False)

    def restart(self, mode: str = "immediate") -> None:
        self.stop(mode)
        self.start()

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://postgres:{PASSWORD}@127.0.0.1:{self.port}/postgres"

    def params(self) -> dict[str, object]:
        """Nexus connection_params for this server."""
        return {"type": "postgresql", "host": "127.0.0.1", "port": self.port,
                "database": "postgres", "user": "postgres", "password": PASSWORD}

    def create_role(self, name: str, password: str, attributes: str = "LOGIN") -> dict[str, object]:
        """A role (``attributes`` e.g. ``"LOGIN REPLICATION"``) allowed to create tables in
        the ``public`` schema; returns its Nexus connection_params."""
        run_sql(self.url, f"CREATE ROLE {name} {attributes} PASSWORD '{password}'",
                f"GRANT CREATE ON SCHEMA public TO {name}",
                f"GRANT CREATE ON DATABASE postgres TO {name}")
        return {**self.params(), "user": name, "password": password}

    def close(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)


@contextmanager
def dedicated_postgres(settings: dict[str, str] | None = None) -> Iterator[DedicatedPostgres]:
    """A started :class:`DedicatedPostgres` with ``settings``, removed on exit (for
    module-scoped fixtures)."""
    if not (PG_BIN / "initdb").exists():
        pytest.fail(f"PostgreSQL 15 is not installed at {PG_BIN}: run scripts/test.sh")
    server = DedicatedPostgres(settings)
    server.init()
    try:
        yield server
    finally:
        server.close()


def autocommit_engine(url: str) -> sa.Engine:
    """An engine without pooling or transactions, for test setup."""
    return sa.create_engine(url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)


def run_sql(url: str, *statements: str) -> None:
    """Run statements through the DBAPI itself (no parameter markers: ``%`` stays ``%``)."""
    engine = autocommit_engine(url)
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        for statement in statements:
            cursor.execute(statement)
        raw.commit()
    finally:
        raw.close()
        engine.dispose()


_HOLD = """\
    IF {id} = {at} AND (pg_stat_file('{armed}', true)).size IS NOT NULL THEN
        EXECUTE format('COPY (SELECT 1) TO %L', '{marker}');
        PERFORM pg_sleep(300);
    END IF;"""


class Trap:
    """Files the database checks (armed) and writes (marker) when it holds the transfer.

    :meth:`hold` is PL/pgSQL for a function body (a source view's filter function or a target
    table's row trigger): at row ``at``, while armed, it writes the marker file and sleeps.

    Example:
        >>> trap = Trap(server.dir, at=5_000)
        >>> run_sql(url, "CREATE FUNCTION hold(i int) RETURNS boolean LANGUAGE plpgsql AS "
        ...         f"$$ BEGIN\n{trap.hold('i')}\n RETURN true; END $$")  # doctest: +SKIP
        >>> trap.arm(); start_the_run(); trap.wait(run_alive); strike()  # doctest: +SKIP
    """

    def __init__(self, folder: Path, at: int):
        self.at = at
        self.armed = folder / f"armed-{os.getpid()}-{id(self)}"
        self.marker = folder / f"marker-{os.getpid()}-{id(self)}"

    def hold(self, column: str) -> str:
        return _HOLD.format(id=column, at=self.at, armed=self.armed, marker=self.marker)

    def arm(self) -> None:
        self.marker.unlink(missing_ok=True)
        self.armed.write_text("1")

    def wait(self, alive: Callable[[], bool]) -> None:
        """Until the database holds the transfer (bounded; fails if the run ends first)."""
        deadline = time.monotonic() + 120
        while not self.marker.exists():
            assert alive(), "the run ended before the database reached the chosen row"
            assert time.monotonic() < deadline, "the database never reached the chosen row"
            time.sleep(0.05)
        self.armed.unlink()
