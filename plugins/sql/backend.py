"""The SQL data backend: user tables, metadata and artifacts over SQLAlchemy."""

from __future__ import annotations

import functools
import inspect
import json
import logging
import threading
import time
import typing as t
import uuid as _uuid

import sqlalchemy as sa

from pinnacle.backends.base import Claim, DataBackend, JobStore, Row, SearchStore, Where
from pinnacle.backends.fulltext import FullTextStore
from pinnacle.base.identifiers import validate_column, validate_identifier
from pinnacle.errors import BackendError, ConfigError, NotFoundError
from pinnacle.plugins.sql.dialects import dialect_class, dialect_for
from pinnacle.plugins.sql.engine import backend_error, create_engine, driver_errors, lock_timeout_option, normalise_url
from pinnacle.plugins.sql.listeners import ListenerStorage
from pinnacle.plugins.sql.pgvector import OPERATORS, PgVector, PgVectorSearch
from pinnacle.plugins.sql.schema import ID_COLUMN, infer_user_table, metadata_tables, open_layout
from pinnacle.plugins.sql.statements import chunks, where_clause
from pinnacle.plugins.sql.values import check_values

logger = logging.getLogger(__name__)

__all__ = ["SQLBackend"]


class SQLBackend(ListenerStorage, DataBackend, SearchStore, JobStore, FullTextStore):
    """SQLite, PostgreSQL and MySQL/MariaDB through SQLAlchemy.

    Example:
        >>> backend = SQLBackend("sqlite://")
        >>> backend.insert("docs", [{"_id": "a", "text": "hello"}])
        ['a']
    """

    def __init__(self, uri: str, **options: t.Any):
        #: PostgreSQL: store vectors as pgvector columns when the server has the extension
        #: (``None``, the default), never (``False``: bytes), or require it (``True``).
        self.pgvector: t.Optional[bool] = options.pop("pgvector", None)
        #: Upgrade pinnacle's tables where that needs DDL outside a transaction (MySQL/MariaDB).
        upgrade = bool(options.pop("upgrade", False))
        url = normalise_url(uri)
        self.safe_uri = url.render_as_string(hide_password=True)
        self._worker_url = url  # unmasked: only for worker_uri(), never logged
        #: Seconds a statement waits for another connection's lock (named in its error).
        self.lock_timeout_s = lock_timeout_option(options)
        self.engine = create_engine(uri, lock_timeout_s=self.lock_timeout_s, **options)
        #: What differs per database (triggers, upserts, locking...): chosen once, here.
        self.dialect = dialect_for(self.engine)
        self._driver_errors = driver_errors(self.engine)
        self.quote = self.dialect.quote
        self._lock = threading.RLock()
        self._tables: dict[str, sa.Table] = {}
        meta = sa.MetaData()
        self._components_table, self._artifacts_table = metadata_tables(meta, self.dialect)
        self._state_table = meta.tables["_pinnacle_state"]
        self._claims_table = meta.tables["_pinnacle_claims"]
        with self._translate_errors("opening the database"):
            #: The layout of pinnacle's tables found when opening (``None``: new), see schema.py.
            self.layout_found = open_layout(self.engine, meta, self.dialect, where=self.safe_uri, upgrade=upgrade)
        super().__init__()

    def __repr__(self) -> str:
        return f"SQLBackend({self.safe_uri!r})"

    def close(self) -> None:
        self.engine.dispose()

    @property
    def capabilities(self) -> frozenset[str]:
        """``search`` with pgvector only; ``jobs`` unless the database is in this process's memory."""
        found = set(super().capabilities)
        if not self.dialect.supports_pgvector:
            found.discard("search")
        try:
            self.worker_uri()
        except ConfigError:
            found.discard("jobs")
        return frozenset(found)

    def worker_uri(self) -> str:
        """This database's URI for worker processes: credentials included, SQLite paths absolute."""
        url = self._worker_url
        url = dialect_class(url.get_backend_name()).worker_url(url)
        return url.render_as_string(hide_password=False)

    # -- helpers --------------------------------------------------------------------
    def table(self, name: str) -> sa.Table:
        """The reflected table ``name`` (cached), or :class:`NotFoundError`."""
        with self._lock:
            found = self._tables.get(name)
            if found is not None:
                return found
            try:
                found = sa.Table(name, sa.MetaData(), autoload_with=self.engine)
            except sa.exc.NoSuchTableError:
                raise NotFoundError(f"Table {name!r} does not exist in {self.safe_uri}.") from None
            self._tables[name] = self.dialect.fix_reflected(found)
            return found

    def forget_table(self, name: str) -> None:
        with self._lock:
            self._tables.pop(name, None)

    # -- tables ---------------------------------------------------------------------
    def has_table(self, table: str) -> bool:
        if table in self._tables:
            return True
        return sa.inspect(self.engine).has_table(table)

    def list_tables(self) -> list[str]:
        names = sa.inspect(self.engine).get_table_names()
        return sorted(n for n in names if not n.startswith("_"))

    def columns(self, table: str) -> list[str]:
        return [c.name for c in self.table(table).c]

    def primary_key(self, table: str) -> str:
        pk = list(self.table(table).primary_key.columns)
        if len(pk) != 1:
            raise ConfigError(
                f"Table {table!r} needs a single-column primary key for pinnacle to track its rows "
                f"(it has {len(pk)})."
            )
        return pk[0].name

    def _ensure_table(self, name: str, rows: t.Sequence[Row]) -> sa.Table:
        validate_identifier(name, "table name")
        if self.has_table(name):
            return self.table(name)
        table = infer_user_table(name, rows, sa.MetaData(), self.dialect)
        try:
            table.create(self.engine, checkfirst=True)
        except (sa.exc.ProgrammingError, sa.exc.OperationalError) as exc:
            if "exist" not in str(exc.orig).lower():
                raise BackendError(f"Cannot create table {name!r}: {exc.orig}", exc) from exc
        self.forget_table(name)
        logger.info("Created table %r with columns %s", name, [c.name for c in table.c])
        return self.table(name)

    def insert(self, table: str, rows: t.Sequence[Row]) -> list[t.Any]:
        if isinstance(rows, dict) or not all(isinstance(r, dict) for r in rows):
            raise ConfigError(f"insert into {table!r}: pass a list of dicts, e.g. [{{'text': '...'}}].")
        if not rows:
            return []
        tbl = self._ensure_table(table, rows)
        pk = self.primary_key(table)
        known = set(tbl.c.keys())
        for row in rows:
            unknown = [k for k in row if k not in known]
            if unknown:
                raise ConfigError(
                    f"insert into {table!r}: unknown column(s) {unknown}; the table has {sorted(known)}."
                )
        check_values(tbl, rows, f"insert into {table!r}")
        generate = pk == ID_COLUMN and isinstance(tbl.c[pk].type, sa.String)
        prepared = []
        for row in rows:
            row = dict(row)
            if generate and row.get(pk) is None:
                row[pk] = _uuid.uuid4().hex
            prepared.append(row)
        with self._translate_errors(f"insert into {table!r}"):
            if all(pk in r for r in prepared):
                with self.engine.begin() as conn:
                    for part in chunks(prepared):
                        conn.execute(tbl.insert(), _fill(part, known))
                return [r[pk] for r in prepared]
            ids = []
            with self.engine.begin() as conn:
                for row in prepared:
                    ids.append(conn.execute(tbl.insert().values(**row)).inserted_primary_key[0])
            return ids

    def select(self, table, where=None, *, ids=None, columns=None, limit=None) -> list[Row]:
        tbl = self.table(table)
        cols = [tbl.c[validate_column(c, table)] for c in columns] if columns else [tbl]
        query = sa.select(*cols)
        clause = where_clause(tbl, where)
        if clause is not None:
            query = query.where(clause)
        if limit is not None:
            query = query.limit(int(limit))
        with self._translate_errors(f"select from {table!r}"), self.engine.connect() as conn:
            if ids is None:
                return [dict(r._mapping) for r in conn.execute(query)]
            pk = tbl.c[self.primary_key(table)]
            out: list[Row] = []
            for part in chunks(list(ids)):
                out.extend(dict(r._mapping) for r in conn.execute(query.where(pk.in_(part))))
            return out

    def count(self, table: str, where: Where = None) -> int:
        tbl = self.table(table)
        query = sa.select(sa.func.count()).select_from(tbl)
        clause = where_clause(tbl, where)
        if clause is not None:
            query = query.where(clause)
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def update(self, table: str, where: Where, values: t.Mapping[str, t.Any]) -> int:
        tbl = self.table(table)
        for column in values:
            if column not in tbl.c:
                raise ConfigError(f"update {table!r}: no column {column!r}; columns are {list(tbl.c.keys())}.")
        check_values(tbl, [values], f"update {table!r}")
        stmt = tbl.update().values(**values)
        clause = where_clause(tbl, where)
        if clause is not None:
            stmt = stmt.where(clause)
        with self._translate_errors(f"update {table!r}"), self.engine.begin() as conn:
            return conn.execute(stmt).rowcount

    def delete(self, table: str, where: Where) -> int:
        tbl = self.table(table)
        stmt = tbl.delete()
        clause = where_clause(tbl, where)
        if clause is not None:
            stmt = stmt.where(clause)
        with self._translate_errors(f"delete from {table!r}"), self.engine.begin() as conn:
            return conn.execute(stmt).rowcount

    def _translate_errors(self, what: str) -> "_Translate":
        """A context in which a driver error becomes a :class:`BackendError` about ``what``."""
        return _Translate(self, what)

    # -- listeners ----------------------------------------------------------------------
    def create_listener(self, spec, **kwargs):
        # Where DDL commits on its own (MySQL/MariaDB), the dialect undoes it if a step fails.
        names = [spec.outputs_table, spec.queue_table, spec.failed_table]
        with self.dialect.ddl_guard(spec.table, names, self.dialect.trigger_names(spec.storage_name)):
            return super().create_listener(spec, **kwargs)

    def database_search(self, spec, measure, index=None, options=None):
        """A :class:`~pinnacle.plugins.sql.pgvector.PgVectorSearch` when ``spec``'s outputs are
        pgvector columns (PostgreSQL with the ``vector`` extension), else ``None``."""
        if not self.dialect.supports_pgvector or spec.flatten or spec.text or measure not in OPERATORS:
            return None
        outputs = self._tables_for(spec)[0]
        if not isinstance(outputs.c._output.type, PgVector):
            return None
        return PgVectorSearch(self, spec, measure, index, options or {})

    def full_text(self, spec):
        """The database's own full-text index for ``spec`` (``plugins/sql/fulltext/``)."""
        from pinnacle.plugins.sql.fulltext import full_text_for

        return full_text_for(self, spec)

    # -- metadata ---------------------------------------------------------------------
    def put_component(self, type_id, identifier, version, uuid, data) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                self._components_table.insert().values(
                    type=type_id, identifier=identifier, version=version, uuid=uuid,
                    data=json.dumps(data, sort_keys=True), created_at=time.time(),
                )
            )

    def get_component(self, type_id, identifier, version=None) -> t.Optional[dict]:
        tbl = self._components_table
        query = sa.select(tbl).where(tbl.c.type == type_id, tbl.c.identifier == identifier)
        query = query.where(tbl.c.version == version) if version is not None else query.order_by(tbl.c.version.desc()).limit(1)
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        if row is None:
            return None
        record = dict(row._mapping)
        record["data"] = json.loads(record["data"])
        return record

    def list_components(self, type_id=None) -> list[dict]:
        tbl = self._components_table
        latest = (
            sa.select(tbl.c.type, tbl.c.identifier, sa.func.max(tbl.c.version).label("version"))
            .group_by(tbl.c.type, tbl.c.identifier)
            .subquery()
        )
        query = sa.select(tbl.c.type, tbl.c.identifier, tbl.c.version, tbl.c.uuid).join(
            latest,
            sa.and_(tbl.c.type == latest.c.type, tbl.c.identifier == latest.c.identifier, tbl.c.version == latest.c.version),
        )
        if type_id is not None:
            query = query.where(tbl.c.type == type_id)
        with self.engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(query.order_by(tbl.c.type, tbl.c.identifier))]
        return rows

    def delete_component(self, type_id, identifier, version=None) -> None:
        tbl = self._components_table
        which = tbl.delete().where(tbl.c.type == type_id, tbl.c.identifier == identifier)
        if version is not None:
            which = which.where(tbl.c.version == version)
        with self.engine.begin() as conn:
            conn.execute(which)

    # -- state ------------------------------------------------------------------------
    def get_state(self, key: str) -> t.Optional[str]:
        tbl = self._state_table
        with self.engine.connect() as conn:
            return conn.execute(sa.select(tbl.c.value).where(tbl.c.key == key)).scalar_one_or_none()

    def set_state(self, key: str, value: t.Optional[str]) -> None:
        tbl = self._state_table
        with self.engine.begin() as conn:
            conn.execute(tbl.delete().where(tbl.c.key == key))
            if value is not None:
                conn.execute(tbl.insert().values(key=key, value=value))

    # -- artifacts --------------------------------------------------------------------
    def put_artifact(self, sha256: str, data: bytes) -> None:
        if self.has_artifact(sha256):
            return
        size = self.dialect.artifact_part_size()
        parts = max(1, -(-len(data) // size))
        tbl = self._artifacts_table
        try:
            with self.engine.begin() as conn:
                for i in range(parts):
                    piece = data[i * size : (i + 1) * size]
                    conn.execute(tbl.insert().values(sha256=sha256, part=i, parts=parts, data=piece))
        except sa.exc.IntegrityError:
            if not self.has_artifact(sha256):  # not a concurrent writer of the same bytes
                raise

    def get_artifact(self, sha256: str) -> bytes:
        tbl = self._artifacts_table
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(tbl.c.part, tbl.c.parts, tbl.c.data).where(tbl.c.sha256 == sha256).order_by(tbl.c.part)).all()
        if not rows or len(rows) != rows[0].parts:
            raise NotFoundError(f"Artifact {sha256[:12]} is missing from {self.safe_uri}.")
        return b"".join(bytes(r.data) for r in rows)

    def has_artifact(self, sha256: str) -> bool:
        tbl = self._artifacts_table
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(sa.func.count(), sa.func.max(tbl.c.parts)).where(tbl.c.sha256 == sha256)).first()
        return bool(row[0]) and row[0] == row[1]


