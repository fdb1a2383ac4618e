"""Table definitions: user tables inferred from rows, and pinnacle's own tables."""

from __future__ import annotations

import datetime as _dt
import hashlib
import typing as t

import sqlalchemy as sa
from sqlalchemy.dialects import mysql

from pinnacle.base.identifiers import validate_column
from pinnacle.errors import ConfigError

if t.TYPE_CHECKING:
    from pinnacle.plugins.sql.dialects.base import Dialect

__all__ = [
    "ID_COLUMN",
    "infer_user_table",
    "metadata_tables",
    "listener_tables",
    "blob",
]

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
    """``_pinnacle_components`` and ``_pinnacle_artifacts`` (also defines ``_pinnacle_state``
    and ``_pinnacle_claims`` in ``metadata``)."""
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
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("value", long_text, nullable=False),
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
