"""A PostgreSQL server of the test's own (initdb into a temp dir, its own port, TLS on with a
self-signed certificate), which a test may restart or kill without touching shared servers."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

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
    """A self-signed certificate for 127.0.0.1 (it is its own CA): (cert, key) paths."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
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
    """initdb + pg_ctl as the postgres user on 127.0.0.1:<free port>, TLS on, password auth."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="nexus-dedicated-pg-"))
        self.data = self.dir / "data"
        self.port = _free_port()
        self.cert: Path | None = None

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

    def close(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)
