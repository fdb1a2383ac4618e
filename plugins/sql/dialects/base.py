"""What differs between SQL databases, behind one object per backend.

:class:`Dialect` holds the behaviour SQLite, PostgreSQL and MySQL/MariaDB share; each of
``sqlite.py``, ``postgresql.py`` and ``mysql.py`` subclasses it with what its database
needs (SQLAlchemy's own pattern: one module per database, ending with a ``dialect``
alias). The backend picks its dialect once, when it connects
(:func:`~pinnacle.plugins.sql.dialects.dialect_for`), and every other module asks it:

- **change capture**: the trigger DDL (:meth:`create_triggers`, :meth:`drop_triggers`);
- **writes**: :meth:`upsert`, :meth:`delete_keys`, :meth:`one_of` (``IN`` lists);
- **locking**: whether claims hold row locks (:attr:`locking_claims`), and
  :meth:`select_for_update`;
- **holders**: who holds a claim and whether it is alive (:meth:`holder_of`,
  :meth:`alive_holders`, for ``status()``'s ``in_flight``);
- **tables**: the server-side id default, the options of ephemeral tables, types lost
  on reflection, the artifact part size, and undoing DDL that commits on its own
  (:meth:`ddl_guard`);
- **connecting**: the engine's settings (:meth:`create_engine`) and the URL worker
  processes get (:meth:`worker_url`).

Internal to the SQL plugin (not public API).
"""

from __future__ import annotations

import contextlib
import typing as t

import sqlalchemy as sa

from pinnacle.plugins.sql.statements import chunks

__all__ = ["Dialect", "ARTIFACT_PART"]

#: Artifact bytes per row; MySQL/MariaDB use less when their max_allowed_packet is small.
ARTIFACT_PART = 4 * 1024 * 1024


