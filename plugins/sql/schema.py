"""Table definitions: user tables inferred from rows, and pinnacle's own tables with the
version of their layout (:data:`LAYOUT`, recorded in ``_pinnacle_schema``).

Opening a database (:func:`open_layout`) reads the recorded layout first. A newer one than
this code knows is refused, naming both; an older one is upgraded by the :data:`STEPS`
after it, in one transaction where DDL is transactional (SQLite, PostgreSQL). MySQL/MariaDB
commit each DDL statement on their own, so there an upgrade runs only when asked
(``pinnacle.connect(uri, upgrade=True)``; the refusal gives that line). A table added
later is additive (created when missing, as before); a change to an existing table is a
new step and ``LAYOUT + 1``.
"""

from __future__ import annotations

import contextlib
import dataclasses as dc
import datetime as _dt
import hashlib
import logging
import time
import typing as t

import sqlalchemy as sa
from sqlalchemy.dialects import mysql

from pinnacle.base.identifiers import validate_column
from pinnacle.errors import ConfigError, StateError

if t.TYPE_CHECKING:
    from pinnacle.plugins.sql.dialects.base import Dialect

__all__ = [
    "ID_COLUMN",
    "infer_user_table",
    "metadata_tables",
    "listener_tables",
    "blob",
    "LAYOUT",
    "STEPS",
    "Step",
    "open_layout",
    "read_layout",
]

logger = logging.getLogger(__name__)

ID_COLUMN = "_id"
#: Large binary that holds more than 64 KB on MySQL/MariaDB too.
blob = sa.LargeBinary().with_variant(mysql.LONGBLOB(), "mysql", "mariadb")
long_text = sa.Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")
#: Table options for MySQL/MariaDB (ignored elsewhere): full Unicode whatever the server default.
_MYSQL_TABLE = {"mysql_charset": "utf8mb4", "mariadb_charset": "utf8mb4"}


def key_string(length: int) -> sa.types.TypeEngine:
    """A string key compared byte for byte (case-sensitive) on MySQL/MariaDB, as elsewhere."""
    return sa.String(length).with_variant(mysql.VARCHAR(length, charset="utf8mb4", collation="utf8mb4_bin"), "mysql", "mariadb")


def _column_type(column: str, values: list[t.Any], table: str) -> sa.types.TypeEngine:
    kinds = {type(v) for v in values if v is not None}
    if not kinds:
        return long_text
    if kinds <= {bool}:
        return sa.Boolean()
    if kinds <= {int}:
        return sa.BigInteger()
    if kinds <= {int, float}:
        return sa.Float(precision=53).with_variant(mysql.DOUBLE(), "mysql", "mariadb")
    if kinds <= {str}:
        return long_text
    if kinds <= {bytes, bytearray}:
        return blob
    if kinds <= {dict, list}:
        return sa.JSON()
    if kinds <= {_dt.datetime}:
        return sa.DateTime(timezone=False).with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
    if kinds <= {str, int, float, bool, dict, list}:
        return sa.JSON()  # mixed values: JSON holds each as it is
    raise ConfigError(
        f"Table {table!r}: cannot infer a column type for {column!r} from values of types "
        f"{sorted(k.__name__ for k in kinds)}; bytes and datetimes cannot share a column with other types."
    )


def infer_user_table(name: str, rows: t.Sequence[t.Mapping[str, t.Any]], metadata: sa.MetaData, dialect: "Dialect") -> sa.Table:
    """A table for ``rows``: an ``_id`` string key (with ``dialect``'s server-side default, for
    rows inserted by other clients) plus one column per field seen."""
    names: dict[str, None] = {}
    for row in rows:
        for key in row:
            names.setdefault(key, None)
    columns = [
        sa.Column(ID_COLUMN, key_string(64), primary_key=True, server_default=dialect.id_default()),
    ]
    for column in names:
        if column == ID_COLUMN:
            continue
        validate_column(column, name)
        columns.append(sa.Column(column, _column_type(column, [r.get(column) for r in rows], name), nullable=True))
    return sa.Table(name, metadata, *columns, **_MYSQL_TABLE)


