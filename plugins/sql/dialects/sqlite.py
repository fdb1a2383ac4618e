"""SQLite: WAL and ``BEGIN IMMEDIATE`` transactions, claims without row locks, holders by process.

SQLite has one writer at a time, so a claim holds no transaction while the model runs
(:attr:`~SQLiteDialect.locking_claims` is false) and its commit checks which queue entries
are still there (``claims.py``). A claim's holder is this host's process id.
"""

from __future__ import annotations

import functools
import json
import os
import socket
import sqlite3
import typing as t

import sqlalchemy as sa

from pinnacle.errors import ConfigError
from pinnacle.plugins.sql.dialects.base import Dialect

__all__ = ["SQLiteDialect", "dialect"]

_HOST = socket.gethostname()
#: Execution option of a connection that only reads (see ``SQLiteDialect.read_connection``).
_READ_ONLY = "pinnacle_read_only"


@functools.lru_cache(maxsize=None)
def _has_json_each() -> bool:
    """Whether this process's SQLite library has ``json_each`` (built in from 3.38, and in most builds before)."""
    try:
        sqlite3.connect(":memory:").execute("SELECT count(*) FROM json_each('[1]')").fetchone()
    except sqlite3.Error:
        return False
    return True


class SQLiteDialect(Dialect):
    """The embedded default."""

    name = "sqlite"
    locking_claims = False
    #: ``DELETE ... RETURNING``: from SQLite 3.35.
    delete_returning = sqlite3.sqlite_version_info >= (3, 35)
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
            # A read-only transaction (see read_connection) takes no lock: WAL readers never wait.
            conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get(_READ_ONLY) else "BEGIN IMMEDIATE")

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

    def read_connection(self) -> sa.Connection:
        """A connection whose transactions only read: a plain ``BEGIN`` (one snapshot, no write
        lock), so a drain's next claim reads while its previous batch commits."""
        return self.engine.connect().execution_options(**{_READ_ONLY: True})

    # -- statements -----------------------------------------------------------------------
    def _insert(self, table: sa.Table) -> t.Any:
        from sqlalchemy.dialects.sqlite import insert

        return insert(table)

    @property
    def keys_per_statement(self) -> int:  # type: ignore[override]
        """Keys per ``one_of`` statement: one JSON array holds any number (else SQLite's variable limit)."""
        return 100_000 if _has_json_each() else 900

    def one_of(self, column: sa.ColumnElement, keys: t.Sequence[t.Any]) -> sa.ColumnElement:
        """``column IN (SELECT value FROM json_each(:keys))``: one parameter, a JSON array,
        whatever the number of keys (plain ``IN`` for keys JSON cannot carry exactly).

        Example:
            >>> docs = sa.table("docs", sa.column("id", sa.Integer))
            >>> " ".join(str(SQLiteDialect(sa.create_engine("sqlite://")).one_of(docs.c.id, [1, 2])).split())
            'docs.id IN (SELECT value FROM json_each(:param_1))'
        """
        keys = list(keys)
        if not _has_json_each() or not all(type(k) in (str, int) for k in keys):
            return column.in_(keys)
        values = sa.select(sa.literal_column("value")).select_from(sa.func.json_each(sa.bindparam(None, json.dumps(keys), type_=sa.String)))
        return column.in_(values.scalar_subquery())

    def upsert_outputs(self, conn, table, rows) -> None:
        """One prepared ``INSERT ... ON CONFLICT DO UPDATE`` run by the driver's executemany."""
        if not rows:
            return
        if not self._plain_outputs(table):
            return super().upsert_outputs(conn, table, rows)
        key = self.quote(self.OUTPUT_COLUMNS[0])
        self._executemany_outputs(conn, table, rows, marker="?", on_conflict=f"ON CONFLICT ({key}) DO UPDATE SET", assign="{c} = excluded.{c}")

    # -- locking --------------------------------------------------------------------------
    def select_for_update(self, conn, table, query, *, skip_locked, recheck=None):
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
