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
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.answers():
                return
            pid = self.pid()
            if pid is not None and not pid_alive(pid, self.process_hint):
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


SERVICES = {"postgres": Postgres, "mariadb": MariaDB}


def write_env() -> None:
    lines = [
        "# written by scripts/services.py start; source it before running pytest",
        f"export NEXUS_TEST_PG_URL='{PG_URL}'",
        f"export NEXUS_TEST_MARIADB_URL='{MARIADB_URL}'",
    ]
    tmp = ENV_FILE.with_suffix(".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(ENV_FILE)


# --------------------------------------------------------------------------------------------
# commands


def cmd_start(names: list[str], lease: int | None) -> None:
    ensure_packages(names)
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
