"""Fixtures of the fault tests (issue 16): throwaway servers, SQL backends, counts.

``backend_kind`` is narrowed to SQLite, PostgreSQL and MariaDB (the shared servers of
``tests/conftest.py``); ``pg_server``/``maria_server`` are servers of this session's own
that a test may restart (``servers.py``). ``procs`` starts ``pinnacle worker`` processes
(``tests/reliability/helpers.py``). The counts each test records with ``faults_report``
are printed at the end of the run and written to ``$PINNACLE_FAULTS_REPORT`` (default
``.pytest_cache/pinnacle-faults.json``).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

_TESTS = str(Path(__file__).resolve().parent.parent)
if _TESTS not in sys.path:  # ``reliability.*`` and ``fixtures.*`` import under any import mode
    sys.path.insert(0, _TESTS)

from faults.servers import ThrowawayMariaDB, ThrowawayPostgreSQL  # noqa: E402
from reliability.helpers import Procs, check_server  # noqa: E402

_REPORT: list[dict] = []
SQL_BACKENDS = ("sqlite", "postgresql", "mariadb")


@pytest.fixture(params=[pytest.param(k, marks=getattr(pytest.mark, k)) for k in SQL_BACKENDS])
def backend_kind(request) -> str:
    """Which SQL backend this test runs on (overrides the root fixture, which adds MongoDB)."""
    if request.param != "sqlite":
        check_server(request.param)
    return request.param


@pytest.fixture(scope="session")
def pg_server():
    server = ThrowawayPostgreSQL()
    yield server
    server.remove()


@pytest.fixture(scope="session")
def maria_server():
    server = ThrowawayMariaDB()
    yield server
    server.remove()


@pytest.fixture(params=[pytest.param("postgresql", marks=pytest.mark.postgresql),
                        pytest.param("mariadb", marks=pytest.mark.mariadb)])
def own_server(request):
    """A throwaway server this test may restart, with an empty database ``test`` (dropped
    and made again for each test)."""
    server = request.getfixturevalue("pg_server" if request.param == "postgresql" else "maria_server")
    server.start() if not _alive(server) else None
    with server.admin().connect() as conn:
        if server.kind == "postgresql":
            conn.exec_driver_sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = 'test' AND pid <> pg_backend_pid()")
            conn.exec_driver_sql("DROP DATABASE IF EXISTS test")
            conn.exec_driver_sql("CREATE DATABASE test")
        else:
            conn.exec_driver_sql("DROP DATABASE IF EXISTS test")
            conn.exec_driver_sql("CREATE DATABASE test")
    yield server
    if not _alive(server):
        server.start()


def _alive(server) -> bool:
    try:
        engine = server.admin()
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
        engine.dispose()
        return True
    except Exception:  # noqa: BLE001
        return False


@pytest.fixture
def procs(tmp_path):
    """Start ``pinnacle worker`` processes (``procs.cli(...)``); leftovers are killed by pid."""
    log_dir = tmp_path / "procs"
    log_dir.mkdir()
    manager = Procs(log_dir)
    yield manager
    manager.cleanup()


@pytest.fixture
def faults_report(request):
    """``faults_report(**counts)`` records this test's counts for the end-of-run summary."""

    def add(**counts):
        entry = {"test": request.node.nodeid, **counts}
        _REPORT.append(entry)
        print("FAULTS " + json.dumps(entry, sort_keys=True))

    return add


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not _REPORT:
        return
    terminalreporter.section("fault counts (issue 16)")
    for entry in _REPORT:
        terminalreporter.write_line(json.dumps(entry, sort_keys=True))
    path = os.environ.get("PINNACLE_FAULTS_REPORT") or os.path.join(str(config.rootpath), ".pytest_cache", "pinnacle-faults.json")
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as fh:
            json.dump(_REPORT, fh, indent=1, sort_keys=True)
        terminalreporter.write_line(f"(written to {path})")
    except OSError as exc:
        terminalreporter.write_line(f"(could not write {path}: {exc})")
