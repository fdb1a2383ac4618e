"""A throwaway PostgreSQL 16 cluster with pgvector, from the ``pgserver`` wheel's binaries.

The PostgreSQL service of the test machine has no ``vector`` extension, so these tests
start their own cluster once per session: ``initdb`` into a temporary folder, ``pg_ctl
start`` on a free port (TCP on 127.0.0.1, the unix socket in the same folder), stopped and
removed at the end. ``initdb`` refuses to run as root: as root the cluster belongs to the
``postgres`` user (``runuser``). When it cannot start, the tests skip with the reason,
except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid as _uuid
from pathlib import Path

import pytest

_TESTS = str(Path(__file__).resolve().parents[2])
if _TESTS not in sys.path:  # for ``reliability.flaky_models`` (HashEmbed), under any import mode
    sys.path.insert(0, _TESTS)


def _bin_dir() -> Path:
    spec = importlib.util.find_spec("pgserver")  # located, not imported: nothing runs
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the pgserver wheel is not installed (pip install 'pinnacle[test]')")
    found = Path(list(spec.submodule_search_locations)[0]) / "pginstall" / "bin"
    if not (found / "initdb").exists():
        raise RuntimeError(f"no initdb in {found}")
    return found


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _Cluster:
    """initdb + pg_ctl in a temporary folder; ``uri`` reaches database ``postgres`` as ``postgres``."""

    def __init__(self) -> None:
        self.bin = _bin_dir()
        self.folder = Path(tempfile.mkdtemp(prefix="pinnacle-pgvector-"))
        self.data = self.folder / "data"
        self.port = _free_port()
        self.as_root = os.geteuid() == 0
        if self.as_root:
            shutil.chown(self.folder, user="postgres")
        self.uri = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        command = [str(self.bin / args[0]), *args[1:]]
        if self.as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{args[0]} failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}")

    def start(self) -> None:
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.folder} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c maintenance_work_mem=256MB"
        )
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.folder / "log"), "-o", options, "-w", "-t", "60", "start")

    def stop(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture(scope="session")
def pgvector_server():
    """The URI of a running PostgreSQL 16 with the ``vector`` extension installed in ``public``."""
    import sqlalchemy as sa

    cluster = None
    try:
        cluster = _Cluster()
        cluster.start()
        engine = sa.create_engine(cluster.uri.replace("postgresql://", "postgresql+psycopg://"), isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS vector SCHEMA public")
        engine.dispose()
    except Exception as exc:  # noqa: BLE001 - any failure means "cannot start"
        if cluster is not None:
            cluster.stop()
        reason = f"cannot start a PostgreSQL cluster with pgvector from pgserver's binaries: {exc}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason} (CI=true: these tests must run, not skip)", pytrace=False)
        pytest.skip(reason)
    yield cluster.uri
    cluster.stop()


@pytest.fixture
def pg_uri(pgvector_server):
    """A URI to a fresh schema of the pgvector cluster (``public``, with ``vector``, on the search path)."""
    import sqlalchemy as sa

    name = f"pv_{_uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(
        pgvector_server.replace("postgresql://", "postgresql+psycopg://"), isolation_level="AUTOCOMMIT",
        poolclass=sa.pool.NullPool,
    )
    with engine.connect() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{name}"')
    try:
        yield f"{pgvector_server}?options=-csearch_path%3D{name},public"
    finally:
        with engine.connect() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
        engine.dispose()


@pytest.fixture
def pg_connect(pg_uri):
    """``pg_connect(**options)``: a Datalayer on this test's schema (closed at the end)."""
    import pinnacle

    opened = []

    def open_(**options):
        db = pinnacle.connect(pg_uri, **options)
        opened.append(db)
        return db

    yield open_
    for db in opened:
        db.close()