class Dialect:
    """One SQL database's behaviour; subclasses override what differs.

    Args:
        engine: the backend's engine (the dialect quotes names with its preparer).

    Example:
        >>> from pinnacle.plugins.sql.dialects import dialect_for
        >>> dialect = dialect_for(sa.create_engine("sqlite://"))
        >>> dialect.name, dialect.locking_claims
        ('sqlite', False)
        >>> dialect.trigger_names("docs-emb")
        ['_pinnacle__docs-emb__ins', '_pinnacle__docs-emb__upd', '_pinnacle__docs-emb__del']
    """

    #: The name pinnacle knows the database by (MariaDB is ``"mysql"``).
    name: t.ClassVar[str] = ""
    #: Whether a claim locks its queue rows (``SELECT ... FOR UPDATE SKIP LOCKED``) in a
    #: transaction that stays open while the model runs. SQLite: no (one writer at a time).
    locking_claims: t.ClassVar[bool] = True
    #: Whether :meth:`select_for_update` finds the rows in a plain read before it locks them by
    #: primary key (MySQL/MariaDB): a claim of given sources then reads their rows in that read.
    plain_read_first: t.ClassVar[bool] = False
    #: Whether outputs may be pgvector columns searched in the database (PostgreSQL).
    supports_pgvector: t.ClassVar[bool] = False
    #: Table options for tables that need not outlive the server (``_pinnacle_claims``).
    ephemeral_table: t.ClassVar[t.Mapping[str, t.Any]] = {}
    #: Server-side SQL for the id of the current connection, and the prefix of its holder names.
    holder_sql: t.ClassVar[str] = ""
    holder_prefix: t.ClassVar[str] = ""
    #: Server-side SQL listing the ids of the live connections.
    connections_sql: t.ClassVar[str] = ""
    #: The setting that bounds a wait for a lock (named in errors), the statement that sets it
    #: on each new connection (``{ms}``/``{s}``: the bound), and the driver's error codes
    #: (SQLSTATE, errno or SQLite error name) of a wait that ran past it (``engine.py``).
    lock_timeout_setting: t.ClassVar[str] = ""
    lock_timeout_sql: t.ClassVar[str] = ""
    lock_timeout_codes: t.ClassVar[tuple] = ()
    #: Statements every new connection runs first (session settings).
    session_sql: t.ClassVar[tuple[str, ...]] = ()
    #: Whether DDL takes part in transactions (a failed ``CREATE``/``ALTER`` rolls back with the
    #: rest). MySQL/MariaDB: no, each commits on its own (see :meth:`ddl_guard`).
    transactional_ddl: t.ClassVar[bool] = True

    def __init__(self, engine: sa.Engine):
        self.engine = engine
        self.quote: t.Callable[[str], str] = engine.dialect.identifier_preparer.quote

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    # -- connecting -----------------------------------------------------------------------
    @classmethod
    def create_engine(cls, url: sa.URL, **options: t.Any) -> sa.Engine:
        """The engine for ``url``, with this database's settings."""
        return sa.create_engine(url, pool_pre_ping=True, **options)

    @classmethod
    def worker_url(cls, url: sa.URL) -> sa.URL:
        """``url`` as worker processes should open it (see ``SQLBackend.worker_uri``)."""
        return url

    def read_connection(self) -> sa.Connection:
        """A connection for a claim's reads where claims take no row locks (nothing special here)."""
        return self.engine.connect()

    # -- tables ---------------------------------------------------------------------------
    def id_default(self) -> sa.TextClause:
        """Server-side id for rows inserted by other clients (raw SQL) without an ``_id``."""
        raise NotImplementedError(f"{type(self).__name__} has no server-side id default")

    def fix_reflected(self, table: sa.Table) -> sa.Table:
        """Give a reflected ``table`` the column types it was created with (nothing to do here)."""
        return table

    def artifact_part_size(self) -> int:
        """Bytes of an artifact stored per row."""
        return ARTIFACT_PART

    def ddl_guard(self, source: str, tables: t.Sequence[str], triggers: t.Sequence[str]) -> t.ContextManager[None]:
        """A context that leaves ``tables`` and the ``triggers`` on ``source`` as they were if
        its block fails. Here DDL is transactional: the block's own rollback does that."""
        return contextlib.nullcontext()

    # -- change capture -------------------------------------------------------------------
    @staticmethod
    def _names(identifier: str) -> dict[str, str]:
        base = f"_pinnacle__{identifier}"
        return {"function": base, "ins": f"{base}__ins", "upd": f"{base}__upd", "del": f"{base}__del"}

    def trigger_names(self, identifier: str) -> list[str]:
        """Unquoted names of the triggers :meth:`create_triggers` may install for ``identifier``."""
        n = self._names(identifier)
        return [n["ins"], n["upd"], n["del"]]

    def create_triggers(self, identifier: str, table: str, queue: str, pk: str, key_columns: t.Sequence[str]) -> list[str]:
        """Statements that install change capture for one listener on ``table``: a committed
        insert, delete, or update of ``key_columns`` or ``pk`` puts the row's id into ``queue``."""
        raise NotImplementedError(f"No change capture for SQL dialect {self.name!r}")

    def drop_triggers(self, identifier: str, table: str) -> list[str]:
        """Statements that remove what :meth:`create_triggers` installed."""
        return [f"DROP TRIGGER IF EXISTS {self.quote(name)}" for name in self.trigger_names(identifier)]

    def _quoted_names(self, identifier: str) -> dict[str, str]:
        return {k: self.quote(v) for k, v in self._names(identifier).items()}

    @staticmethod
    def _watched(pk: str, key_columns: t.Sequence[str]) -> list[str]:
        """The columns whose update queues a row: the key columns and the primary key."""
        return list(dict.fromkeys([*key_columns, pk]))

    # -- statements -----------------------------------------------------------------------
    #: Keys per :meth:`one_of` statement: one bound parameter each here, below SQLite's limit.
    keys_per_statement: int = 900

    def one_of(self, column: sa.ColumnElement, keys: t.Sequence[t.Any]) -> sa.ColumnElement:
        """``column IN (keys)``.

        Example:
            >>> docs = sa.table("docs", sa.column("id", sa.Integer))
            >>> str(Dialect(sa.create_engine("sqlite://")).one_of(docs.c.id, [1, 2]))
            'docs.id IN (__[POSTCOMPILE_id_1])'
        """
        return column.in_(list(keys))

    def upsert(self, conn: sa.Connection, table: sa.Table, rows: list[dict], key: str) -> None:
        """Insert ``rows``, replacing those whose ``key`` exists already (``ON CONFLICT DO UPDATE``)."""
        if not rows:
            return
        columns = [c for c in rows[0] if c != key]
        stmt = self._insert(table)
        stmt = stmt.on_conflict_do_update(index_elements=[key], set_={c: stmt.excluded[c] for c in columns})
        conn.execute(stmt, rows)

    def _insert(self, table: sa.Table) -> t.Any:
        """This database's ``INSERT`` construct (the one with its upsert clause)."""
        raise NotImplementedError(f"{type(self).__name__} has no upsert")

    #: The columns of an outputs table that :meth:`upsert_outputs` writes, in its rows' order.
    OUTPUT_COLUMNS: t.ClassVar[tuple[str, ...]] = ("_source", "_output", "_model_uuid", "_updated_at")

    def upsert_outputs(self, conn: sa.Connection, table: sa.Table, rows: t.Sequence[tuple]) -> None:
        """Insert or replace the outputs ``rows``: ``(source, output, model uuid, updated at)``
        tuples keyed by ``_source`` (a drain's commit; the fastest way this database has)."""
        names = self.OUTPUT_COLUMNS
        for part in chunks(rows, 500):
            self.upsert(conn, table, [dict(zip(names, row)) for row in part], "_source")

    def _executemany_outputs(self, conn: sa.Connection, table: sa.Table, rows: t.Sequence[tuple], *,
                             marker: str, on_conflict: str, assign: str) -> None:
        """:meth:`upsert_outputs` as one statement the driver's executemany runs, with no
        per-row work in SQLAlchemy: ``INSERT ... VALUES (marker, ...) on_conflict`` and
        ``assign`` (``{c}``: a quoted column name) for each column but the key."""
        q = self.quote
        names = [q(c) for c in self.OUTPUT_COLUMNS]
        update = ", ".join(assign.format(c=c) for c in names[1:])
        conn.exec_driver_sql(
            f"INSERT INTO {q(table.name)} ({', '.join(names)}) VALUES ({', '.join([marker] * len(names))}) "
            f"{on_conflict} {update}",
            list(rows),
        )

    def _plain_outputs(self, table: sa.Table) -> bool:
        """Whether ``table``'s output columns take driver values as they are (no bind processing
        by a custom type, such as pgvector's): then rows can go to the driver directly."""
        return not any(isinstance(table.c[name].type, sa.types.TypeDecorator) for name in self.OUTPUT_COLUMNS)

    def delete_keys(self, conn: sa.Connection, column: sa.Column, keys: t.Sequence[t.Any]) -> None:
        """Delete the rows whose key ``column`` is one of ``keys``."""
        table = column.table
        for part in chunks(list(keys), self.keys_per_statement):
            conn.execute(table.delete().where(self.one_of(column, part)))

    def delete_rare_keys(self, conn: sa.Connection, column: sa.Column, keys: t.Sequence[t.Any]) -> None:
        """:meth:`delete_keys` where few of ``keys`` are there, if any (a drain clearing its
        rows' earlier failures): an empty table is seen at once, and its keys not looked up."""
        if keys and conn.execute(sa.select(sa.literal(1)).select_from(column.table).limit(1)).first() is not None:
            self.delete_keys(conn, column, keys)

    #: Whether :meth:`delete_keys_returning` can say which rows it deleted (``DELETE ... RETURNING``).
    delete_returning: t.ClassVar[bool] = False

    def delete_keys_returning(self, conn: sa.Connection, column: sa.Column, keys: t.Sequence[t.Any]) -> list[t.Any]:
        """:meth:`delete_keys`, returning the keys of the rows that were there (where :attr:`delete_returning`)."""
        table, found = column.table, []
        for part in chunks(list(keys), self.keys_per_statement):
            found.extend(conn.execute(table.delete().where(self.one_of(column, part)).returning(column)).scalars())
        return found

    # -- locking --------------------------------------------------------------------------
    def select_for_update(
        self, conn: sa.Connection, table: sa.Table, query: sa.Select, *, skip_locked: bool,
        recheck: t.Optional[sa.ColumnElement] = None,
    ) -> t.Iterable[t.Any]:
        """The rows of ``query`` (which selects ``table``'s ``id`` first), locked FOR UPDATE.

        ``recheck``: the part of ``query``'s condition that other transactions may change (a
        database that finds the rows first and locks them after checks only that again;
        ``sa.true()`` for none). One statement here, so it checks the whole condition.
        """
        return conn.execute(query.with_for_update(skip_locked=skip_locked))

    # -- claim holders (status()'s in_flight, see inflight.py) ----------------------------
    def holder_of(self, conn: sa.Connection) -> str:
        """Who holds a claim made on ``conn``: the server's id of that connection, cached on it."""
        cached = conn.info.get("pinnacle_holder")
        if cached is None:
            cached = f"{self.holder_prefix}:{conn.exec_driver_sql(self.holder_sql).scalar()}"
            conn.info["pinnacle_holder"] = cached
        return cached

    def alive_holders(self, conn: sa.Connection, holders: set[str]) -> set[str]:
        """Which of ``holders`` are alive: their server connection still exists."""
        server_ids = {int(h.partition(":")[2]): h for h in holders}
        if not server_ids:
            return set()
        live = {int(i) for i in conn.exec_driver_sql(self.connections_sql).scalars()}
        return {h for i, h in server_ids.items() if i in live}
