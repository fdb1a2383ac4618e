"""pgvector on PostgreSQL: outputs stored as ``vector`` columns and searched in the database.

When the server has the ``vector`` extension (installed, or available and installable by
this user), a single-vector listener's ``_output`` column is ``vector(dim)`` instead of
bytes. The rest of pinnacle still sees bytes: :class:`PgVector` converts on the way in and
out. :class:`PgVectorSearch` runs ``like()`` as one ``ORDER BY distance LIMIT n`` query,
joined to the source table for filters, exact or through an HNSW/IVFFlat index.
"""

from __future__ import annotations

import hashlib
import logging
import re
import typing as t

import numpy as np
import sqlalchemy as sa

from pinnacle.backends.base import DatabaseSearch, ListenerSpec
from pinnacle.errors import BackendError, ConfigError
from pinnacle.plugins.sql.statements import where_clause

logger = logging.getLogger(__name__)

__all__ = ["PgVector", "PgVectorSearch", "vector_type", "extension_ready"]

#: Output dtypes a ``vector`` column (float32) holds without loss.
DTYPES = ("float32", "float16")
#: Distance operator and index operator class per measure; scores are higher-is-better.
OPERATORS = {"cosine": "<=>", "dot": "<#>", "l2": "<->"}
OPCLASSES = {"cosine": "vector_cosine_ops", "dot": "vector_ip_ops", "l2": "vector_l2_ops"}
#: pgvector's largest ``hnsw.ef_search``: an HNSW scan returns at most that many rows.
MAX_EF_SEARCH = 1000


class _VectorDDL(sa.types.UserDefinedType):
    """The ``vector``/``vector(dim)`` column type (values travel as text ``'[1,2,3]'``)."""

    cache_ok = True

    def __init__(self, dim: t.Optional[int] = None):
        self.dim = dim

    def get_col_spec(self, **kw: t.Any) -> str:
        return "vector" if self.dim is None else f"vector({int(self.dim)})"

    def bind_expression(self, bindvalue):
        return sa.cast(bindvalue, _VectorCast())


class _VectorCast(sa.types.UserDefinedType):
    cache_ok = True

    def get_col_spec(self, **kw: t.Any) -> str:
        return "vector"


class PgVector(sa.types.TypeDecorator):
    """A ``vector(dim)`` column read and written as the bytes of a :class:`Vector` datatype.

    Example:
        >>> col = PgVector(3)
        >>> col.process_bind_param(np.array([1, 2, 3], dtype="<f4").tobytes(), None)
        '[1.0,2.0,3.0]'
        >>> np.frombuffer(col.process_result_value("[1,2,3]", None), dtype="<f4").tolist()
        [1.0, 2.0, 3.0]
    """

    impl = _VectorDDL
    cache_ok = True

    def __init__(self, dim: t.Optional[int] = None, dtype: str = "float32"):
        super().__init__(dim)
        self.dim = dim
        self.dtype = dtype

    def process_bind_param(self, value: t.Any, dialect: t.Any) -> t.Any:
        if isinstance(value, (bytes, bytearray, memoryview)):
            array = np.frombuffer(value, dtype=np.dtype(self.dtype).newbyteorder("<"))
            return to_text(array)
        return value

    def process_result_value(self, value: t.Any, dialect: t.Any) -> t.Any:
        if value is None:
            return None
        array = np.array(value.strip("[]").split(","), dtype=np.float32) if isinstance(value, str) else np.asarray(value)
        return np.ascontiguousarray(array, dtype=np.dtype(self.dtype).newbyteorder("<")).tobytes()


def to_text(vector: t.Any) -> str:
    """pgvector's text form of a vector: ``'[1.0,2.0]'`` (float32 values, round-trip exact)."""
    values = np.asarray(vector, dtype=np.float32).ravel()
    if not np.all(np.isfinite(values)):
        raise ConfigError("pgvector cannot store NaN or infinite values.")
    return "[" + ",".join(map(repr, values.tolist())) + "]"


