#!/usr/bin/env python3
"""Start, stop and inspect the real database servers the test-suite runs against.

    python scripts/services.py start  [--only postgres,mariadb] [--lease PID]
    python scripts/services.py stop   [--only postgres,mariadb] [--lease PID]
    python scripts/services.py status [--only postgres,mariadb]

Standard library only. Must run as root (it installs Debian packages when they are missing and
drops to the ``postgres`` / ``mysql`` users for the servers). Every server listens on 127.0.0.1
only; all state lives under ``<repo>/.services/``:

    .services/env                 shell ``export`` lines with the admin URLs for the tests
    .services/lock                serialises concurrent start/stop calls (flock)
    .services/leases/<pid>        one per running ``scripts/test.sh`` (``--lease $$``)
    .services/<name>.owner        present only if a ``start`` of this script launched the server;
                                  holds "manual" or "lease" (who may stop it)
    .services/postgres/           cluster dir (owned by postgres): data/, socket, postgres.log
    .services/mariadb/            datadir etc. (owned by mysql): data/, pid file, socket, log

Ownership rules:
* ``start`` reuses a server that is already running and answering; it only records ownership
  for servers it launched itself.
* ``stop --lease PID`` (what scripts/test.sh runs on exit) drops that lease and then stops the
  servers that were launched under a lease, once no other live lease remains (so two test runs
  in the same tree do not pull the servers from under each other). Servers started by a plain
  ``start`` (owner "manual") are left alone.
* ``stop`` without ``--lease`` stops every server this script launched in this state dir.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
STATE_DIR = REPO_ROOT / ".services"
LEASE_DIR = STATE_DIR / "leases"
ENV_FILE = STATE_DIR / "env"

HOST = "127.0.0.1"
PG_PORT = int(os.environ.get("NEXUS_PG_PORT", "55432"))
MARIADB_PORT = int(os.environ.get("NEXUS_MARIADB_PORT", "53306"))
TEST_USER = "nexus"
TEST_PASSWORD = "nexus_pw"
PG_BIN = Path("/usr/lib/postgresql/15/bin")
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0

PG_URL = f"postgresql+psycopg2://{TEST_USER}:{TEST_PASSWORD}@{HOST}:{PG_PORT}/postgres"
MARIADB_URL = f"mysql+pymysql://{TEST_USER}:{TEST_PASSWORD}@{HOST}:{MARIADB_PORT}/mysql"

APT_ENV = {**os.environ, "DEBIAN_FRONTEND": "noninteractive", "NEEDRESTART_MODE": "a"}


class ServiceError(RuntimeError):
    pass


def log(msg: str) -> None:
    print(f"[services] {msg}", file=sys.stderr, flush=True)


def run(cmd: list[str], *, user: str | None = None, check: bool = True, timeout: float = 120,
        env: dict[str, str] | None = None, input_text: str | None = None,
        ) -> subprocess.CompletedProcess[str]:
    kwargs: dict = {}
    if user is not None:
        kwargs.update(user=user, group=user, extra_groups=[])
        env = {**(env or os.environ), "HOME": "/tmp", "USER": user, "LOGNAME": user}
    proc = subprocess.run(
        cmd, env=env, text=True, capture_output=True, timeout=timeout, cwd="/",
        input=input_text if input_text is not None else "", **kwargs,
    )
    if check and proc.returncode != 0:
        raise ServiceError(
            f"command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout}{proc.stderr}"
        )
    return proc


def tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError as exc:
        return f"(no log at {path}: {exc})"
    return "\n".join(text[-lines:])


def pid_alive(pid: int | None, name_hint: str | None = None) -> bool:
    if not pid or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
        if name_hint:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
            return name_hint.encode() in cmdline
    except OSError:
        return False
    return True


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def port_listeners(port: int) -> list[str]:
    """Local addresses in LISTEN state on ``port`` (from /proc/net/tcp{,6})."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            addr, port_hex = fields[1].rsplit(":", 1)
            if fields[3] == "0A" and int(port_hex, 16) == port:
                found.append(f"{table.rsplit('/', 1)[1]}:{addr}")
    return found


# --------------------------------------------------------------------------------------------
# installation


def ensure_packages(names: list[str]) -> None:
    wanted = []
    if "postgres" in names and not (PG_BIN / "postgres").exists():
        wanted.append("postgresql")
    if "mariadb" in names and not (shutil.which("mariadbd") or Path("/usr/sbin/mariadbd").exists()):
        wanted.append("mariadb-server")
    if not wanted:
        return
    if os.geteuid() != 0:
        raise ServiceError(f"need root to install {wanted}")
    cmd = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *wanted]
    log(f"installing {' '.join(wanted)} ...")
    started = time.monotonic()
    proc = run(cmd, env=APT_ENV, check=False, timeout=1200)
    if proc.returncode != 0:
        log("apt-get install failed; running apt-get update and retrying")
        run(["apt-get", "update", "-q"], env=APT_ENV, timeout=600)
        run(cmd, env=APT_ENV, timeout=1200)
    log(f"installed {' '.join(wanted)} in {time.monotonic() - started:.1f}s")


# --------------------------------------------------------------------------------------------
# state dir helpers


def data_root() -> Path:
    """Where the server directories live: normally .services itself.

    Falls back to a per-checkout directory under /var/tmp when the service users cannot reach
    the checkout (e.g. a clone under /root) or the socket path would be too long.
    """
    def reachable(user: str) -> bool:
        return run(["test", "-x", str(STATE_DIR)], user=user, check=False).returncode == 0

    if len(str(STATE_DIR)) < 60 and reachable("postgres") and reachable("mysql"):
        return STATE_DIR
    digest = hashlib.sha1(str(REPO_ROOT).encode()).hexdigest()[:10]
    alt = Path(f"/var/tmp/nexus-services-{digest}")
    alt.mkdir(mode=0o755, exist_ok=True)
    os.chmod(alt, 0o755)
    return alt


def chown_dir(path: Path, user: str, mode: int = 0o700) -> None:
    path.mkdir(parents=True, exist_ok=True)
    shutil.chown(path, user, user)
    os.chmod(path, mode)