def metadata_tables(metadata: sa.MetaData, dialect: "Dialect") -> tuple[sa.Table, sa.Table]:
    """``_pinnacle_components`` and ``_pinnacle_artifacts`` (also defines ``_pinnacle_state``,
    ``_pinnacle_claims`` and ``_pinnacle_schema`` in ``metadata``)."""
    components = sa.Table(
        "_pinnacle_components",
        metadata,
        sa.Column("type", key_string(40), primary_key=True),
        sa.Column("identifier", key_string(64), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("uuid", sa.String(64), nullable=False),
        sa.Column("data", long_text, nullable=False),
        sa.Column("created_at", sa.Float(precision=53), nullable=False),
        **_MYSQL_TABLE,
    )
    sa.Table(
        "_pinnacle_state",
        metadata,
        sa.Column("key", key_string(200), primary_key=True),  # layout 2: exact on MySQL/MariaDB too
        sa.Column("value", long_text, nullable=False),
        **_MYSQL_TABLE,
    )
    sa.Table(
        SCHEMA_TABLE,
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),  # one row: id 1
        sa.Column("layout", sa.Integer, nullable=False),
        sa.Column("written_by", sa.String(64), nullable=False),
        sa.Column("updated_at", sa.Float(precision=53), nullable=False),
        **_MYSQL_TABLE,
    )
    # Claims in progress, for status() (see plugins/sql/inflight.py). Nothing in it needs to
    # outlive the server: the dialect's ephemeral table options (PostgreSQL keeps it out of
    # the WAL, MySQL/MariaDB in memory), so recording a claim costs no log flush.
    sa.Table(
        "_pinnacle_claims",
        metadata,
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("queue", sa.String(200), nullable=False, index=True),
        sa.Column("sources", sa.Integer, nullable=False),
        sa.Column("holder", sa.String(200), nullable=False),
        sa.Column("claimed_at", sa.Float(precision=53), nullable=False),
        **_MYSQL_TABLE,
        **dialect.ephemeral_table,
    )
    artifacts = sa.Table(
        "_pinnacle_artifacts",
        metadata,
        sa.Column("sha256", sa.String(64), primary_key=True),
        sa.Column("part", sa.Integer, primary_key=True),
        sa.Column("parts", sa.Integer, nullable=False),
        sa.Column("data", blob, nullable=False),
    )
    return components, artifacts


#: Longest id of a flattened output (``"<source id>/<position>"``).
ITEM_ID_LENGTH = 255


