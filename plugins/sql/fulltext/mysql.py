"""MySQL/MariaDB: an InnoDB ``FULLTEXT`` index on the column.

``ALTER TABLE <table> ADD FULLTEXT INDEX _fts__<index> (<column>)``; InnoDB keeps it current
on every write, by any client. Queries use ``MATCH ... AGAINST (... IN NATURAL LANGUAGE
MODE)``: any word matches, the query's characters are never operators, rows rank by
InnoDB's relevance.

What InnoDB's full-text search does not see (docs/search.md, "Hybrid"):

- **uncommitted rows**: the index takes a transaction's changes when it commits, so a row
  is searchable by text once its writer committed (every pinnacle write commits before it
  returns);
- **short words and stop words**: words shorter than ``innodb_ft_min_token_size`` (3 by
  default; MariaDB and MySQL alike) and those of InnoDB's stop word list (``the``, ``on``,
  ``is``...) are not indexed: ``E-4471`` is found by ``4471``, a two-letter code is not
  found at all. Both are server settings (changing them needs the index rebuilt:
  ``db.remove`` the VectorIndex and apply it again); :meth:`MySQLFullText.limits` reads them.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.mysql import match

from pinnacle.errors import ConfigError
from pinnacle.plugins.sql.fulltext.common import SQLFullText

__all__ = ["MySQLFullText", "full_text"]

#: Column types InnoDB indexes for full-text search.
TEXT_TYPES = ("char", "varchar", "tinytext", "text", "mediumtext", "longtext")


class MySQLFullText(SQLFullText):
    """InnoDB ``FULLTEXT``."""

    def _index_rows(self, conn: sa.Connection) -> list[tuple[str, str]]:
        """``(column, index type)`` of the index named ``spec.name`` on the table (none: empty)."""
        return [
            tuple(row) for row in conn.execute(
                sa.text(
                    "SELECT COLUMN_NAME, INDEX_TYPE FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() "
                    "AND TABLE_NAME = :table AND INDEX_NAME = :name"
                ),
                {"table": self.spec.table, "name": self.spec.name},
            )
        ]

    def exists(self) -> bool:
        with self.errors("looking up"), self.backend.engine.connect() as conn:
            return bool(self._index_rows(conn))

    def limits(self) -> dict[str, object]:
        """The server's settings that decide which words are indexed."""
        with self.errors("reading the settings of"), self.backend.engine.connect() as conn:
            size, stopwords = conn.exec_driver_sql("SELECT @@innodb_ft_min_token_size, @@innodb_ft_enable_stopword").one()
        return {"innodb_ft_min_token_size": int(size), "innodb_ft_enable_stopword": bool(stopwords)}

    def create(self) -> None:
        table, _ = self.source()
        with self.errors("creating"), self.backend.engine.connect() as conn:
            if self._index_rows(conn):
                return
            kind = conn.execute(
                sa.text(
                    "SELECT DATA_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() "
                    "AND TABLE_NAME = :table AND COLUMN_NAME = :column"
                ),
                {"table": self.spec.table, "column": self.spec.column},
            ).scalar()
            if str(kind).lower() not in TEXT_TYPES:
                raise ConfigError(
                    f"VectorIndex {self.spec.identifier!r}: full_text needs a text column, but "
                    f"{self.spec.table}.{self.spec.column} is {kind}."
                )
            # One statement, which commits on its own: it either adds the index or changes nothing.
            conn.exec_driver_sql(
                f"ALTER TABLE {self.quote(self.spec.table)} ADD FULLTEXT INDEX {self.quote(self.spec.name)} "
                f"({self.quote(self.spec.column)})"
            )
            conn.commit()

    def drop(self) -> None:
        with self.errors("dropping"), self.backend.engine.connect() as conn:
            if self._index_rows(conn):
                conn.exec_driver_sql(f"ALTER TABLE {self.quote(self.spec.table)} DROP INDEX {self.quote(self.spec.name)}")
                conn.commit()

    def select(self, words, n, within, filter):
        table, pk = self.source()
        rank = match(table.c[self.spec.column], against=sa.bindparam("fts_query", " ".join(words), type_=sa.Text))
        rank = rank.in_natural_language_mode()
        select = sa.select(pk, rank.label("score")).where(rank > 0)
        return self.restrict(select, table, pk, within, filter).order_by(sa.desc("score"), pk).limit(n)


full_text = MySQLFullText
