"""MySQL/MariaDB: triggers without ``UPDATE OF``, DDL that commits, locks by primary key.

What these servers need beyond the shared code:

- **types lost on reflection**: MariaDB stores JSON as ``LONGTEXT ... CHECK (json_valid(col))``
  and reflects it as LONGTEXT; ``DOUBLE`` reflects as ``Decimal``-returning and ``BOOL`` as
  ``TINYINT(1)``. Reflected tables get their Python types back, so rows read the same as on
  SQLite and PostgreSQL (:meth:`MySQLDialect.fix_reflected`).
- **DDL commits on its own**: a failed listener setup is undone by hand (:meth:`MySQLDialect.ddl_guard`).
- **locking through the primary key**: InnoDB locks index entries, and a statement planned
  as a scan waits for every row another worker holds (:func:`lock_by_primary_key`,
  :func:`delete_by_key`).
- ``READ COMMITTED`` connections, ``ON DUPLICATE KEY UPDATE`` upserts, artifact parts that
  fit ``max_allowed_packet``, claim holders by ``CONNECTION_ID()``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import typing as t

import sqlalchemy as sa
from sqlalchemy.dialects import mysql

from pinnacle.plugins.sql.dialects.base import ARTIFACT_PART, Dialect

logger = logging.getLogger(__name__)

__all__ = [
    "MySQLDialect", "dialect", "lock_by_primary_key", "delete_by_key", "undo_ddl_on_failure",
    "existing_tables", "existing_triggers",
]

_JSON_CHECK = re.compile(r"^\s*json_valid\(\s*`?([^`()]+)`?\s*\)\s*$", re.IGNORECASE)
_DEFINER = re.compile(r"\bDEFINER\s*=\s*(`[^`]*`|'[^']*'|[^\s@]+)@(`[^`]*`|'[^']*'|\S+)\s+", re.IGNORECASE)


class MySQLDialect(Dialect):
    """MySQL and MariaDB (``mysql://``, ``mariadb://``) through PyMySQL or another driver."""

    name = "mysql"
    plain_read_first = True
    # Claims in progress need not outlive the server: a MEMORY table costs no log flush.
    ephemeral_table = {"mysql_engine": "MEMORY"}
    holder_sql = "SELECT CONNECTION_ID()"
    holder_prefix = "mysql"
    connections_sql = "SELECT ID FROM information_schema.PROCESSLIST"
    # Row locks (InnoDB) and table/metadata locks (LOCK TABLES, DDL: a year by default).
    lock_timeout_setting = "innodb_lock_wait_timeout/lock_wait_timeout"
    lock_timeout_sql = "SET SESSION innodb_lock_wait_timeout = {s}, lock_wait_timeout = {s}"
    lock_timeout_codes = (1205,)  # ER_LOCK_WAIT_TIMEOUT
    transactional_ddl = False

    # -- connecting -----------------------------------------------------------------------
    @classmethod
    def create_engine(cls, url: sa.URL, **options: t.Any) -> sa.Engine:
        # No gap locks: a worker's claim must not block writers' trigger inserts.
        options.setdefault("isolation_level", "READ COMMITTED")
        return super().create_engine(url, **options)

    # -- tables ---------------------------------------------------------------------------
    def id_default(self) -> sa.TextClause:
        return sa.text("(replace(uuid(), '-', ''))")

    def fix_reflected(self, table: sa.Table) -> sa.Table:
        return fix_reflected_types(table, self.engine)

    def artifact_part_size(self) -> int:
        """At most a third of ``max_allowed_packet`` (bytes are escaped on the wire), at least 64 KiB."""
        with self.engine.connect() as conn:
            packet = int(conn.exec_driver_sql("SELECT @@max_allowed_packet").scalar_one())
        return max(64 * 1024, min(ARTIFACT_PART, packet // 3))

    def ddl_guard(self, source, tables, triggers):
        """Each CREATE/DROP commits on its own: undo them by hand if the block fails."""
        return undo_ddl_on_failure(self.engine, source, tables, triggers, self.quote)

    # -- change capture -------------------------------------------------------------------
    def create_triggers(self, identifier, table, queue, pk, key_columns) -> list[str]:
        """No ``UPDATE OF``: the update trigger compares OLD and NEW, as bytes (a ``_ci``
        collation would miss a change of case or trailing spaces)."""
        q = self.quote
        n = self._quoted_names(identifier)
        tbl, qtbl, qpk = q(table), q(queue), q(pk)
        changed = " OR ".join(
            f"NOT (CAST(OLD.{q(c)} AS BINARY) <=> CAST(NEW.{q(c)} AS BINARY))" for c in self._watched(pk, key_columns)
        )
        return [
            f"CREATE TRIGGER {n['ins']} AFTER INSERT ON {tbl} FOR EACH ROW "
            f"INSERT INTO {qtbl} (_source) VALUES (NEW.{qpk})",
            f"CREATE TRIGGER {n['upd']} AFTER UPDATE ON {tbl} FOR EACH ROW BEGIN "
            f"IF {changed} THEN INSERT INTO {qtbl} (_source) VALUES (NEW.{qpk}); END IF; "
            f"IF NOT (CAST(OLD.{qpk} AS BINARY) <=> CAST(NEW.{qpk} AS BINARY)) THEN INSERT INTO {qtbl} (_source) VALUES (OLD.{qpk}); END IF; END",
            f"CREATE TRIGGER {n['del']} AFTER DELETE ON {tbl} FOR EACH ROW "
            f"INSERT INTO {qtbl} (_source) VALUES (OLD.{qpk})",
        ]

    # -- statements -----------------------------------------------------------------------
    def upsert(self, conn, table, rows, key) -> None:
        """``INSERT ... ON DUPLICATE KEY UPDATE``."""
        if not rows:
            return
        columns = [c for c in rows[0] if c != key]
        stmt = mysql.insert(table)
        stmt = stmt.on_duplicate_key_update({c: stmt.inserted[c] for c in columns})
        conn.execute(stmt, rows)

    def upsert_outputs(self, conn, table, rows) -> None:
        """One ``INSERT ... ON DUPLICATE KEY UPDATE`` run by the driver's executemany, which
        sends many rows per statement (PyMySQL and mysqlclient rewrite it into multi-row
        ``VALUES``), with no per-row work in SQLAlchemy: about 1.5 times as fast for 1,000 vectors."""
        if not rows:
            return
        if not self._plain_outputs(table) or conn.dialect.paramstyle not in ("format", "pyformat"):
            return super().upsert_outputs(conn, table, rows)
        self._executemany_outputs(conn, table, rows, marker="%s", on_conflict="ON DUPLICATE KEY UPDATE", assign="{c} = VALUES({c})")

    def delete_keys(self, conn, column, keys) -> None:
        if keys:
            delete_by_key(conn, column, keys)


    # -- locking --------------------------------------------------------------------------
    def select_for_update(self, conn, table, query, *, skip_locked, recheck=None):
        return lock_by_primary_key(conn, table, query, skip_locked=skip_locked, recheck=recheck)


# -- reflection ---------------------------------------------------------------------------------
def fix_reflected_types(table: sa.Table, bind: sa.Engine | sa.Connection) -> sa.Table:
    """Give a reflected MySQL/MariaDB ``table`` the column types it was created with."""
    json_columns = _mariadb_json_columns(table.name, bind) if bind.dialect.is_mariadb else set()
    for column in table.c:
        kind = column.type
        if column.name in json_columns and isinstance(kind, (sa.Text, sa.String)):
            column.type = sa.JSON()
        elif isinstance(kind, (mysql.DOUBLE, mysql.FLOAT, mysql.REAL)) and kind.asdecimal:
            column.type = mysql.DOUBLE(asdecimal=False)
        elif isinstance(kind, mysql.TINYINT) and kind.display_width == 1:
            column.type = sa.Boolean(create_constraint=False)
    return table


def _mariadb_json_columns(table: str, bind: sa.Engine | sa.Connection) -> set[str]:
    query = sa.text(
        "SELECT CONSTRAINT_NAME, CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS "
        "WHERE CONSTRAINT_SCHEMA = DATABASE() AND TABLE_NAME = :table"
    )
    if isinstance(bind, sa.Engine):
        with bind.connect() as conn:
            rows = conn.execute(query, {"table": table}).all()
    else:
        rows = bind.execute(query, {"table": table}).all()
    found = set()
    for _name, clause in rows:
        match = _JSON_CHECK.match(clause or "")
        if match:
            found.add(match.group(1))
    return found


# -- DDL that commits on its own -----------------------------------------------------------------
def existing_tables(conn: sa.Connection, names: list[str]) -> set[str]:
    """Which of ``names`` exist as tables in the current database."""
    if not names:
        return set()
    rows = conn.execute(
        sa.text("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN :names").bindparams(
            sa.bindparam("names", expanding=True)
        ),
        {"names": list(names)},
    )
    return {r[0] for r in rows}


def existing_triggers(conn: sa.Connection, table: str) -> set[str]:
    """Names of the triggers on ``table`` in the current database."""
    rows = conn.execute(
        sa.text(
            "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS "
            "WHERE TRIGGER_SCHEMA = DATABASE() AND EVENT_OBJECT_TABLE = :table"
        ),
        {"table": table},
    )
    return {r[0] for r in rows}


@contextlib.contextmanager
def undo_ddl_on_failure(
    engine: sa.Engine, source: str, tables: t.Sequence[str], triggers: t.Sequence[str], quote: t.Callable[[str], str]
) -> t.Iterator[None]:
    """Put ``tables`` and the ``triggers`` on ``source`` back as they were if the block fails.

    MySQL/MariaDB commit every CREATE/DROP implicitly, so a transaction cannot undo them:
    tables the block created are dropped again and triggers it replaced are re-created from
    their saved definitions. Rows written by the block's DML roll back as usual.
    """
    with engine.connect() as conn:
        before = existing_tables(conn, list(tables))
        saved = {}
        for name in sorted(existing_triggers(conn, source) & set(triggers)):
            row = conn.exec_driver_sql(f"SHOW CREATE TRIGGER {quote(name)}").one()
            saved[name] = _DEFINER.sub("", row[2], count=1)
    try:
        yield
    except BaseException:
        _undo(engine, tables, before, triggers, saved, quote)
        raise


def _undo(engine, tables, before, triggers, saved, quote) -> None:
    steps = [f"DROP TRIGGER IF EXISTS {quote(name)}" for name in triggers]
    steps += list(saved.values())
    steps += [f"DROP TABLE IF EXISTS {quote(name)}" for name in tables if name not in before]
    try:
        with engine.connect() as conn:
            for stmt in steps:
                try:
                    conn.exec_driver_sql(stmt)
                except sa.exc.DBAPIError as exc:
                    logger.error("Undoing a failed listener setup: %s failed: %s", stmt.split(" ON ")[0][:120], exc.orig)
            conn.commit()
    except sa.exc.DBAPIError as exc:  # e.g. the server is gone; leave the original error to the caller
        logger.error("Could not undo a failed listener setup: %s", exc.orig)


# -- locking through the primary key -------------------------------------------------------------
def lock_by_primary_key(
    conn: sa.Connection, table: sa.Table, query: sa.Select, *, skip_locked: bool, chunk: int = 500,
    recheck: t.Optional[sa.ColumnElement] = None, ids: t.Optional[list[int]] = None,
) -> list[sa.Row]:
    """The rows of ``query`` (which selects ``table``'s primary key ``id`` first), locked FOR UPDATE.

    ``SELECT ... WHERE _source IN (...) FOR UPDATE`` on InnoDB locks the secondary index
    entry before the row, while a worker that claimed the row by its primary key locks it
    the other way round when it deletes it: the two deadlock. And when the list is a large
    part of a small table, MariaDB scans the whole table and waits for every row another
    worker holds. So: find the ids with a plain (non-locking) read, then lock exactly
    those rows by primary key, in ascending order, re-checking ``recheck`` (the part of
    ``query``'s condition that may have changed meanwhile; by default all of it). ``ids``:
    found already (``query`` is then not run).

    The ids go in as one JSON array (``JSON_TABLE``, MariaDB 10.6+ and MySQL 8.0.4+), else
    as a ``UNION ALL`` of bound values, ``chunk`` at a time.

    ``query`` may also select columns of other tables it joins (a claim's source rows): those
    come from the plain read, ``table``'s own columns from the locking one, which locks
    ``table``'s rows alone.
    """
    pk = table.c.id
    selected = list(query.selected_columns)
    own = [i for i, c in enumerate(selected) if getattr(c, "table", None) is table]
    if len(own) < len(selected):
        plain = {row[0]: row for row in conn.execute(query).all()}
        locked = lock_by_primary_key(
            conn, table, sa.select(*(selected[i] for i in own)),
            skip_locked=skip_locked, chunk=chunk, recheck=recheck if recheck is not None else query.whereclause,
            ids=sorted(plain),
        )
        out = []
        for row in locked:
            values = list(plain[row[0]])
            for i, value in zip(own, row):
                values[i] = value
            out.append(tuple(values))
        return out  # type: ignore[return-value]
    ids = sorted({row[0] for row in conn.execute(query)}) if ids is None else ids
    if recheck is None:
        recheck = query.whereclause
    whole = _has_json_table(conn)
    found: list[sa.Row] = []
    step = max(1, len(ids)) if whole else chunk
    for start in range(0, len(ids), step):
        part = ids[start : start + step]
        if whole:
            keys = sa.text("SELECT _k.k FROM JSON_TABLE(:keys, '$[*]' COLUMNS (k BIGINT PATH '$')) AS _k").bindparams(
                keys=json.dumps([int(i) for i in part])
            )
        else:
            # Bound values, so the statement's text (and its entry in SQLAlchemy's compiled cache)
            # depends only on how many keys there are.
            literals = " UNION ALL ".join(f"SELECT :k{n} AS k" for n in range(len(part)))
            keys = sa.text(literals).bindparams(*[sa.bindparam(f"k{n}", int(i), type_=pk.type) for n, i in enumerate(part)])
        keys = keys.columns(sa.column("k", pk.type)).subquery("_keys")
        locking = sa.select(*query.selected_columns).select_from(keys.join(table, pk == keys.c.k))
        if recheck is not None:
            locking = locking.where(recheck)
        # Join in the order written, through the primary key.
        locking = locking.prefix_with("STRAIGHT_JOIN").with_hint(table, "FORCE INDEX (PRIMARY)")
        found.extend(conn.execute(locking.order_by(pk).with_for_update(skip_locked=skip_locked)).all())
    return found


def _has_json_table(conn: sa.Connection) -> bool:
    """Whether this server has ``JSON_TABLE`` (MariaDB 10.6+, MySQL 8.0.4+)."""
    version = conn.dialect.server_version_info or (0,)
    return tuple(version[:2]) >= (10, 6) if conn.dialect.is_mariadb else tuple(version[:3]) >= (8, 0, 4)


def delete_by_key(conn: sa.Connection, column: sa.Column, keys: t.Sequence[t.Any], *, chunk: int = 900) -> None:
    """Delete the rows of ``column.table`` whose ``column`` is one of ``keys``, touching no other row.

    A plain ``DELETE ... WHERE key IN (...)`` may be planned as a full scan (the row estimate
    of a queue lags behind), and a scanning DELETE waits for every row another worker holds:
    two workers committing at once then deadlock. So an integer primary key is deleted
    through a join with the list of keys, forced onto the primary key; any other column is
    first read without locks (only rows that exist are deleted, most batches have none in
    the failed table) and then deleted one key per statement, through its index.
    """
    table = column.table
    preparer = conn.dialect.identifier_preparer
    name, col = preparer.format_table(table), preparer.quote(column.name)
    integer_pk = list(table.primary_key.columns) == [column] and isinstance(column.type, sa.Integer)
    for start in range(0, len(keys), chunk):
        part = list(keys[start : start + chunk])
        if integer_pk:
            literals = " UNION ALL ".join(f"SELECT {int(k)} AS k" for k in part)  # int(): nothing else reaches SQL
            conn.exec_driver_sql(
                f"DELETE {name} FROM ({literals}) AS _keys "
                f"STRAIGHT_JOIN {name} FORCE INDEX (PRIMARY) ON {name}.{col} = _keys.k"
            )
            continue
        present = list(conn.execute(sa.select(column).distinct().where(column.in_(part))).scalars())
        if present:
            conn.execute(table.delete().where(column == sa.bindparam("_key")), [{"_key": k} for k in present])


dialect = MySQLDialect