def _fill(rows: t.Sequence[Row], known: set[str]) -> list[Row]:
    """Give every row the same keys (executemany needs them); missing ones are NULL."""
    keys = set().union(*(r.keys() for r in rows))
    return [{k: r.get(k) for k in keys} for r in rows]


class _Translate:
    """Turn driver errors into a :class:`BackendError` that says what was being done
    (``engine.backend_error``: a lock-wait bound by name, a lost connection, a full disk)."""

    def __init__(self, backend: "SQLBackend", what: str):
        self.backend = backend
        self.what = what

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc is not None and isinstance(exc, self.backend._driver_errors):
            b = self.backend
            raise backend_error(self.what, exc, b.dialect, b.lock_timeout_s, b.safe_uri) from exc
        return False


def _what(name: str, args: tuple) -> str:
    """``"claim_work of listener 'emb'"``: a method and what it was about, for messages."""
    first = args[0] if args else None
    if isinstance(first, str):
        return f"{name} of {first!r}"
    identifier = getattr(first, "identifier", None)
    return f"{name} of listener {identifier!r}" if isinstance(identifier, str) else name


class _TranslatedClaim(Claim):
    """A claim whose ``commit``/``release`` raise :class:`BackendError` for driver errors."""

    def __init__(self, backend: "SQLBackend", claim: Claim, what: str):
        self._claim, self._backend, self._what = claim, backend, what
        self.items = claim.items

    def commit(self, result):
        with self._backend._translate_errors(f"commit of {self._what}"):
            return self._claim.commit(result)

    def release(self) -> None:
        with self._backend._translate_errors(f"release of {self._what}"):
            self._claim.release()

    def __getattr__(self, name: str) -> t.Any:
        return getattr(self._claim, name)


