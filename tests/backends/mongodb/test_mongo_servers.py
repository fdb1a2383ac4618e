"""The plugin tests run on PINNACLE_MONGODB_URI's server when it is set, not on mongomock only (issue 17)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from mongo_servers import database_uri

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
NOWHERE = "mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=200"  # nothing listens on port 1


def _pytest(*tests: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-v", "-rs", "-p", "no:cacheprovider", *[f"{HERE}/{t}" for t in tests]],
        cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, timeout=300,
    )


def test_each_database_gets_its_own_name_on_the_server():
    assert database_uri("mongodb", "pn_a", "mongodb://h:27017/app?replicaSet=rs0&directConnection=true") == (
        "mongodb://h:27017/pn_a?replicaSet=rs0&directConnection=true")
    assert database_uri("mongodb", "pn_a", "mongodb+srv://u:p@cluster0.example.net") == "mongodb+srv://u:p@cluster0.example.net/pn_a"


def test_the_plugin_tests_follow_PINNACLE_MONGODB_URI():
    run = _pytest("test_mongo_documents.py::test_duplicate_id_is_a_backend_error",
                  "test_mongo_server.py::test_mongomock_has_no_transactions_or_change_streams",
                  PINNACLE_MONGODB_URI=NOWHERE, CI="")
    out = run.stdout
    assert run.returncode == 0, out
    assert "test_duplicate_id_is_a_backend_error[mongomock] PASSED" in out
    assert "test_duplicate_id_is_a_backend_error[mongodb] SKIPPED" in out  # it tried the server
    assert f"MongoDB server at {NOWHERE} is not reachable: ServerSelectionTimeoutError" in out
    assert "mongomock only: checks what mongomock lacks" in out  # a mongomock-only test says why


def test_under_ci_an_unreachable_server_fails_the_tests():
    run = _pytest("test_mongo_documents.py::test_duplicate_id_is_a_backend_error", PINNACLE_MONGODB_URI=NOWHERE, CI="true")
    assert run.returncode == 1, run.stdout
    assert "CI=true: server tests must run, not skip" in run.stdout
    assert "test_duplicate_id_is_a_backend_error[mongomock] PASSED" in run.stdout