@contextlib.contextmanager
def state_lock():
    STATE_DIR.mkdir(exist_ok=True)
    os.chmod(STATE_DIR, 0o755)
    with open(STATE_DIR / "lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def live_leases() -> list[int]:
    alive = []
    if not LEASE_DIR.is_dir():
        return alive
    for entry in LEASE_DIR.iterdir():
        try:
            pid = int(entry.name)
        except ValueError:
            entry.unlink(missing_ok=True)
            continue
        if pid_alive(pid):
            alive.append(pid)
        else:
            entry.unlink(missing_ok=True)
    return alive


# --------------------------------------------------------------------------------------------
# servers


class Service:
    name = ""
    process_hint = ""

    def __init__(self, root: Path) -> None:
        self.dir = root / self.name
        self.owner_file = STATE_DIR / f"{self.name}.owner"

    # subclass API
    def pid(self) -> int | None: ...
    def answers(self) -> bool: ...
    def launch(self) -> None: ...
    def setup_user(self) -> None: ...
    def logfile(self) -> Path: ...
    def stop_signal(self) -> int:
        return signal.SIGTERM

    # common logic
    def running(self) -> bool:
        return pid_alive(self.pid(), self.process_hint)

    def owner(self) -> str | None:
        try:
            return self.owner_file.read_text().strip() or None
        except OSError:
            return None

    def wait_ready(self) -> None:
        started = time.monotonic()
        deadline = started + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.answers():
                return
            pid = self.pid()
            # the name check only once the child surely exec'd: right after the fork its
            # command line is still Python's
            hint = self.process_hint if time.monotonic() - started > 2 else None
            if pid is not None and not pid_alive(pid, hint):
                break
            time.sleep(0.2)
        raise ServiceError(
            f"{self.name} did not answer on {HOST}:{self.port} within {READY_TIMEOUT:.0f}s.\n"
            f"--- tail of {self.logfile()} ---\n{tail(self.logfile())}"
        )

    def start(self, owner: str) -> bool:
        """Start (or reuse) the server. Returns True if this call launched it."""
        if self.running():
            if self.answers():
                log(f"{self.name}: reusing running server (pid {self.pid()}, port {self.port})")
                self.setup_user()
                return False
            log(f"{self.name}: pid {self.pid()} alive but not answering yet; waiting")
            self.wait_ready()
            self.setup_user()
            return False
        busy = port_listeners(self.port)
        if busy:
            raise ServiceError(
                f"{self.name}: port {self.port} is already in use by another process ({busy}); "
                f"set NEXUS_{'PG' if self.name == 'postgres' else 'MARIADB'}_PORT or free it"
            )
        started = time.monotonic()
        self.launch()
        self.owner_file.write_text(owner + "\n")
        self.wait_ready()
        self.setup_user()
        log(f"{self.name}: started pid {self.pid()} on {HOST}:{self.port} "
            f"in {time.monotonic() - started:.1f}s")
        return True

    def stop(self) -> None:
        pid = self.pid()
        if not pid_alive(pid, self.process_hint):
            log(f"{self.name}: not running")
            self.owner_file.unlink(missing_ok=True)
            return
        assert pid is not None
        log(f"{self.name}: stopping pid {pid}")
        os.kill(pid, self.stop_signal())
        deadline = time.monotonic() + STOP_TIMEOUT
        while time.monotonic() < deadline and pid_alive(pid, self.process_hint):
            time.sleep(0.1)
        if pid_alive(pid, self.process_hint):
            log(f"{self.name}: still alive after {STOP_TIMEOUT:.0f}s, sending SIGKILL")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)  # it runs in its own session/process group
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            for _ in range(50):
                if not pid_alive(pid, self.process_hint):
                    break
                time.sleep(0.1)
        self.owner_file.unlink(missing_ok=True)

    def status(self) -> str:
        pid = self.pid()
        if not self.running():
            return f"{self.name}: stopped"
        state = "answering" if self.answers() else "NOT answering"
        return (f"{self.name}: running pid {pid} on {HOST}:{self.port} ({state}); "
                f"owner={self.owner() or 'external/unknown'}; "
                f"listeners={port_listeners(self.port)}")


