"""SQLite: an FTS5 external-content table over the column, kept current by triggers.

``_fts__<index>`` holds only the index (``content='<table>'``: the text stays in the table);
three triggers on the table (insert, delete, update of the column) tell it every change,
in the writer's transaction, whoever the writer is. Queries match any word of the query
(each word a phrase, so ``E-4471`` matches the tokens ``e 4471`` next to each other; common
English words left out, :data:`STOP_WORDS`) and rank by BM25.

Limits: the table needs its ``rowid`` (not ``WITHOUT ROWID``); an ``INSERT OR REPLACE`` by
another client removes the old row without its delete trigger unless that client set
``PRAGMA recursive_triggers = ON`` (SQLite's rule), so its old words stay in the index until
the index is rebuilt (re-apply after ``db.remove``); rows it would match no longer exist, so
no wrong row is returned, but a later row may reuse that ``rowid``.
"""

from __future__ import annotations

import sqlalchemy as sa

from pinnacle.errors import ConfigError
from pinnacle.plugins.sql.fulltext.common import SQLFullText

__all__ = ["SQLiteFullText", "full_text"]

#: FTS5's tokenizer: Unicode words, case and accents folded.
TOKENIZE = "unicode61 remove_diacritics 2"
#: FTS5 has no stop words: with ``full_text_language`` ``None`` or ``'english'`` these (InnoDB's
#: default list, which MySQL/MariaDB drop too) are left out of queries, so that a query's
#: "the" and "on" do not make every row a candidate. Other languages keep every word.
STOP_WORDS = frozenset(
    "a about an are as at be by com de en for from how i in is it la of on or that the this to was what when where "
    "who will with und www".split()
)


class SQLiteFullText(SQLFullText):
    """FTS5, external content, triggers."""

    def _triggers(self) -> dict[str, str]:
        base = self.spec.name
        return {"ins": f"{base}__ins", "del": f"{base}__del", "upd": f"{base}__upd"}

    def exists(self) -> bool:
        with self.errors("looking up"), self.backend.engine.connect() as conn:
            names = set(conn.exec_driver_sql(
                "SELECT name FROM sqlite_master WHERE name IN (?, ?, ?, ?)", (self.spec.name, *self._triggers().values()),
            ).scalars())
        return names == {self.spec.name, *self._triggers().values()}

    def create(self) -> None:
        if self.exists():
            return
        table, _ = self.source()
        q = self.quote
        fts, tbl, col = q(self.spec.name), q(self.spec.table), q(self.spec.column)
        names = {k: q(v) for k, v in self._triggers().items()}
        delete = f"INSERT INTO {fts}({fts}, rowid, {col}) VALUES ('delete', old.rowid, old.{col});"
        insert = f"INSERT INTO {fts}(rowid, {col}) VALUES (new.rowid, new.{col});"
        statements = [
            f"CREATE VIRTUAL TABLE IF NOT EXISTS {fts} USING fts5({col}, content='{self.spec.table}', "
            f"content_rowid='rowid', tokenize='{TOKENIZE}')",
            f"CREATE TRIGGER IF NOT EXISTS {names['ins']} AFTER INSERT ON {tbl} BEGIN {insert} END",
            f"CREATE TRIGGER IF NOT EXISTS {names['del']} AFTER DELETE ON {tbl} BEGIN {delete} END",
            f"CREATE TRIGGER IF NOT EXISTS {names['upd']} AFTER UPDATE OF {col} ON {tbl} BEGIN {delete} {insert} END",
            f"INSERT INTO {fts}({fts}) VALUES ('rebuild')",  # the rows already there
        ]
        with self.errors("creating"), self.backend.engine.begin() as conn:  # DDL is transactional here
            try:
                conn.exec_driver_sql(f"SELECT rowid FROM {tbl} LIMIT 0")
            except sa.exc.OperationalError:
                raise ConfigError(
                    f"VectorIndex {self.spec.identifier!r}: full_text on SQLite needs table {self.spec.table!r} "
                    "to have a rowid (it was created WITHOUT ROWID)."
                ) from None
            for statement in statements:
                conn.exec_driver_sql(statement)

    def drop(self) -> None:
        q = self.quote
        with self.errors("dropping"), self.backend.engine.begin() as conn:
            for name in self._triggers().values():
                conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {q(name)}")
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS {q(self.spec.name)}")

    def words(self, query: str) -> list[str]:  # type: ignore[override]
        words = super().words(query)
        if self.spec.language in (None, "english"):
            words = [w for w in words if w.lower() not in STOP_WORDS]
        return words

    def select(self, words, n, within, filter):
        table, pk = self.source()
        fts = sa.literal_column(self.quote(self.spec.name))
        expression = " OR ".join('"' + w.replace('"', '""') + '"' for w in words)
        rank = sa.func.bm25(fts)  # lower is better
        select = (
            sa.select(pk, (-rank).label("score"))
            .select_from(sa.table(self.spec.name))
            .join(table, sa.literal_column(f"{self.quote(self.spec.table)}.rowid") == sa.literal_column(f"{self.quote(self.spec.name)}.rowid"))
            .where(fts.op("MATCH")(sa.bindparam("fts_query", expression, type_=sa.String)))
        )
        return self.restrict(select, table, pk, within, filter).order_by(rank, pk).limit(n)


full_text = SQLiteFullText
