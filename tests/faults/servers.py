"""Throwaway database servers that a test may stop, kill and restart.

The shared servers on 5432/3306 serve every other test running at the same time, so the
restart tests never touch them: they start a PostgreSQL cluster (``initdb`` + ``pg_ctl``,
run as the ``postgres`` user when this runs as root) or a MariaDB server
(``mariadb-install-db`` + ``mariadbd``) of their own, in a temporary folder, on a free
loopback port, and remove it at the end. Each is made once per test session.

Where the binaries are missing the tests skip with the reason, except under ``CI=true``,
where they fail: CI must not pass by skipping.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import typing as t

import pytest
import sqlalchemy as sa


def unavailable(reason: str) -> t.NoReturn:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: these tests must run, not skip)", pytrace=False)
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class Server:
    """A server the test owns: :meth:`stop` (``"fast"`` or ``"immediate"``, like a crash),
    :meth:`start`, :meth:`restart`; :attr:`uri` reaches its database ``test``."""

    kind = ""
    uri = ""
    admin_url = ""

    def start(self) -> None: ...
    def stop(self, mode: str = "fast") -> None: ...
    def remove(self) -> None: ...

    def restart(self, down_s: float, mode: str = "fast") -> None:
        """Stop, stay down ``down_s`` seconds, start again (and wait until it accepts connections)."""
        self.stop(mode)
        time.sleep(down_s)
        self.start()

    def admin(self) -> sa.Engine:
        return sa.create_engine(self.admin_url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                engine = self.admin()
                with engine.connect() as conn:
                    conn.exec_driver_sql("SELECT 1")
                engine.dispose()
                return
            except Exception as exc:  # noqa: BLE001 - not up yet
                last = exc
                time.sleep(0.1)
        raise AssertionError(f"{self.kind} did not accept connections in {timeout} s: {last}")


class ThrowawayPostgreSQL(Server):
    """A PostgreSQL 15 cluster of its own (trust auth, fsync off: nothing here must survive the machine)."""

    kind = "postgresql"

    def __init__(self) -> None:
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        initdb = os.environ.get("PINNACLE_TEST_INITDB") or (found[-1] if found else shutil.which("initdb"))
        if not initdb:
            unavailable("no initdb found (/usr/lib/postgresql/*/bin): cannot start a throwaway PostgreSQL")
        self.bin = os.path.dirname(initdb)
        self.base = tempfile.mkdtemp(prefix="pn-faults-pg-")
        self.data = os.path.join(self.base, "data")
        self.port = free_port()
        self.as_user: list[str] = []
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            try:
                user = pwd.getpwnam("postgres")
            except KeyError:
                unavailable("running as root and there is no 'postgres' user to run a throwaway PostgreSQL")
            os.chown(self.base, user.pw_uid, user.pw_gid)
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self._run([initdb, "-D", self.data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"])
        self.admin_url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        self.uri = f"postgresql://postgres@127.0.0.1:{self.port}/test"
        self.start()
        with self.admin().connect() as conn:
            conn.exec_driver_sql("CREATE DATABASE test")

    def _run(self, argv: list[str]) -> None:
        done = subprocess.run(self.as_user + argv, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
        self._run([f"{self.bin}/pg_ctl", "-D", self.data, "-o", options, "-l", os.path.join(self.base, "log"), "-w", "-t", "60", "start"])
        self.wait_ready()

    def stop(self, mode: str = "fast") -> None:
        self._run([f"{self.bin}/pg_ctl", "-D", self.data, "-m", mode, "-w", "-t", "60", "stop"])

    def remove(self) -> None:
        try:
            subprocess.run(self.as_user + [f"{self.bin}/pg_ctl", "-D", self.data, "-m", "immediate", "stop"],
                           capture_output=True, timeout=60)
        finally:
            shutil.rmtree(self.base, ignore_errors=True)


class ThrowawayMariaDB(Server):
    """A MariaDB server of its own: its own datadir, socket, port and pid file."""

    kind = "mariadb"

    def __init__(self) -> None:
        install = shutil.which("mariadb-install-db") or shutil.which("mysql_install_db")
        server = shutil.which("mariadbd") or shutil.which("mysqld") or next(
            (p for p in ("/usr/sbin/mariadbd", "/usr/sbin/mysqld") if os.path.exists(p)), None)
        if not install or not server:
            unavailable("no mariadb-install-db/mariadbd found: cannot start a throwaway MariaDB")
        self.server = server
        self.base = tempfile.mkdtemp(prefix="pn-faults-maria-")
        self.data = os.path.join(self.base, "data")
        self.port = free_port()
        self.user = ["--user=root"] if os.geteuid() == 0 else []
        done = subprocess.run(
            [install, "--no-defaults", f"--datadir={self.data}", "--auth-root-authentication-method=normal",
             "--skip-test-db", *self.user], capture_output=True, text=True, timeout=180,
        )
        if done.returncode != 0:
            raise AssertionError(f"mariadb-install-db failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        self.proc: subprocess.Popen | None = None
        self.admin_url = f"mysql+pymysql://root@127.0.0.1:{self.port}/mysql"
        self.uri = f"mysql://root@127.0.0.1:{self.port}/test"
        self.start()
        with self.admin().connect() as conn:
            conn.exec_driver_sql("CREATE DATABASE test")

    def start(self) -> None:
        log = open(os.path.join(self.base, "server.log"), "a")
        self.proc = subprocess.Popen(
            [self.server, "--no-defaults", f"--datadir={self.data}", f"--socket={self.base}/sock", f"--port={self.port}",
             "--bind-address=127.0.0.1", f"--pid-file={self.base}/pid", "--skip-log-bin", "--skip-name-resolve",
             "--innodb-buffer-pool-size=32M", "--innodb-log-file-size=16M", "--innodb-flush-log-at-trx-commit=2",
             "--max-connections=200", *self.user],
            stdout=log, stderr=log,
        )
        log.close()
        deadline = time.monotonic() + 60
        while not _listening(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"mariadbd did not start:\n{open(os.path.join(self.base, 'server.log')).read()[-3000:]}")
            time.sleep(0.05)
        self.wait_ready()

    def stop(self, mode: str = "fast") -> None:
        """``fast``: SIGTERM (a clean shutdown); ``immediate``: SIGKILL (a crash, recovered at start)."""
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM if mode == "fast" else signal.SIGKILL)
        self.proc.wait(timeout=60)
        self.proc = None

    def remove(self) -> None:
        try:
            if self.proc is not None:
                self.proc.kill()
                self.proc.wait(timeout=30)
        finally:
            shutil.rmtree(self.base, ignore_errors=True)