# -- choosing the column type -------------------------------------------------------------------
def extension_ready(backend: t.Any) -> bool:
    """Whether ``vector`` is usable here: installed and visible, or installed now (once per backend).

    ``backend.pgvector``: ``None`` (auto), ``False`` (never: bytes) or ``True`` (required).
    """
    cached = getattr(backend, "_pgvector_ready", None)
    if cached is not None:
        return cached
    ready = False
    if backend.pgvector is not False and backend.dialect.supports_pgvector:
        with backend.engine.connect() as conn:
            ready = conn.exec_driver_sql("SELECT to_regtype('vector') IS NOT NULL").scalar()
            available = conn.exec_driver_sql("SELECT count(*) FROM pg_available_extensions WHERE name = 'vector'").scalar()
        if not ready and available:
            try:
                with backend.engine.begin() as conn:
                    conn.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS vector")
                    ready = conn.exec_driver_sql("SELECT to_regtype('vector') IS NOT NULL").scalar()
            except sa.exc.DBAPIError as exc:
                logger.info("pgvector is available but cannot be installed here (%s); outputs are stored as bytes", exc.orig)
        if not ready and available:
            logger.warning(
                "pgvector is installed in a schema outside this connection's search_path; outputs are stored as "
                "bytes. Add that schema to search_path to use it."
            )
    if backend.pgvector is True and not ready:
        raise ConfigError(
            f"connect(..., pgvector=True): {backend.safe_uri} has no usable 'vector' extension. Install pgvector "
            "on the server (https://github.com/pgvector/pgvector) or leave pgvector unset to store bytes."
        )
    backend._pgvector_ready = bool(ready)
    return backend._pgvector_ready


def _column_type(backend: t.Any, table: str) -> t.Optional[str]:
    """``format_type`` of ``table._output`` (``'vector(384)'``, ``'bytea'``), ``None`` if no such table."""
    with backend.engine.connect() as conn:
        return conn.execute(
            sa.text(
                "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
                "WHERE attrelid = to_regclass(:name) AND attname = '_output' AND NOT attisdropped"
            ),
            {"name": backend.quote(table)},
        ).scalar()


def vector_type(backend: t.Any, spec: ListenerSpec) -> t.Optional[PgVector]:
    """The ``_output`` type of ``spec``'s outputs table on pgvector, or ``None`` for the default (bytes).

    An existing table keeps the type it was created with; a new one gets ``vector(dim)``
    when the outputs are float32/float16 vectors and :func:`extension_ready`.
    """
    if not backend.dialect.supports_pgvector or spec.flatten or spec.text or backend.pgvector is False:
        return None
    existing = _column_type(backend, spec.outputs_table)
    if existing is not None:
        found = re.fullmatch(r"(?:.*\.)?vector(?:\((\d+)\))?", existing)
        if found is None:
            return None
        dim = int(found.group(1)) if found.group(1) else None
        return PgVector(dim, spec.dtype if spec.dtype in DTYPES else "float32")
    if spec.dtype not in DTYPES or not extension_ready(backend):
        return None
    return PgVector(spec.dim, spec.dtype)


