"""PostgreSQL: a plpgsql trigger function, ``ON CONFLICT`` upserts, ``= ANY(array)`` key lists.

Claims lock their queue rows (``FOR UPDATE SKIP LOCKED``) and a claim's holder is its
connection's backend pid, alive while ``pg_stat_activity`` lists it. Outputs may be
pgvector columns (``pgvector.py``).
"""

from __future__ import annotations

import typing as t

import sqlalchemy as sa

from pinnacle.plugins.sql.dialects.base import Dialect

__all__ = ["PostgreSQLDialect", "dialect"]


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

    # -- tables ---------------------------------------------------------------------------
    def id_default(self) -> sa.TextClause:
        return sa.text("md5(random()::text || clock_timestamp()::text)")

    # -- change capture -------------------------------------------------------------------
    def create_triggers(self, identifier, table, queue, pk, key_columns) -> list[str]:
        """One row trigger for insert, delete and update of the watched columns, calling a function."""
        q = self.quote
        n = self._quoted_names(identifier)
        tbl, qtbl, qpk = q(table), q(queue), q(pk)
        cols = ", ".join(q(c) for c in self._watched(pk, key_columns))
        return [
            f"""CREATE OR REPLACE FUNCTION {n['function']}() RETURNS trigger LANGUAGE plpgsql AS $body$
BEGIN
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
            f"CREATE TRIGGER {n['ins']} AFTER INSERT OR DELETE OR UPDATE OF {cols} ON {tbl} "
            f"FOR EACH ROW EXECUTE FUNCTION {n['function']}()",
        ]

    def drop_triggers(self, identifier, table) -> list[str]:
        n = self._quoted_names(identifier)
        return [f"DROP TRIGGER IF EXISTS {n['ins']} ON {self.quote(table)}", f"DROP FUNCTION IF EXISTS {n['function']}()"]

    # -- statements -----------------------------------------------------------------------
    def one_of(self, column: sa.ColumnElement, keys: t.Sequence[t.Any]) -> sa.ColumnElement:
        """``column = ANY(:keys)``: one array parameter instead of one per key, so the
        statement is the same text for any number of keys."""
        from sqlalchemy.dialects.postgresql import ARRAY

        return column == sa.any_(sa.bindparam(None, list(keys), type_=ARRAY(column.type), unique=True))

    def _insert(self, table: sa.Table) -> t.Any:
        from sqlalchemy.dialects.postgresql import insert

        return insert(table)


dialect = PostgreSQLDialect