class Postgres(Service):
    name = "postgres"
    process_hint = "postgres"
    port = PG_PORT

    @property
    def data(self) -> Path:
        return self.dir / "data"

    def logfile(self) -> Path:
        return self.dir / "postgres.log"

    def pid(self) -> int | None:
        return read_pid(self.data / "postmaster.pid")

    def stop_signal(self) -> int:
        return signal.SIGINT  # PostgreSQL "fast" shutdown; SIGTERM waits for every client

    def psql(self, sql: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run(
            [str(PG_BIN / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", str(self.dir),
             "-p", str(self.port), "-U", "postgres", "-d", "postgres", "-tA", "-c", sql],
            user="postgres", check=check, timeout=30,
        )

    def answers(self) -> bool:
        proc = run([str(PG_BIN / "pg_isready"), "-q", "-h", HOST, "-p", str(self.port),
                    "-U", "postgres", "-d", "postgres"], check=False, timeout=10)
        return proc.returncode == 0

    def launch(self) -> None:
        chown_dir(self.dir, "postgres", 0o700)
        if not (self.data / "PG_VERSION").exists():
            if self.data.exists():
                shutil.rmtree(self.data)
            log("postgres: initdb")
            run([str(PG_BIN / "initdb"), "-A", "trust", "-U", "postgres", "-E", "UTF8",
                 "--locale=C", "-D", str(self.data)], user="postgres", timeout=300)
        # Password auth over TCP (tests check wrong-password errors); trust on the socket only.
        hba = self.data / "pg_hba.conf"
        hba.write_text("local all all trust\n"
                       "host all all 127.0.0.1/32 scram-sha-256\n"
                       "host all all ::1/128 scram-sha-256\n")
        shutil.chown(hba, "postgres", "postgres")
        os.chmod(hba, 0o600)
        opts = (f"-p {self.port} -k {self.dir} -c listen_addresses={HOST} "
                f"-c unix_socket_permissions=0777 -c fsync=off -c full_page_writes=off "
                f"-c synchronous_commit=off -c max_connections=200")
        proc = run([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.logfile()),
                    "-o", opts, "-w", "-t", str(int(READY_TIMEOUT)), "start"],
                   user="postgres", check=False, timeout=READY_TIMEOUT + 30)
        if proc.returncode != 0:
            raise ServiceError(f"postgres: pg_ctl start failed:\n{proc.stdout}{proc.stderr}\n"
                               f"--- tail of {self.logfile()} ---\n{tail(self.logfile())}")

    def setup_user(self) -> None:
        self.psql(
            "DO $$ BEGIN "
            f"IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{TEST_USER}') THEN "
            f"CREATE ROLE {TEST_USER} LOGIN SUPERUSER PASSWORD '{TEST_PASSWORD}'; "
            f"ELSE ALTER ROLE {TEST_USER} LOGIN SUPERUSER PASSWORD '{TEST_PASSWORD}'; "
            "END IF; END $$;"
        )


class MariaDB(Service):
    name = "mariadb"
    process_hint = "mariadbd"
    port = MARIADB_PORT

    @property
    def data(self) -> Path:
        return self.dir / "data"

    @property
    def socket(self) -> Path:
        return self.dir / "mariadbd.sock"

    @property
    def pidfile(self) -> Path:
        return self.dir / "mariadbd.pid"

    def logfile(self) -> Path:
        return self.dir / "mariadbd.log"

    def pid(self) -> int | None:
        return read_pid(self.pidfile)

    def client(self, sql: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run(["mariadb", "--no-defaults", "-uroot", f"--socket={self.socket}",
                    "--batch", "--skip-column-names", "-e", sql], check=check, timeout=30)

    def answers(self) -> bool:
        if not self.socket.exists():
            return False
        proc = run(["mariadb-admin", "--no-defaults", "-uroot", f"--socket={self.socket}",
                    "--connect-timeout=2", "ping"], check=False, timeout=10)
        return proc.returncode == 0

    def launch(self) -> None:
        chown_dir(self.dir, "mysql", 0o755)
        if not (self.data / "mysql").is_dir():
            if self.data.exists():
                shutil.rmtree(self.data)
            log("mariadb: mariadb-install-db")
            run(["mariadb-install-db", "--no-defaults", "--user=mysql", f"--datadir={self.data}",
                 "--auth-root-authentication-method=socket", "--skip-test-db",
                 "--skip-name-resolve"], timeout=300)
        self.pidfile.unlink(missing_ok=True)
        self.socket.unlink(missing_ok=True)
        logfh = open(self.logfile(), "ab")  # noqa: SIM115 - handed to the daemon
        try:
            proc = subprocess.Popen(
                ["mariadbd", "--no-defaults", "--user=mysql", f"--datadir={self.data}",
                 f"--bind-address={HOST}", f"--port={self.port}", f"--socket={self.socket}",
                 f"--pid-file={self.pidfile}", "--skip-name-resolve", "--skip-log-bin",
                 "--innodb-buffer-pool-size=128M", "--innodb-flush-log-at-trx-commit=2",
                 "--max-connections=200", "--character-set-server=utf8mb4",
                 "--collation-server=utf8mb4_unicode_ci"],
                stdin=subprocess.DEVNULL, stdout=logfh, stderr=logfh, cwd="/",
                start_new_session=True,
            )
        finally:
            logfh.close()
        deadline = time.monotonic() + READY_TIMEOUT
        while self.pid() is None and time.monotonic() < deadline:
            if proc.poll() is not None:
                raise ServiceError(
                    f"mariadb: mariadbd exited with code {proc.returncode} during start-up\n"
                    f"--- tail of {self.logfile()} ---\n{tail(self.logfile())}"
                )
            time.sleep(0.1)

    def setup_user(self) -> None:
        stmts = []
        for host in ("127.0.0.1", "localhost"):
            account = f"'{TEST_USER}'@'{host}'"
            stmts += [
                f"CREATE USER IF NOT EXISTS {account} IDENTIFIED BY '{TEST_PASSWORD}'",
                f"ALTER USER {account} IDENTIFIED BY '{TEST_PASSWORD}'",
                f"GRANT ALL PRIVILEGES ON *.* TO {account} WITH GRANT OPTION",
            ]
        self.client("; ".join(stmts) + "; FLUSH PRIVILEGES;")


# --------------------------------------------------------------------------------------------
# object storage and remote file servers (S3, Azure Blob, GCS, SFTP, FTP)

VENV_BIN = REPO_ROOT / ".venv" / "bin"
CACHE_DIR = Path(os.environ.get("NEXUS_SERVICES_CACHE", Path.home() / ".cache" / "nexus-services"))
STORAGE_PORTS = {"s3": 55910, "azurite": 55911, "gcs": 55912, "sftp": 55913, "ftp": 55914}
STORAGE_USER = "nexus"
STORAGE_PASSWORD = "nexus_storage_pw"
SFTP_USER = "nexussftp"
AZURITE_KEY = ("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/"
               "KBHBeksoGMGw==")  # Azurite's documented development key for devstoreaccount1


def tcp_answers(port: int) -> bool:
    import socket

    with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=1):
        return True
    return False


def venv_tool(name: str, requirement: str) -> Path:
    """A console script of the project venv, installed with uv when missing."""
    tool = VENV_BIN / name
    if not tool.exists():
        log(f"installing {requirement} into .venv ...")
        run(["uv", "pip", "install", "-q", "-p", str(REPO_ROOT / ".venv"), requirement],
            timeout=600)
    return tool


class ProcessService(Service):
    """A server run as one background process, its pid in ``<dir>/pid``."""

    def __init__(self, root: Path) -> None:
        super().__init__(STATE_DIR)  # runs as root: no need for data_root()'s fallback
        self.port = STORAGE_PORTS[self.name]

    def command(self) -> list[str]: ...

    def install(self) -> None:
        return None

    def process_env(self) -> dict[str, str]:
        return dict(os.environ)

    def env(self) -> dict[str, str]:
        return {}

    def logfile(self) -> Path:
        return self.dir / f"{self.name}.log"

    def pid(self) -> int | None:
        return read_pid(self.dir / "pid")

    def answers(self) -> bool:
        return tcp_answers(self.port)

    def setup_user(self) -> None:
        return None

    def launch(self) -> None:
        self.install()
        self.dir.mkdir(parents=True, exist_ok=True)
        logfh = open(self.logfile(), "ab")  # noqa: SIM115 - handed to the server
        try:
            proc = subprocess.Popen(
                self.command(), stdin=subprocess.DEVNULL, stdout=logfh, stderr=logfh,
                cwd=self.dir, env=self.process_env(), start_new_session=True,
            )
        finally:
            logfh.close()
        (self.dir / "pid").write_text(f"{proc.pid}\n")


class MotoS3(ProcessService):
    """moto's S3 server; IAM authentication is switched on once the test user exists."""

    name = "s3"
    process_hint = "moto_server"

    def command(self) -> list[str]:
        return [str(venv_tool("moto_server", "moto[server]>=5")), "-H", HOST, "-p",
                str(self.port)]

    def setup_user(self) -> None:
        creds = self.dir / "creds"
        script = f"""
import json, pathlib, urllib.request, boto3, botocore.exceptions
url = "http://{HOST}:{self.port}"
path = pathlib.Path({str(creds)!r})
def works(key, secret):
    s3 = boto3.client("s3", endpoint_url=url, aws_access_key_id=key,
                      aws_secret_access_key=secret, region_name="us-east-1")
    try:
        s3.list_buckets(); return True
    except botocore.exceptions.ClientError:
        return False
if path.exists() and works(*path.read_text().split()) and not works("AKIANOPE", "nope"):
    raise SystemExit(0)  # the user exists and authentication is on
def auth(count):
    urllib.request.urlopen(urllib.request.Request(url + "/moto-api/reset-auth",
                           data=count.encode(), method="POST",
                           headers={{"Content-Type": "text/plain"}})).read()
auth("inf")
iam = boto3.client("iam", endpoint_url=url, aws_access_key_id="x", aws_secret_access_key="x",
                   region_name="us-east-1")
try:
    iam.create_user(UserName="{STORAGE_USER}")
except iam.exceptions.EntityAlreadyExistsException:
    pass
policy = {{"Version": "2012-10-17",
          "Statement": [{{"Effect": "Allow", "Action": "*", "Resource": "*"}}]}}
iam.put_user_policy(UserName="{STORAGE_USER}", PolicyName="all",
                    PolicyDocument=json.dumps(policy))
key = iam.create_access_key(UserName="{STORAGE_USER}")["AccessKey"]
path.write_text(key["AccessKeyId"] + " " + key["SecretAccessKey"] + "\\n")
auth("0")
"""
        run([str(VENV_BIN / "python"), "-c", script], timeout=60)

    def env(self) -> dict[str, str]:
        try:
            key, secret = (self.dir / "creds").read_text().split()
        except (OSError, ValueError):
            return {}
        return {"NEXUS_TEST_S3_ENDPOINT": f"http://{HOST}:{self.port}",
                "NEXUS_TEST_S3_ACCESS_KEY": key, "NEXUS_TEST_S3_SECRET_KEY": secret}


class Azurite(ProcessService):
    """Azurite's Blob service from npm, cached under ~/.cache/nexus-services/azurite."""

    name = "azurite"
    process_hint = "azurite-blob"

    def install(self) -> None:
        folder = CACHE_DIR / "azurite"
        if not (folder / "node_modules" / ".bin" / "azurite-blob").exists():
            folder.mkdir(parents=True, exist_ok=True)
            log("installing azurite from npm ...")
            run(["npm", "install", "--prefix", str(folder), "--no-audit", "--no-fund",
                 "azurite@3"], timeout=900)

    def command(self) -> list[str]:
        return [str(CACHE_DIR / "azurite" / "node_modules" / ".bin" / "azurite-blob"),
                "--blobHost", HOST, "--blobPort", str(self.port), "--location",
                str(self.dir / "data"), "--skipApiVersionCheck", "--loose",
                "--disableTelemetry"]

    def env(self) -> dict[str, str]:
        return {"NEXUS_TEST_AZURE_ACCOUNT_URL": f"http://{HOST}:{self.port}/devstoreaccount1",
                "NEXUS_TEST_AZURE_ACCOUNT_NAME": "devstoreaccount1",
                "NEXUS_TEST_AZURE_ACCOUNT_KEY": AZURITE_KEY}


class GcsEmulator(ProcessService):
    """gcp-storage-emulator (in memory)."""

    name = "gcs"
    process_hint = "gcp-storage-emulator"

    def command(self) -> list[str]:
        tool = venv_tool("gcp-storage-emulator", "gcp-storage-emulator>=2024.8")
        return [str(tool), "start", "--host", HOST, "--port", str(self.port), "--in-memory"]

    def env(self) -> dict[str, str]:
        return {"NEXUS_TEST_GCS_ENDPOINT": f"http://{HOST}:{self.port}"}


class SftpServer(ProcessService):
    """Debian's OpenSSH sshd with its own config, host key and a password+key test user."""

    name = "sftp"
    process_hint = "sshd"

    @property
    def home(self) -> Path:
        return self.dir / "home"

    def install(self) -> None:
        if not Path("/usr/sbin/sshd").exists():
            log("installing openssh-server ...")
            cmd = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "openssh-server"]
            if run(cmd, env=APT_ENV, check=False, timeout=1200).returncode != 0:
                run(["apt-get", "update", "-q"], env=APT_ENV, timeout=600)
                run(cmd, env=APT_ENV, timeout=1200)
        Path("/run/sshd").mkdir(parents=True, exist_ok=True)
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o755)
        for key in ("host_key", "client_key"):
            if not (self.dir / key).exists():
                run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.dir / key)])
        if run(["id", SFTP_USER], check=False).returncode != 0:
            run(["useradd", "--no-create-home", "--home-dir", str(self.home), "--shell",
                 "/bin/sh", SFTP_USER])
        run(["chpasswd"], input_text=f"{SFTP_USER}:{STORAGE_PASSWORD}\n")
        self.home.mkdir(exist_ok=True)
        shutil.chown(self.home, SFTP_USER, SFTP_USER)
        (self.dir / "authorized_keys").write_text((self.dir / "client_key.pub").read_text())
        host_pub = (self.dir / "host_key.pub").read_text().split()
        (self.dir / "known_hosts").write_text(
            f"[{HOST}]:{self.port} {host_pub[0]} {host_pub[1]}\n")
        (self.dir / "sshd_config").write_text(
            f"ListenAddress {HOST}\nPort {self.port}\nHostKey {self.dir / 'host_key'}\n"
            f"PidFile {self.dir / 'pid'}\nAuthorizedKeysFile {self.dir / 'authorized_keys'}\n"
            "UsePAM no\nPasswordAuthentication yes\nKbdInteractiveAuthentication no\n"
            "PubkeyAuthentication yes\nPermitRootLogin no\nStrictModes no\n"
            f"AllowUsers {SFTP_USER}\nSubsystem sftp internal-sftp\n"
        )

    def command(self) -> list[str]:
        return ["/usr/sbin/sshd", "-D", "-f", str(self.dir / "sshd_config"),
                "-E", str(self.logfile())]

    def env(self) -> dict[str, str]:
        return {"NEXUS_TEST_SFTP_PORT": str(self.port), "NEXUS_TEST_SFTP_USER": SFTP_USER,
                "NEXUS_TEST_SFTP_PASSWORD": STORAGE_PASSWORD,
                "NEXUS_TEST_SFTP_KEY": str(self.dir / "client_key"),
                "NEXUS_TEST_SFTP_KNOWN_HOSTS": str(self.dir / "known_hosts"),
                "NEXUS_TEST_SFTP_HOME": str(self.home)}