# -- search -------------------------------------------------------------------------------------
class PgVectorSearch(DatabaseSearch):
    """``like()`` in PostgreSQL: ``ORDER BY _output <=> query LIMIT n``, filters joined in.

    Exact unless ``index`` is ``"hnsw"``/``"ivfflat"``: then the index (built on first use,
    ``CREATE INDEX IF NOT EXISTS``) answers, and when it returns fewer than ``n`` rows (a
    filter that few of its candidates match) the query runs again exactly, so ``n`` rows
    come back whenever ``n`` rows match.
    """

    def __init__(self, backend: t.Any, spec: ListenerSpec, measure: str, index: t.Optional[str], options: t.Mapping[str, t.Any]):
        if measure not in OPERATORS:
            raise ConfigError(f"pgvector search supports measures {list(OPERATORS)}, not {measure!r}.")
        self.backend = backend
        self.spec = spec
        self.measure = measure
        self.index = index
        self.options = dict(options or {})
        self.outputs = backend._tables_for(spec)[0]
        self._indexed = index is None  # True once the index exists (or none is wanted)

    def __repr__(self) -> str:
        return f"PgVectorSearch({self.spec.outputs_table!r}, {self.measure!r}, index={self.index!r})"

    # -- the index -----------------------------------------------------------------------------
    def index_name(self) -> str:
        build = {k: v for k, v in sorted(self.options.items()) if k in ("m", "ef_construction", "lists")}
        key = f"{self.spec.outputs_table}|{self.index}|{self.measure}|{build}"
        return "ixv_" + hashlib.sha1(key.encode()).hexdigest()[:20]

    def ensure_index(self) -> bool:
        """Build the declared index if it does not exist yet; ``False`` while the table is empty."""
        if self._indexed:
            return True
        q = self.backend.quote
        table = q(self.spec.outputs_table)
        with self.backend.engine.connect() as conn:
            rows = conn.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar()
            if not rows:
                return False
            if self.outputs.c._output.type.dim is None and _column_type(self.backend, self.spec.outputs_table) == "vector":
                dim = conn.exec_driver_sql(f"SELECT vector_dims(_output) FROM {table} LIMIT 1").scalar()
                with conn.begin():
                    conn.exec_driver_sql(f"ALTER TABLE {table} ALTER COLUMN _output TYPE vector({int(dim)})")
        if self.index == "hnsw":
            with_ = f"m = {int(self.options['m'])}, ef_construction = {int(self.options['ef_construction'])}"
        else:
            lists = self.options.get("lists") or max(10, int(rows) // 1000)
            with_ = f"lists = {int(lists)}"
        ddl = (
            f"CREATE INDEX IF NOT EXISTS {q(self.index_name())} ON {table} "
            f"USING {self.index} (_output {OPCLASSES[self.measure]}) WITH ({with_})"
        )
        logger.info("VectorIndex on %s: building %s index (%d rows)", self.spec.outputs_table, self.index, rows)
        try:
            with self.backend.engine.begin() as conn:
                conn.exec_driver_sql(ddl)
        except sa.exc.IntegrityError:  # another process built it at the same moment
            pass
        except sa.exc.DBAPIError as exc:
            raise BackendError(f"Building the {self.index} index on {self.spec.outputs_table!r} failed: {exc.orig}", exc.orig) from exc
        self._indexed = True
        return True

    # -- queries -------------------------------------------------------------------------------
    def search(self, vector, n, *, within=None, filter=None):
        if n <= 0 or (within is not None and len(within) == 0):
            return []
        query = np.asarray(vector, dtype=np.float32).ravel()
        dim = self.outputs.c._output.type.dim
        if dim is not None and query.shape[0] != dim:
            raise ValueError(f"query length {query.shape[0]} differs from the index's {dim}")
        text = to_text(query)
        approximate = self.index is not None and n <= MAX_EF_SEARCH and self.ensure_index()
        try:
            with self.backend.engine.begin() as conn:
                if approximate:
                    self._tune(conn, n)
                    rows = conn.execute(self._select(text, n, within, filter, exact=False)).all()
                    if len(rows) < n:  # the index's candidates held fewer than n matches
                        rows = conn.execute(self._select(text, n, within, filter, exact=True)).all()
                else:
                    rows = conn.execute(self._select(text, n, within, filter, exact=True)).all()
        except sa.exc.DBAPIError as exc:
            raise BackendError(f"pgvector search on {self.spec.outputs_table!r} failed: {exc.orig}", exc.orig) from exc
        return [(source, self._score(float(distance))) for source, distance in rows]

    def _tune(self, conn: sa.Connection, n: int) -> None:
        if self.index == "hnsw":
            ef = min(MAX_EF_SEARCH, max(int(self.options["ef_search"]), n))
            conn.exec_driver_sql(f"SET LOCAL hnsw.ef_search = {ef}")
        else:
            conn.exec_driver_sql(f"SET LOCAL ivfflat.probes = {int(self.options['probes'])}")

    def _select(self, text: str, n: int, within, filter, *, exact: bool) -> sa.Select:
        out = self.outputs
        probe = sa.cast(sa.bindparam("query", text, type_=sa.Text), _VectorCast())
        distance = out.c._output.op(OPERATORS[self.measure], return_type=sa.Float)(probe)
        query = sa.select(out.c._source, distance.label("distance"))
        if filter:
            source = self.backend.table(self.spec.table)
            pk = source.c[self.backend.primary_key(self.spec.table)]
            query = query.select_from(out.join(source, pk == out.c._source)).where(where_clause(source, filter))
        if within is not None:
            query = query.where(self.backend.dialect.one_of(out.c._source, list(within)))
        # ``+ 0``: an expression no index matches, so the planner scans every matching row.
        order = distance + 0 if exact else distance
        return query.order_by(order).limit(int(n))

    def _score(self, distance: float) -> float:
        if self.measure == "cosine":
            return 1.0 - distance
        return -distance
