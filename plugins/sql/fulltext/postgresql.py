"""PostgreSQL: a GIN index on ``to_tsvector('<language>'::regconfig, column)``.

An expression index: the table keeps its columns (nothing is added to the rows), and
PostgreSQL keeps the index current on every write, by any client. A query matches any
word of the query (``phraseto_tsquery`` per word, joined with ``||``: ``E-4471`` stays a
phrase) and ranks by ``ts_rank_cd``. The language is a text search configuration
(``english`` by default, ``simple`` for no stemming and no stop words).
"""

from __future__ import annotations

import functools

import sqlalchemy as sa

from pinnacle.errors import ConfigError
from pinnacle.plugins.sql.fulltext.common import SQLFullText

__all__ = ["PostgreSQLFullText", "full_text", "DEFAULT_LANGUAGE"]

DEFAULT_LANGUAGE = "english"


class PostgreSQLFullText(SQLFullText):
    """``tsvector`` expression + GIN."""

    @property
    def language(self) -> str:
        return self.spec.language or DEFAULT_LANGUAGE

    def _config(self) -> sa.ColumnElement:
        # The language is checked by VectorIndex (lowercase letters, digits, '_'): safe as a literal,
        # and a literal is what an index expression and the queries that use it must share.
        return sa.literal_column(f"'{self.language}'::regconfig")

    def vector(self, column: sa.Column) -> sa.ColumnElement:
        return sa.func.to_tsvector(self._config(), column)

    def exists(self) -> bool:
        with self.errors("looking up"), self.backend.engine.connect() as conn:
            return conn.execute(sa.text("SELECT to_regclass(:name) IS NOT NULL"), {"name": self.quote(self.spec.name)}).scalar()

    def create(self) -> None:
        if self.exists():
            return
        table, _ = self.source()
        with self.errors("creating"), self.backend.engine.begin() as conn:
            known = conn.execute(sa.text("SELECT cfgname FROM pg_ts_config ORDER BY cfgname")).scalars().all()
            if self.language not in known:
                raise ConfigError(
                    f"VectorIndex {self.spec.identifier!r}: full_text_language {self.language!r} is not a text "
                    f"search configuration of this PostgreSQL; it has {known}."
                )
            expression = self.vector(table.c[self.spec.column]).compile(conn, compile_kwargs={"literal_binds": True})
            conn.exec_driver_sql(
                f"CREATE INDEX IF NOT EXISTS {self.quote(self.spec.name)} ON {self.quote(self.spec.table)} "
                f"USING gin ({expression})"
            )

    def drop(self) -> None:
        with self.errors("dropping"), self.backend.engine.begin() as conn:
            conn.exec_driver_sql(f"DROP INDEX IF EXISTS {self.quote(self.spec.name)}")

    def query(self, words: list[str]) -> sa.ColumnElement:
        """Any of ``words``: ``phraseto_tsquery(w1) || phraseto_tsquery(w2) ...``."""
        parts = [sa.func.phraseto_tsquery(self._config(), sa.bindparam(f"w{i}", w, type_=sa.Text)) for i, w in enumerate(words)]
        return functools.reduce(lambda a, b: a.op("||")(b), parts)

    def select(self, words, n, within, filter):
        table, pk = self.source()
        vector = self.vector(table.c[self.spec.column])
        query = self.query(words)
        rank = sa.func.ts_rank_cd(vector, query)
        select = sa.select(pk, rank.label("score")).where(vector.op("@@")(query))
        return self.restrict(select, table, pk, within, filter).order_by(rank.desc(), pk).limit(n)


full_text = PostgreSQLFullText