class FtpServer(ProcessService):
    """pyftpdlib with one user (write access) rooted in ``<dir>/root``."""

    name = "ftp"
    process_hint = "pyftpdlib"

    def command(self) -> list[str]:
        if run([str(VENV_BIN / "python"), "-c", "import pyftpdlib"], check=False).returncode:
            run(["uv", "pip", "install", "-q", "-p", str(REPO_ROOT / ".venv"), "pyftpdlib"])
        (self.dir / "root").mkdir(parents=True, exist_ok=True)
        return [str(VENV_BIN / "python"), "-m", "pyftpdlib", "-i", HOST, "-p", str(self.port),
                "-w", "-d", str(self.dir / "root"), "-u", STORAGE_USER, "-P", STORAGE_PASSWORD]

    def env(self) -> dict[str, str]:
        return {"NEXUS_TEST_FTP_PORT": str(self.port), "NEXUS_TEST_FTP_USER": STORAGE_USER,
                "NEXUS_TEST_FTP_PASSWORD": STORAGE_PASSWORD}


STORAGE_SERVICES = {"s3": MotoS3, "azurite": Azurite, "gcs": GcsEmulator, "sftp": SftpServer,
                    "ftp": FtpServer}


# --------------------------------------------------------------------------------------------
# streams and key-value stores (Redis, Kafka)

