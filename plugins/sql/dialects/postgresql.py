"""PostgreSQL: statement triggers over transition tables, ``ON CONFLICT`` upserts, ``= ANY(array)`` key lists.

Claims lock their queue rows (``FOR UPDATE SKIP LOCKED``) and a claim's holder is its
connection's backend pid, alive while ``pg_stat_activity`` lists it. Outputs may be
pgvector columns (``pgvector.py``).
"""

from __future__ import annotations

import hashlib
import typing as t

import sqlalchemy as sa

from pinnacle.plugins.sql.dialects.base import Dialect

__all__ = ["PostgreSQLDialect", "dialect"]

#: Outputs per commit from which COPY beats a plain upsert (it costs one statement more).
COPY_MIN_ROWS = 64


class PostgreSQLDialect(Dialect):
    """PostgreSQL through psycopg (or any SQLAlchemy PostgreSQL driver)."""

    name = "postgresql"
    supports_pgvector = True
    # Claims in progress need not outlive the server: keep them out of the WAL.
    ephemeral_table = {"prefixes": ["UNLOGGED"]}
    holder_sql = "SELECT pg_backend_pid()"
    holder_prefix = "pg"
    connections_sql = "SELECT pid FROM pg_stat_activity"
    lock_timeout_setting = "lock_timeout"
    lock_timeout_sql = "SET lock_timeout = {ms}"
    lock_timeout_codes = ("55P03",)  # lock_not_available
    # pinnacle's statements are short walks of indexes. A queue just filled has no statistics
    # yet, its claim looks costly to the planner, and JIT compiling it took ~30 ms per claim
    # (three times the claim itself).
    session_sql = ("SET jit = off",)

    # -- tables ---------------------------------------------------------------------------
    def id_default(self) -> sa.TextClause:
        return sa.text("md5(random()::text || clock_timestamp()::text)")

    # -- change capture -------------------------------------------------------------------
    def create_triggers(self, identifier, table, queue, pk, key_columns) -> list[str]:
        """Inserts and deletes are captured once per statement, from its transition table
        (``REFERENCING NEW/OLD TABLE``): one ``INSERT ... SELECT`` into the queue for all the
        statement's rows, where a row trigger ran a plpgsql call per row (a third of the cost
        of a 1,000-row insert). Updates of the watched columns keep a row trigger: a
        transition table cannot be limited to some columns (``UPDATE OF``)."""
        q = self.quote
        n = self._quoted_names(identifier)
        tbl, qtbl, qpk = q(table), q(queue), q(pk)
        cols = ", ".join(q(c) for c in self._watched(pk, key_columns))
        changed = q("_pinnacle_changed")
        return [
            f"""CREATE OR REPLACE FUNCTION {n['function']}() RETURNS trigger LANGUAGE plpgsql AS $body$
BEGIN
  IF TG_LEVEL = 'STATEMENT' THEN
    INSERT INTO {qtbl} (_source) SELECT {qpk} FROM {changed};
    RETURN NULL;
  END IF;
  IF TG_OP = 'DELETE' THEN
    INSERT INTO {qtbl} (_source) VALUES (OLD.{qpk});
    RETURN OLD;
  END IF;
  INSERT INTO {qtbl} (_source) VALUES (NEW.{qpk});
  IF TG_OP = 'UPDATE' AND OLD.{qpk} IS DISTINCT FROM NEW.{qpk} THEN
    INSERT INTO {qtbl} (_source) VALUES (OLD.{qpk});
  END IF;
  RETURN NEW;
END
$body$""",
            f"CREATE TRIGGER {n['ins']} AFTER INSERT ON {tbl} REFERENCING NEW TABLE AS {changed} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {n['function']}()",
            f"CREATE TRIGGER {n['del']} AFTER DELETE ON {tbl} REFERENCING OLD TABLE AS {changed} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {n['function']}()",
            f"CREATE TRIGGER {n['upd']} AFTER UPDATE OF {cols} ON {tbl} "
            f"FOR EACH ROW EXECUTE FUNCTION {n['function']}()",
        ]

    def drop_triggers(self, identifier, table) -> list[str]:
        """The same names remove the triggers of listeners made by earlier builds (one row
        trigger, ``__ins``, for all three events, calling the same function: its row branch)."""
        n = self._quoted_names(identifier)
        tbl = self.quote(table)
        return [
            *(f"DROP TRIGGER IF EXISTS {n[k]} ON {tbl}" for k in ("ins", "upd", "del")),
            f"DROP FUNCTION IF EXISTS {n['function']}()",
        ]

    # -- statements -----------------------------------------------------------------------
    #: ``one_of`` binds one array, whatever the number of keys.
    keys_per_statement = 100_000

    def one_of(self, column: sa.ColumnElement, keys: t.Sequence[t.Any]) -> sa.ColumnElement:
        """``column = ANY(:keys)``: one array parameter instead of one per key, so the
        statement is the same text for any number of keys."""
        from sqlalchemy.dialects.postgresql import ARRAY

        return column == sa.any_(sa.bindparam(None, list(keys), type_=ARRAY(column.type), unique=True))

    def _insert(self, table: sa.Table) -> t.Any:
        from sqlalchemy.dialects.postgresql import insert

        return insert(table)

    def upsert_outputs(self, conn, table, rows) -> None:
        """Binary ``COPY`` (psycopg 3): straight into the outputs table when none of the batch's
        sources has an output yet (a backfill, new rows: one index probe per key decides),
        else into a temporary staging table and then one ``INSERT ... SELECT ... ON CONFLICT
        DO UPDATE``. Both beat executemany by about two and three times for a batch. Small
        batches, other drivers and pgvector columns take the plain upsert.

        No other worker can write these sources' outputs meanwhile: the claim holds every
        queue entry of each of them (``claims.py``)."""
        if len(rows) < COPY_MIN_ROWS or not self._copyable(table):
            return super().upsert_outputs(conn, table, rows)
        cursor = conn.connection.driver_connection.cursor()
        if not hasattr(cursor, "copy"):  # not psycopg 3
            return super().upsert_outputs(conn, table, rows)
        q = self.quote
        names = ", ".join(q(c) for c in self.OUTPUT_COLUMNS)
        key = self.OUTPUT_COLUMNS[0]
        key_type = table.c[key].type.compile(dialect=conn.dialect)
        cursor.execute(
            f"SELECT EXISTS (SELECT 1 FROM {q(table.name)} WHERE {q(key)} = ANY(%s::{key_type}[]))", ([r[0] for r in rows],)
        )
        exists = cursor.fetchone()[0]
        target, types = self._stage(conn, cursor, table) if exists else (q(table.name), self._types(cursor, table, q(table.name)))
        with cursor.copy(f"COPY {target} ({names}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(types)
            for row in rows:
                copy.write_row(row)
        cursor.close()
        if exists:
            update = ", ".join(f"{q(c)} = EXCLUDED.{q(c)}" for c in self.OUTPUT_COLUMNS[1:])
            conn.exec_driver_sql(
                f"INSERT INTO {q(table.name)} ({names}) SELECT {names} FROM {target} "
                f"ON CONFLICT ({q(key)}) DO UPDATE SET {update}"
            )

    def _copyable(self, table: sa.Table) -> bool:
        """Output columns whose values psycopg writes in COPY's binary format as they come:
        a string or integer key, bytes, text and a float."""
        c = table.c
        key = c._source.type
        return (
            self._plain_outputs(table)
            and isinstance(key, (sa.String, sa.Integer)) and not isinstance(key, sa.Enum)
            and isinstance(c._output.type, sa.LargeBinary)
        )

    def _stage(self, conn: sa.Connection, cursor: t.Any, table: sa.Table) -> tuple[str, list[int]]:
        """A temporary table like ``table`` on this connection, emptied at each commit, and the
        type oids of its output columns. Made when missing: a rolled-back transaction takes
        the table it made with it, so this checks every time (a catalogue lookup)."""
        name = self.quote(f"_pinnacle_stage_{self._digest(table)}")
        cursor.execute(f"CREATE TEMPORARY TABLE IF NOT EXISTS {name} (LIKE {self.quote(table.name)}) ON COMMIT DELETE ROWS")
        return name, self._types(cursor, table, f"pg_temp.{name}")

    def _types(self, cursor: t.Any, table: sa.Table, relation: str) -> list[int]:
        """The type oids of the output columns of ``relation`` (``table`` or its staging table:
        the same definition, so the same oids), looked up once per definition."""
        digest = self._digest(table)
        oids = _STAGE_TYPES.get(digest)
        if oids is None:
            cursor.execute(
                "SELECT attname, atttypid FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped",
                (relation,),
            )
            found = dict(cursor.fetchall())
            oids = _STAGE_TYPES[digest] = [int(found[c]) for c in self.OUTPUT_COLUMNS]
        return oids

    def _digest(self, table: sa.Table) -> str:
        """A name for ``table``'s definition (its columns and their types)."""
        definition = tuple((c.name, str(c.type.compile(dialect=self.engine.dialect))) for c in table.c)
        return hashlib.sha1(repr((table.name, definition)).encode()).hexdigest()[:16]


#: Type oids of the output columns of each staging table definition (builtin types: stable).
_STAGE_TYPES: dict[str, list[int]] = {}


dialect = PostgreSQLDialect