def listener_tables(
    metadata: sa.MetaData, outputs: str, queue: str, failed: str, source_type: sa.types.TypeEngine,
    *, flatten: bool = False, text: bool = False, output_type: t.Optional[sa.types.TypeEngine] = None,
) -> tuple[sa.Table, sa.Table, sa.Table]:
    """The outputs, queue and failed tables of one listener, keyed by the source id type.

    Outputs are one row per source (``_source`` primary key), or with ``flatten`` one row
    per item (``_id`` = ``"<source>/<position>"`` primary key, ``_source`` indexed,
    ``_position``). ``_output`` is bytes, or text with ``text``, or ``output_type`` when
    given (a pgvector column, see ``pgvector.py``).
    """
    output_type = output_type if output_type is not None else long_text if text else blob
    if flatten:
        keys = [
            sa.Column("_id", key_string(ITEM_ID_LENGTH), primary_key=True),
            sa.Column("_source", source_type, nullable=False),
            sa.Column("_position", sa.Integer, nullable=False),
        ]
    else:
        keys = [sa.Column("_source", source_type, primary_key=True)]
    outputs_table = sa.Table(
        outputs,
        metadata,
        *keys,
        sa.Column("_output", output_type, nullable=False),
        sa.Column("_model_uuid", sa.String(64), nullable=False),
        sa.Column("_updated_at", sa.Float(precision=53), nullable=False),
        **_MYSQL_TABLE,
    )
    if flatten:
        sa.Index("ixo_" + hashlib.sha1(outputs.encode()).hexdigest()[:20], outputs_table.c._source)
    queue_table = sa.Table(
        queue,
        metadata,
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("_source", source_type, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("not_before", sa.Float(precision=53), nullable=True),
        # SQLite reuses the largest rowid after a delete unless AUTOINCREMENT: a commit that
        # checks "are my entries still there" by id would then delete another row's new entry.
        sqlite_autoincrement=True,
        **_MYSQL_TABLE,
    )
    # A short, fixed-length index name: MySQL allows 64 characters.
    sa.Index("ixq_" + hashlib.sha1(queue.encode()).hexdigest()[:20], queue_table.c._source)
    failed_table = sa.Table(
        failed,
        metadata,
        sa.Column("_source", source_type, primary_key=True),
        sa.Column("error_type", sa.String(200), nullable=False),
        sa.Column("message", long_text, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("failed_at", sa.Float(precision=53), nullable=False),
        **_MYSQL_TABLE,
    )
    return outputs_table, queue_table, failed_table


# -- the layout of pinnacle's own tables -----------------------------------------------------
#: The layout this code writes and reads. 1: before layouts were recorded (pinnacle 0.1.0 up
#: to commit 26c597b: no ``_pinnacle_schema``). 2: ``_pinnacle_schema`` records the layout,
#: and ``_pinnacle_state`` keys compare byte for byte on MySQL/MariaDB as elsewhere (layout 1
#: left them to the server's collation there, so ``Listener/Docs/...`` and
#: ``Listener/docs/...`` were one key).
LAYOUT = 2
SCHEMA_TABLE = "_pinnacle_schema"


@dc.dataclass(frozen=True)
class Step:
    """One upgrade: ``run(conn, metadata, dialect)`` turns layout ``layout - 1`` into ``layout``.
    It must be safe to run again after a run that stopped half-way (MySQL/MariaDB commit each
    DDL statement, so a stopped upgrade is redone from its last recorded layout)."""

    layout: int
    summary: str
    run: t.Callable[[sa.Connection, sa.MetaData, "Dialect"], None]


def _state_keys_exact(conn: sa.Connection, metadata: sa.MetaData, dialect: "Dialect") -> None:
    """Layout 2: ``_pinnacle_state`` rebuilt with its layout-2 definition (a copy, then a
    rename: the one way that is the same on SQLite, PostgreSQL and MySQL/MariaDB)."""
    old, new, q = "_pinnacle_state", "_pinnacle_state__layout2", dialect.quote
    inspector = sa.inspect(conn)
    if inspector.has_table(new):
        if not inspector.has_table(old):  # stopped between the drop and the rename: finish
            conn.exec_driver_sql(f"ALTER TABLE {q(new)} RENAME TO {q(old)}")
            return
        conn.exec_driver_sql(f"DROP TABLE {q(new)}")
    if not inspector.has_table(old):
        return  # nothing to copy: created with the new definition below
    copy = metadata.tables[old].to_metadata(sa.MetaData(), name=new)
    copy.create(conn)
    previous = sa.table(old, sa.column("key"), sa.column("value"))
    conn.execute(sa.insert(copy).from_select(["key", "value"], sa.select(previous.c.key, previous.c.value)))
    conn.exec_driver_sql(f"DROP TABLE {q(old)}")
    conn.exec_driver_sql(f"ALTER TABLE {q(new)} RENAME TO {q(old)}")


#: The upgrades, in order; ``STEPS[-1].layout == LAYOUT``.
STEPS: tuple[Step, ...] = (
    Step(2, "record the layout in _pinnacle_schema; _pinnacle_state keys compared byte for byte", _state_keys_exact),
)


def read_layout(conn: sa.Connection) -> tuple[t.Optional[int], t.Optional[str]]:
    """``(layout, pinnacle version that wrote it)`` of the database ``conn`` is on:
    ``(None, None)`` when it holds none of pinnacle's tables, ``(1, None)`` for tables
    written before layouts were recorded."""
    inspector = sa.inspect(conn)
    if inspector.has_table(SCHEMA_TABLE):
        table = sa.table(SCHEMA_TABLE, sa.column("id"), sa.column("layout"), sa.column("written_by"))
        row = conn.execute(sa.select(table.c.layout, table.c.written_by).where(table.c.id == 1)).first()
        if row is not None:
            return int(row.layout), row.written_by
    if inspector.has_table("_pinnacle_components"):
        return 1, None
    return None, None


def _record(conn: sa.Connection, metadata: sa.MetaData, layout: int) -> None:
    from pinnacle import __version__

    table = metadata.tables[SCHEMA_TABLE]
    conn.execute(table.delete().where(table.c.id == 1))
    conn.execute(table.insert().values(id=1, layout=layout, written_by=__version__, updated_at=time.time()))


def _create_missing(engine: sa.Engine, metadata: sa.MetaData) -> None:
    """``create_all`` that tolerates another process creating the same tables."""
    for attempt in range(3):
        try:
            metadata.create_all(engine, checkfirst=True)
            return
        except (sa.exc.IntegrityError, sa.exc.ProgrammingError, sa.exc.OperationalError) as exc:
            if "exist" not in str(exc.orig).lower() or attempt == 2:
                raise
            time.sleep(0.05)


def open_layout(engine: sa.Engine, metadata: sa.MetaData, dialect: "Dialect", *, where: str, upgrade: bool = False) -> int:
    """Check (and create, or upgrade) pinnacle's own tables in ``metadata`` on ``engine``'s
    database; returns the layout found before (``None``: a new database).

    Raises:
        StateError: the layout is newer than this code's (upgrade pinnacle), or older and
            MySQL/MariaDB would need DDL outside a transaction without ``upgrade=True``.

    Example:
        >>> from pinnacle.plugins.sql.dialects import dialect_for
        >>> engine = sa.create_engine("sqlite://")
        >>> meta = sa.MetaData(); _ = metadata_tables(meta, dialect_for(engine))
        >>> open_layout(engine, meta, dialect_for(engine), where="sqlite://") is None
        True
        >>> with engine.connect() as conn:
        ...     read_layout(conn)[0] == LAYOUT
        True
    """
    for attempt in range(3):
        with engine.connect() as conn:
            found, by = read_layout(conn)
        if found is not None and found > LAYOUT:
            raise StateError(
                f"The database at {where} holds pinnacle's tables in layout {found} (written by pinnacle {by}); "
                f"this pinnacle ({_version()}) knows layouts up to {LAYOUT} and leaves the database untouched. "
                f"Upgrade pinnacle where this runs: pip install -U 'pinnacle>={by}'."
            )
        if found == LAYOUT:
            break
        try:
            if found is None:  # a new database: the layout first, so no opener takes it for layout 1
                with engine.begin() as conn:
                    metadata.tables[SCHEMA_TABLE].create(conn, checkfirst=True)
                    _record(conn, metadata, LAYOUT)
            else:
                _upgrade(engine, metadata, dialect, found, where=where, upgrade=upgrade)
            break
        except (sa.exc.IntegrityError, sa.exc.ProgrammingError, sa.exc.OperationalError, StateError) as exc:
            # Another process creating or upgrading the same tables makes this one fail: look again.
            with engine.connect() as conn:
                if read_layout(conn)[0] == LAYOUT:
                    break
            if attempt == 2 or (isinstance(exc, StateError) and not isinstance(exc.__cause__, sa.exc.DBAPIError)):
                raise
            time.sleep(0.05 * (attempt + 1))
    _create_missing(engine, metadata)
    return found


def _upgrade(engine: sa.Engine, metadata: sa.MetaData, dialect: "Dialect", found: int, *, where: str, upgrade: bool) -> None:
    steps = [s for s in STEPS if s.layout > found]
    if dialect.transactional_ddl:
        with engine.begin() as conn:
            now, _ = read_layout(conn)  # another opener may have upgraded it meanwhile
            if now is not None and now >= LAYOUT:
                return
            for step in steps:
                with _failing_step(step, where, found, "nothing was changed (the upgrade is one transaction)"):
                    step.run(conn, metadata, dialect)
            metadata.create_all(conn, checkfirst=True)
            _record(conn, metadata, LAYOUT)
        logger.warning("Upgraded pinnacle's tables in %s from layout %d to %d in one transaction: %s",
                       where, found, LAYOUT, "; ".join(s.summary for s in steps))
        return
    if not upgrade:
        raise StateError(
            f"The database at {where} holds pinnacle's tables in layout {found}; this pinnacle ({_version()}) "
            f"uses layout {LAYOUT} ({'; '.join(s.summary for s in steps)}). This database commits each DDL "
            f"statement on its own, so pinnacle upgrades it only when asked: stop the pinnacle processes using "
            f"it, back it up, then run: python -c \"import pinnacle; pinnacle.connect('{where}', upgrade=True)\""
        )
    for step in steps:  # each step is safe to redo; the layout is recorded after each
        with engine.begin() as conn:
            with _failing_step(step, where, step.layout - 1, "the step's DDL may be half done; running the same line again redoes it"):
                step.run(conn, metadata, dialect)
            metadata.tables[SCHEMA_TABLE].create(conn, checkfirst=True)
            _record(conn, metadata, step.layout)
        logger.warning("Upgraded pinnacle's tables in %s to layout %d: %s", where, step.layout, step.summary)


@contextlib.contextmanager
def _failing_step(step: Step, where: str, recorded: int, outcome: str) -> t.Iterator[None]:
    """A step that fails raises :class:`StateError` saying which step, what was recorded, and
    what that means (the driver's error, if any, stays in ``__cause__``)."""
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - restated with what it means for the database
        cause = " ".join(str(exc).split())[:300] or type(exc).__name__
        raise StateError(
            f"Upgrading pinnacle's tables in {where} to layout {step.layout} ({step.summary}) failed: {cause}. "
            f"The database stays at layout {recorded}; {outcome}."
        ) from exc


def _version() -> str:
    from pinnacle import __version__

    return __version__