REDIS_PORT = int(os.environ.get("NEXUS_REDIS_PORT", "56379"))
REDIS_PASSWORD = "nexus_redis_pw"
KAFKA_PORT = int(os.environ.get("NEXUS_KAFKA_PORT", "59092"))  # controller: KAFKA_PORT + 1
KAFKA_VERSION = "4.1.1"
LOG4J_VERSION = "2.24.3"


def apt_install(binary: str, package: str) -> None:
    """``apt-get install package`` when ``binary`` is not on PATH (update and retry once)."""
    if shutil.which(binary):
        return
    log(f"installing {package} ...")
    cmd = ["apt-get", "install", "-y", "-q", "--no-install-recommends", package]
    if run(cmd, env=APT_ENV, check=False, timeout=1200).returncode != 0:
        run(["apt-get", "update", "-q"], env=APT_ENV, timeout=600)
        run(cmd, env=APT_ENV, timeout=1200)


class RedisServer(ProcessService):
    """Debian's redis-server in the foreground: loopback only, password, no persistence."""

    name = "redis"
    process_hint = "redis-server"

    def __init__(self, root: Path) -> None:
        Service.__init__(self, STATE_DIR)
        self.port = REDIS_PORT

    def install(self) -> None:
        apt_install("redis-server", "redis-server")

    def command(self) -> list[str]:
        return ["redis-server", "--bind", HOST, "--port", str(self.port), "--save", "",
                "--appendonly", "no", "--dir", str(self.dir), "--requirepass", REDIS_PASSWORD,
                "--logfile", str(self.logfile())]

    def env(self) -> dict[str, str]:
        return {"NEXUS_TEST_REDIS_PORT": str(self.port),
                "NEXUS_TEST_REDIS_PASSWORD": REDIS_PASSWORD}


class KafkaServer(ProcessService):
    """Apache Kafka (KRaft, one broker+controller node) from Maven Central jars.

    The jars are fetched once with Maven into ~/.cache/nexus-services/kafka/libs; the log dir
    is formatted once per state dir (``.services/kafka/data``) and reused by later starts.
    """

    name = "kafka"
    process_hint = "kafka.Kafka"

    def __init__(self, root: Path) -> None:
        Service.__init__(self, STATE_DIR)
        self.port = KAFKA_PORT
        self.libs = CACHE_DIR / "kafka" / f"libs-{KAFKA_VERSION}"

    def install(self) -> None:
        apt_install("java", "default-jre-headless")
        if not (self.libs / ".complete").exists():
            apt_install("mvn", "maven")
            folder = self.libs.parent
            folder.mkdir(parents=True, exist_ok=True)
            deps = "".join(
                f"<dependency><groupId>{g}</groupId><artifactId>{a}</artifactId>"
                f"<version>{v}</version></dependency>"
                for g, a, v in (("org.apache.kafka", "kafka_2.13", KAFKA_VERSION),
                                ("org.apache.logging.log4j", "log4j-core", LOG4J_VERSION),
                                ("org.apache.logging.log4j", "log4j-slf4j-impl", LOG4J_VERSION))
            )
            (folder / "pom.xml").write_text(
                '<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0'
                "</modelVersion><groupId>nexus.services</groupId><artifactId>kafka-server"
                "</artifactId><version>1</version><packaging>pom</packaging>"
                f"<dependencies>{deps}</dependencies></project>\n"
            )
            log(f"fetching Kafka {KAFKA_VERSION} jars from Maven Central ...")
            shutil.rmtree(self.libs, ignore_errors=True)
            run(["mvn", "-q", "-B", "-f", str(folder / "pom.xml"),
                 "dependency:copy-dependencies", "-DincludeScope=runtime",
                 f"-DoutputDirectory={self.libs}"], timeout=900)
            (self.libs / ".complete").write_text(KAFKA_VERSION + "\n")
        self.dir.mkdir(parents=True, exist_ok=True)
        data = self.dir / "data"
        (self.dir / "server.properties").write_text("\n".join([
            "process.roles=broker,controller", "node.id=1",
            f"controller.quorum.bootstrap.servers={HOST}:{self.port + 1}",
            f"listeners=PLAINTEXT://{HOST}:{self.port},CONTROLLER://{HOST}:{self.port + 1}",
            f"advertised.listeners=PLAINTEXT://{HOST}:{self.port},"
            f"CONTROLLER://{HOST}:{self.port + 1}",
            "inter.broker.listener.name=PLAINTEXT", "controller.listener.names=CONTROLLER",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            f"log.dirs={data}", "num.partitions=1", "auto.create.topics.enable=true",
            "offsets.topic.replication.factor=1", "offsets.topic.num.partitions=1",
            "transaction.state.log.replication.factor=1", "transaction.state.log.min.isr=1",
            "transaction.state.log.num.partitions=1",
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1", "group.initial.rebalance.delay.ms=0",
        ]) + "\n")
        (self.dir / "log4j2.properties").write_text(
            "status = error\nappender.file.type = File\nappender.file.name = file\n"
            f"appender.file.fileName = {self.logfile()}\nappender.file.layout.type = "
            "PatternLayout\nappender.file.layout.pattern = [%d] %p %m (%c)%n\n"
            "rootLogger.level = WARN\nrootLogger.appenderRef.file.ref = file\n"
        )
        if not (data / "meta.properties").exists():
            import base64
            import uuid

            shutil.rmtree(data, ignore_errors=True)
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
            run(["java", *self.jvm_flags(), "-cp", f"{self.libs}/*", "kafka.tools.StorageTool",
                 "format", "--standalone", "-t", cluster_id, "-c",
                 str(self.dir / "server.properties"), "--ignore-formatted"], timeout=120)

    def jvm_flags(self) -> list[str]:
        return ["-Xmx512m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
                f"-Dlog4j2.configurationFile={self.dir / 'log4j2.properties'}"]

    def command(self) -> list[str]:
        return ["java", *self.jvm_flags(), "-cp", f"{self.libs}/*", "kafka.Kafka",
                str(self.dir / "server.properties")]

    def answers(self) -> bool:
        # the broker listener opens once the node has joined its own quorum and can serve
        return tcp_answers(self.port) and tcp_answers(self.port + 1)

    def env(self) -> dict[str, str]:
        return {"NEXUS_TEST_KAFKA_BOOTSTRAP": f"{HOST}:{self.port}"}