def _translating(name: str, method: t.Callable) -> t.Callable:
    """``method`` with driver errors raised as :class:`BackendError` (generators too); a
    returned :class:`Claim` is wrapped the same way."""
    if inspect.isgeneratorfunction(method):
        @functools.wraps(method)
        def generate(self, *args, **kwargs):
            with self._translate_errors(_what(name, args)):
                yield from method(self, *args, **kwargs)
        return generate

    @functools.wraps(method)
    def call(self, *args, **kwargs):
        with self._translate_errors(_what(name, args)):
            result = method(self, *args, **kwargs)
        if isinstance(result, Claim) and not isinstance(result, _TranslatedClaim):
            return _TranslatedClaim(self, result, _what("claim", args))
        return result
    return call


def _translate_public_methods(cls: type) -> None:
    """Every public method of the core's store contracts (``pinnacle.backends``) that ``cls``
    has: a driver error leaves it as :class:`BackendError`, with the driver's in ``.orig``."""
    names = {
        name
        for base in cls.__mro__ if base.__module__.startswith("pinnacle.backends")
        for name, value in vars(base).items() if not name.startswith("_") and inspect.isfunction(value)
    }
    for name in sorted(names):
        method = getattr(cls, name)
        if inspect.isfunction(method) and not getattr(method, "__wrapped__", None):
            setattr(cls, name, _translating(name, method))


_translate_public_methods(SQLBackend)
