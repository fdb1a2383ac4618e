"""Fixtures of the reliability tests (issue 3): worker processes and a summary of the counts.

The database fixtures (``backend_uri``, ``db``, ``connect``, ``raw_engine``) and the model fixtures (``model_path``, ``minilm``, ``st_native``) come from ``tests/conftest.py``; ``backend_kind`` is narrowed here to SQLite, PostgreSQL and
MariaDB.
The counts of the crash and concurrency tests (kill points, rows, outputs, duplicates, lost)
are printed at the end of the run and written to ``$PINNACLE_RELIABILITY_REPORT``
(default ``.pytest_cache/pinnacle-reliability.json``).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

_TESTS = str(Path(__file__).resolve().parent.parent)
if _TESTS not in sys.path:  # so that ``reliability.flaky_models`` imports under any import mode
    sys.path.insert(0, _TESTS)

from reliability.helpers import Procs, check_server  # noqa: E402

_REPORT: list[dict] = []

#: Issue 3 is about the SQL backends; these tests use raw SQL and several processes.
SQL_BACKENDS = ("sqlite", "postgresql", "mariadb")


@pytest.fixture(params=[pytest.param(k, marks=getattr(pytest.mark, k)) for k in SQL_BACKENDS])
def backend_kind(request) -> str:
    """Which SQL backend this test runs on (overrides the root fixture, which adds MongoDB)."""
    if request.param != "sqlite":
        check_server(request.param)
    return request.param


@pytest.fixture
def procs(tmp_path):
    """Start worker processes (``procs.worker(...)``, ``procs.cli(...)``); leftovers are killed by pid."""
    log_dir = tmp_path / "procs"
    log_dir.mkdir()
    manager = Procs(log_dir)
    yield manager
    manager.cleanup()


@pytest.fixture
def report(request):
    """``report(**counts)`` records the counts of this test for the end-of-run summary."""

    def add(**counts):
        entry = {"test": request.node.nodeid, **counts}
        _REPORT.append(entry)
        print("RELIABILITY " + json.dumps(entry, sort_keys=True))

    return add


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not _REPORT:
        return
    terminalreporter.section("reliability counts (issue 3)")
    for entry in _REPORT:
        terminalreporter.write_line(json.dumps(entry, sort_keys=True))
    path = os.environ.get("PINNACLE_RELIABILITY_REPORT") or os.path.join(str(config.rootpath), ".pytest_cache", "pinnacle-reliability.json")
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as fh:
            json.dump(_REPORT, fh, indent=1, sort_keys=True)
        terminalreporter.write_line(f"(written to {path})")
    except OSError as exc:  # a read-only checkout must not fail the run
        terminalreporter.write_line(f"(could not write {path}: {exc})")