STREAM_SERVICES = {"redis": RedisServer, "kafka": KafkaServer}


# --------------------------------------------------------------------------------------------
# document and search stores (MongoDB wire protocol via FerretDB, OpenSearch, Elasticsearch)

FERRETDB_PORT = int(os.environ.get("NEXUS_FERRETDB_PORT", "57017"))
FERRETDB_VERSION = "v1.24.2"
OPENSEARCH_PORT = int(os.environ.get("NEXUS_OPENSEARCH_PORT", "59200"))  # transport: +100
OPENSEARCH_VERSION = "2.19.6"
OPENSEARCH_LOG4J = "2.25.4"  # the log4j-api version opensearch 2.19.6 resolves to
# below 32768: a fixed port inside the ephemeral range (32768-60999) is now and then held by a
# client socket of the tests and the transport bind fails with "Address already in use"
ELASTICSEARCH_PORT = int(os.environ.get("NEXUS_ELASTICSEARCH_PORT", "29400"))  # transport: +100
ELASTICSEARCH_VERSION = "8.19.5"


class FerretDB(ProcessService):
    """FerretDB v1 (MongoDB wire protocol, SQLite backend), built once from the Go module proxy.

    ``go install`` of the module gives a binary that panics (no ``build/version/version.txt`` in
    the module zip), so the source is copied from ``go mod download``, the file written, and
    ``go build ./cmd/ferretdb`` run; the binary is cached under ~/.cache/nexus-services/ferretdb.
    """

    name = "ferretdb"
    process_hint = "ferretdb"

    def __init__(self, root: Path) -> None:
        Service.__init__(self, STATE_DIR)
        self.port = FERRETDB_PORT
        self.binary = CACHE_DIR / "ferretdb" / f"ferretdb-{FERRETDB_VERSION}"

    def install(self) -> None:
        if not self.binary.exists():
            go = shutil.which("go") or "/usr/local/go/bin/go"
            folder = CACHE_DIR / "ferretdb"
            folder.mkdir(parents=True, exist_ok=True)
            env = {**os.environ, "GOPATH": str(folder / "gopath"), "GOFLAGS": "-modcacherw",
                   "GOCACHE": str(folder / "gocache"), "CGO_ENABLED": "0"}
            log(f"building FerretDB {FERRETDB_VERSION} from the Go module proxy (~2 min) ...")
            module = run([go, "mod", "download", "-json",
                          f"github.com/FerretDB/FerretDB@{FERRETDB_VERSION}"],
                         env=env, timeout=600).stdout
            import json

            src = folder / "src"
            shutil.rmtree(src, ignore_errors=True)
            shutil.copytree(json.loads(module)["Dir"], src)
            for path in src.rglob("*"):
                os.chmod(path, 0o755 if path.is_dir() else 0o644)
            (src / "build" / "version" / "version.txt").write_text(FERRETDB_VERSION + "\n")
            tmp = self.binary.with_suffix(".tmp")
            proc = subprocess.run([go, "build", "-o", str(tmp), "./cmd/ferretdb"], cwd=src,
                                  env=env, text=True, capture_output=True, timeout=1800)
            if proc.returncode != 0:
                raise ServiceError(f"ferretdb: go build failed:\n{proc.stderr[-3000:]}")
            tmp.replace(self.binary)
            shutil.rmtree(src, ignore_errors=True)
        for sub in ("data", "state"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)

    def command(self) -> list[str]:
        return [str(self.binary), "--handler=sqlite", f"--sqlite-url=file:{self.dir / 'data'}/",
                f"--listen-addr={HOST}:{self.port}", f"--state-dir={self.dir / 'state'}",
                "--debug-addr=-", "--telemetry=disable", "--log-level=warn"]

    def env(self) -> dict[str, str]:
        return {"NEXUS_TEST_MONGODB_URI": f"mongodb://{HOST}:{self.port}/?directConnection=true"}


class SearchNode(ProcessService):
    """An embedded search node (OpenSearch or Elasticsearch) answering on ``port``; its URL is
    exported as ``env_name``."""

    env_name = ""

    def answers(self) -> bool:
        import json
        import urllib.request

        url = f"http://{HOST}:{self.port}/_cluster/health"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return json.load(response).get("status") in ("green", "yellow")
        except (OSError, ValueError):
            return False

    def env(self) -> dict[str, str]:
        return {self.env_name: f"http://{HOST}:{self.port}"}


