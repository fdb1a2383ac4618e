"""BackendError.transient: what a worker waits out (an outage) and what stops it (a permanent refusal)."""

from __future__ import annotations

import sqlite3

import pytest
import sqlalchemy as sa

from pinnacle.cli.worker import _is_outage
from pinnacle.errors import BackendError
from pinnacle.plugins.sql.dialects import dialect_class
from pinnacle.plugins.sql.engine import backend_error


def _sql(exc: BaseException) -> BackendError:
    return backend_error("drain of listener 'emb'", exc, dialect_class("sqlite"), 60, "sqlite:///d.db")


def test_sql_database_side_errors_are_transient():
    locked = sa.exc.OperationalError("UPDATE ...", {}, sqlite3.OperationalError("database is locked"))
    assert _sql(locked).transient and _is_outage(_sql(locked))
    full = sqlite3.OperationalError("database or disk is full")
    assert _sql(full).transient


def test_sql_statement_errors_are_not_transient():
    bad = sa.exc.IntegrityError("INSERT ...", {}, sqlite3.IntegrityError("UNIQUE constraint failed: docs._id"))
    error = _sql(bad)
    assert not error.transient and not _is_outage(error)
    assert "UNIQUE constraint failed" in str(error) and isinstance(error.orig, sqlite3.IntegrityError)


def test_mongo_connection_failures_are_transient_and_refusals_are_not():
    pymongo = pytest.importorskip("pymongo")
    from pinnacle.plugins.mongodb.errors import backend_error as mongo_error

    lost = mongo_error("claim of listener 'emb'", pymongo.errors.AutoReconnect("connection reset"), "mongodb://db1/app")
    assert lost.transient and _is_outage(lost)
    refused = mongo_error(
        "change stream of 'docs'", pymongo.errors.OperationFailure("The $changeStream stage is only supported on replica sets", 40573),
        "mongodb://db1/app",
    )
    assert not refused.transient and not _is_outage(refused)


def test_a_plain_error_is_not_an_outage():
    assert not _is_outage(RuntimeError("boom"))
    assert not _is_outage(BackendError("Cannot create table 'docs': ..."))


def test_a_write_whose_outputs_fail_to_commit_says_its_rows_are_kept(monkeypatch):
    import pinnacle

    db = pinnacle.connect("sqlite://")
    db["docs"].insert([{"_id": "0", "text": "first"}])

    def lost(table, ids):
        raise BackendError("commit of the claim of listener 'emb' failed: the connection was lost", transient=True)

    monkeypatch.setattr(db.runtimes, "drain_table", lost)
    with pytest.raises(BackendError, match="stay queued") as caught:
        db["docs"].insert([{"_id": "1", "text": "second"}])
    assert caught.value.transient
    assert db["docs"].get("1")["text"] == "second"  # the row itself was written
