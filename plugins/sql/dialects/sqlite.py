"""SQLite: WAL and ``BEGIN IMMEDIATE`` transactions, claims without row locks, holders by process.

SQLite has one writer at a time, so a claim holds no transaction while the model runs
(:attr:`~SQLiteDialect.locking_claims` is false) and its commit checks which queue entries
are still there (``claims.py``). A claim's holder is this host's process id.
"""

from __future__ import annotations

import os
import socket
import typing as t

import sqlalchemy as sa

from pinnacle.errors import ConfigError
from pinnacle.plugins.sql.dialects.base import Dialect

__all__ = ["SQLiteDialect", "dialect"]

_HOST = socket.gethostname()


class SQLiteDialect(Dialect):
    """The embedded default."""

    name = "sqlite"
    locking_claims = False
    lock_timeout_setting = "busy_timeout"
    lock_timeout_sql = "PRAGMA busy_timeout = {ms}"
    lock_timeout_codes = ("SQLITE_BUSY",)  # "database is locked" after the busy timeout

    # -- connecting -----------------------------------------------------------------------
    @classmethod
    def create_engine(cls, url: sa.URL, **options: t.Any) -> sa.Engine:
        """WAL, a busy timeout (``busy_timeout_ms``, default 60 s) and ``BEGIN IMMEDIATE`` transactions."""
        if url.database and url.database != ":memory:":
            folder = os.path.dirname(os.path.abspath(url.database))
            os.makedirs(folder, exist_ok=True)
        busy_ms = int(options.pop("busy_timeout_ms", 60_000))
        engine = sa.create_engine(url, connect_args={"timeout": busy_ms / 1000, "check_same_thread": False}, **options)

        @sa.event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection, _record):  # pragma: no cover - trivial
            dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
            cursor = dbapi_connection.cursor()
            cursor.execute(f"PRAGMA busy_timeout = {busy_ms}")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute("PRAGMA foreign_keys = ON")
            cursor.close()

        @sa.event.listens_for(engine, "begin")
        def _on_begin(conn):  # pragma: no cover - trivial
            # One writer at a time, decided up front: no 'database is locked' on upgrade.
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine

    @classmethod
    def worker_url(cls, url: sa.URL) -> sa.URL:
        """The same file by its absolute path; an in-memory database cannot be shared."""
        if not url.database or url.database == ":memory:" or url.database.startswith("file::memory:"):
            raise ConfigError(
                "An in-memory SQLite database cannot be shared with worker processes; "
                "use a file, e.g. pinnacle.connect('sqlite:///docs.db')."
            )
        return url.set(database=os.path.abspath(url.database))

    # -- tables ---------------------------------------------------------------------------
    def id_default(self) -> sa.TextClause:
        return sa.text("(lower(hex(randomblob(16))))")

    # -- change capture -------------------------------------------------------------------
    def create_triggers(self, identifier, table, queue, pk, key_columns) -> list[str]:
        q = self.quote
        n = self._quoted_names(identifier)
        tbl, qtbl, qpk = q(table), q(queue), q(pk)
        cols = ", ".join(q(c) for c in self._watched(pk, key_columns))
        return [
            f"CREATE TRIGGER {n['ins']} AFTER INSERT ON {tbl} BEGIN "
            f"INSERT INTO {qtbl} (_source) VALUES (NEW.{qpk}); END",
            f"CREATE TRIGGER {n['upd']} AFTER UPDATE OF {cols} ON {tbl} BEGIN "
            f"INSERT INTO {qtbl} (_source) VALUES (NEW.{qpk}); "
            f"INSERT INTO {qtbl} (_source) SELECT OLD.{qpk} WHERE OLD.{qpk} IS NOT NEW.{qpk}; END",
            f"CREATE TRIGGER {n['del']} AFTER DELETE ON {tbl} BEGIN "
            f"INSERT INTO {qtbl} (_source) VALUES (OLD.{qpk}); END",
        ]

    # -- statements -----------------------------------------------------------------------
    def _insert(self, table: sa.Table) -> t.Any:
        from sqlalchemy.dialects.sqlite import insert

        return insert(table)

    # -- locking --------------------------------------------------------------------------
    def select_for_update(self, conn, table, query, *, skip_locked):
        """``query``'s rows, unlocked: ``BEGIN IMMEDIATE`` already holds the database's write lock."""
        return conn.execute(query)

    # -- claim holders --------------------------------------------------------------------
    def holder_of(self, conn: sa.Connection) -> str:
        """``sqlite:<host>:<pid>``: this process, which holds the claim."""
        return f"sqlite:{_HOST}:{os.getpid()}"

    def alive_holders(self, conn: sa.Connection, holders: set[str]) -> set[str]:
        """Holders whose process is alive; another host's processes cannot be checked: alive."""
        found = set()
        for holder in holders:
            host, _, pid = holder.partition(":")[2].rpartition(":")
            if host != _HOST or _process_exists(int(pid)):
                found.add(holder)
        return found


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


dialect = SQLiteDialect