class OpenSearchNode(SearchNode):
    """One embedded OpenSearch node from Maven Central jars (Java 17).

    The jars are fetched once with Maven and ``scripts/opensearch/NexusOpenSearchNode.java`` (a
    ``Node`` subclass with the Netty4 transport plugin) is compiled with javac into the cache.
    """

    name = "opensearch"
    process_hint = "NexusOpenSearchNode"
    env_name = "NEXUS_TEST_OPENSEARCH_URL"

    def __init__(self, root: Path) -> None:
        Service.__init__(self, STATE_DIR)
        self.port = OPENSEARCH_PORT
        self.folder = CACHE_DIR / "opensearch" / OPENSEARCH_VERSION
        source = REPO_ROOT / "scripts" / "opensearch" / "NexusOpenSearchNode.java"
        self.source = source
        digest = hashlib.sha1(source.read_bytes()).hexdigest()[:10] if source.exists() else "x"
        self.classes = self.folder / f"classes-{digest}"

    def install(self) -> None:
        apt_install("javac", "default-jdk-headless")
        libs = self.folder / "libs"
        if not (libs / ".complete").exists():
            apt_install("mvn", "maven")
            self.folder.mkdir(parents=True, exist_ok=True)
            deps = "".join(
                f"<dependency><groupId>{g}</groupId><artifactId>{a}</artifactId>"
                f"<version>{v}</version></dependency>"
                for g, a, v in (("org.opensearch", "opensearch", OPENSEARCH_VERSION),
                                ("org.opensearch.plugin", "transport-netty4-client",
                                 OPENSEARCH_VERSION),
                                ("org.apache.logging.log4j", "log4j-core", OPENSEARCH_LOG4J))
            )
            (self.folder / "pom.xml").write_text(
                '<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0'
                "</modelVersion><groupId>nexus.services</groupId><artifactId>opensearch-node"
                "</artifactId><version>1</version><packaging>pom</packaging>"
                f"<dependencies>{deps}</dependencies></project>\n"
            )
            log(f"fetching OpenSearch {OPENSEARCH_VERSION} jars from Maven Central ...")
            shutil.rmtree(libs, ignore_errors=True)
            run(["mvn", "-q", "-B", "-f", str(self.folder / "pom.xml"),
                 "dependency:copy-dependencies", "-DincludeScope=runtime",
                 f"-DoutputDirectory={libs}"], timeout=900)
            (libs / ".complete").write_text(OPENSEARCH_VERSION + "\n")
        if not (self.classes / "NexusOpenSearchNode.class").exists():
            tmp = self.classes.with_suffix(".tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            run(["javac", "-d", str(tmp), "-cp", f"{libs}/*", str(self.source)], timeout=300)
            tmp.replace(self.classes)
        self.dir.mkdir(parents=True, exist_ok=True)

    def command(self) -> list[str]:
        return ["java", "-Xms512m", "-Xmx512m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
                "-Dopensearch.set.netty.runtime.available.processors=false",
                "-cp", f"{self.folder / 'libs'}/*:{self.classes}", "NexusOpenSearchNode",
                str(self.dir / "home"), str(self.port), str(self.port + 100)]


class ElasticsearchNode(SearchNode):
    """One embedded Elasticsearch 8 node from Maven Central jars (Java 17).

    ``org.elasticsearch:elasticsearch`` and the ``transport-netty4`` plugin are fetched once with
    Maven into ~/.cache/nexus-services/elasticsearch/<version>; ``scripts/elasticsearch/`` holds
    the main class (a ``Node`` built from the modules folder) and the ``nexus-root`` plugin that
    serves ``GET /`` (the distribution's rest-root module is not on Maven Central). Netty and the
    plugins load from ``<build>/modules/<name>/`` as in the distribution; the build folder is
    named by a digest of the Java sources. No security (x-pack is not in these jars).
    """

    name = "elasticsearch"
    process_hint = "NexusElasticsearchNode"
    env_name = "NEXUS_TEST_ELASTICSEARCH_URL"

    def __init__(self, root: Path) -> None:
        Service.__init__(self, STATE_DIR)
        self.port = ELASTICSEARCH_PORT
        self.folder = CACHE_DIR / "elasticsearch" / ELASTICSEARCH_VERSION
        self.sources = [REPO_ROOT / "scripts" / "elasticsearch" / f"{name}.java"
                        for name in ("NexusElasticsearchNode", "NexusRootPlugin")]
        digest = hashlib.sha1()
        for source in self.sources:
            digest.update(source.read_bytes() if source.exists() else b"x")
        self.build = self.folder / f"build-{digest.hexdigest()[:10]}"

    def install(self) -> None:
        apt_install("javac", "default-jdk-headless")
        libs, netty = self.folder / "libs", self.folder / "netty"
        if not (libs / ".complete").exists():
            apt_install("mvn", "maven")
            self.folder.mkdir(parents=True, exist_ok=True)
            deps = "".join(
                f"<dependency><groupId>{g}</groupId><artifactId>{a}</artifactId>"
                f"<version>{ELASTICSEARCH_VERSION}</version></dependency>"
                for g, a in (("org.elasticsearch", "elasticsearch"),
                             ("org.elasticsearch.plugin", "transport-netty4"))
            )
            (self.folder / "pom.xml").write_text(
                '<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0'
                "</modelVersion><groupId>nexus.services</groupId><artifactId>elasticsearch-node"
                "</artifactId><version>1</version><packaging>pom</packaging>"
                f"<dependencies>{deps}</dependencies></project>\n"
            )
            log(f"fetching Elasticsearch {ELASTICSEARCH_VERSION} jars from Maven Central ...")
            download = self.folder / "download"
            for path in (download, libs, netty):
                shutil.rmtree(path, ignore_errors=True)
            run(["mvn", "-q", "-B", "-f", str(self.folder / "pom.xml"),
                 "dependency:copy-dependencies", "-DincludeScope=runtime",
                 f"-DoutputDirectory={download}"], timeout=900)
            # the plugin and Netty load in the plugin's own class loader, off the class path
            netty.mkdir()
            for jar in download.glob("*.jar"):
                if jar.name.startswith(("netty-", "transport-netty4-")):
                    jar.rename(netty / jar.name)
            download.rename(libs)
            (libs / ".complete").write_text(ELASTICSEARCH_VERSION + "\n")
        if not (self.build / "classes" / "NexusElasticsearchNode.class").exists():
            self.assemble(libs, netty)
        for sub in ("data", "logs"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)

    def assemble(self, libs: Path, netty: Path) -> None:
        """Compile the main class and lay out ``modules/`` in a fresh build folder."""
        import zipfile

        tmp = self.build.with_suffix(".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        node_source, plugin_source = self.sources
        run(["javac", "-d", str(tmp / "classes"), "-cp", f"{libs}/*", str(node_source)],
            timeout=300)
        transport = tmp / "modules" / "transport-netty4"
        transport.mkdir(parents=True)
        for jar in netty.glob("*.jar"):
            shutil.copy2(jar, transport / jar.name)
        plugin_jar = next(netty.glob("transport-netty4-*.jar"))
        with zipfile.ZipFile(plugin_jar) as archive:
            descriptor = archive.read(
                "META-INF/es-plugins/transport-netty4/plugin-descriptor.properties").decode()
        # without ``modulename`` the plugin loads in a plain class loader: a named module layer
        # needs the server jars on the module path, and here they are on the class path
        (transport / "plugin-descriptor.properties").write_text("".join(
            line for line in descriptor.splitlines(keepends=True)
            if not line.startswith("modulename=")))
        root = tmp / "modules" / "nexus-root"
        run(["javac", "-d", str(tmp / "root-classes"), "-cp", f"{libs}/*", str(plugin_source)],
            timeout=300)
        root.mkdir(parents=True)
        run(["jar", "cf", str(root / "nexus-root.jar"), "-C", str(tmp / "root-classes"), "."],
            timeout=120)
        (root / "plugin-descriptor.properties").write_text(
            "description=GET / of the embedded test node\n"
            f"version={ELASTICSEARCH_VERSION}\nname=nexus-root\nclassname=NexusRootPlugin\n"
            f"java.version=17\nelasticsearch.version={ELASTICSEARCH_VERSION}\n")
        shutil.rmtree(tmp / "root-classes")
        tmp.replace(self.build)

    def command(self) -> list[str]:
        return ["java", "-Xms256m", "-Xmx512m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
                "-cp", f"{self.folder / 'libs'}/*:{self.build / 'classes'}",
                "NexusElasticsearchNode", str(self.build), str(self.dir), str(self.port),
                str(self.port + 100)]


NOSQL_SERVICES = {"ferretdb": FerretDB, "opensearch": OpenSearchNode,
                  "elasticsearch": ElasticsearchNode}


SERVICES = {"postgres": Postgres, "mariadb": MariaDB}
SERVICES.update(STORAGE_SERVICES)
SERVICES.update(STREAM_SERVICES)
SERVICES.update(NOSQL_SERVICES)


def write_env() -> None:
    lines = [
        "# written by scripts/services.py start; source it before running pytest",
        f"export NEXUS_TEST_PG_URL='{PG_URL}'",
        f"export NEXUS_TEST_MARIADB_URL='{MARIADB_URL}'",
    ]
    for storage in (*STORAGE_SERVICES.values(), *STREAM_SERVICES.values(),
                    *NOSQL_SERVICES.values()):
        lines += [f"export {k}='{v}'" for k, v in storage(STATE_DIR).env().items()]
    tmp = ENV_FILE.with_suffix(".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(ENV_FILE)


# --------------------------------------------------------------------------------------------
# commands


def cmd_start(names: list[str], lease: int | None) -> None:
    ensure_packages(names)
    if set(SERVICES) <= set(names):
        # not a server: the browser the UI tests (tests/ui) drive with Playwright
        apt_install("chromium", "chromium")
    with state_lock():
        root = data_root()
        if lease is not None:
            LEASE_DIR.mkdir(exist_ok=True)
            (LEASE_DIR / str(lease)).write_text(f"{time.time()}\n")
        owner = "lease" if lease is not None else "manual"
        for name in names:
            SERVICES[name](root).start(owner)
        write_env()
    print(f"export NEXUS_TEST_PG_URL='{PG_URL}'")
    print(f"export NEXUS_TEST_MARIADB_URL='{MARIADB_URL}'")


def cmd_stop(names: list[str], lease: int | None) -> None:
    if not STATE_DIR.is_dir():
        log("nothing to stop (no state dir)")
        return
    with state_lock():
        root = data_root()
        if lease is not None:
            (LEASE_DIR / str(lease)).unlink(missing_ok=True)
            others = live_leases()
            if others:
                log(f"other test runs still use the servers (leases {others}); leaving them up")
                return
        for name in names:
            svc = SERVICES[name](root)
            owner = svc.owner()
            if owner is None:
                if svc.running():
                    log(f"{name}: not started by services.py here; leaving it alone")
                continue
            if lease is not None and owner != "lease":
                log(f"{name}: started manually; leaving it running")
                continue
            svc.stop()


def cmd_status(names: list[str]) -> int:
    if not STATE_DIR.is_dir():
        for name in names:
            print(f"{name}: stopped (no state dir)")
        return 1
    root = data_root()
    rc = 0
    for name in names:
        svc = SERVICES[name](root)
        print(svc.status())
        if not (svc.running() and svc.answers()):
            rc = 1
    leases = live_leases()
    if leases:
        print(f"leases: {leases}")
    return rc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["start", "stop", "status"])
    parser.add_argument("--only", default=",".join(SERVICES),
                        help="comma-separated subset of: " + ", ".join(SERVICES))
    parser.add_argument("--lease", type=int, default=None,
                        help="pid of the test run using the servers (scripts/test.sh passes $$)")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = sorted(set(names) - set(SERVICES))
    if unknown:
        parser.error(f"unknown service(s): {', '.join(unknown)}")
    if os.geteuid() != 0 and args.command != "status":
        log("warning: not running as root; installing packages and switching users will fail")
    try:
        if args.command == "start":
            cmd_start(names, args.lease)
        elif args.command == "stop":
            cmd_stop(names, args.lease)
        else:
            return cmd_status(names)
    except (ServiceError, subprocess.TimeoutExpired) as exc:
        log(f"ERROR: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
