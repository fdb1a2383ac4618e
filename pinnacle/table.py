"""``db["docs"]``: a handle on one table with insert, select, update, delete and like."""

from __future__ import annotations

import typing as t

from pinnacle.base.identifiers import validate_table_name
from pinnacle.errors import BackendError, ConfigError

if t.TYPE_CHECKING:
    from pinnacle.backends.base import DataBackend
    from pinnacle.runtimes import Runtimes

    class Layer(t.Protocol):
        """What a table uses of its datalayer (:class:`pinnacle.Datalayer`)."""

        backend: DataBackend
        runtimes: Runtimes

        def like(self, table: str, query: t.Any, **options: t.Any) -> list[dict]: ...

__all__ = ["Table"]

Row = dict[str, t.Any]


class Table:
    """A table (or collection) of the datalayer's database.

    Writes go through the listeners on the table: by default each write call returns
    only when the outputs of the rows it touched are stored.

    Example:
        >>> import pinnacle
        >>> db = pinnacle.connect("sqlite://")
        >>> ids = db["docs"].insert([{"_id": "1", "text": "hello"}])
        >>> db["docs"].get("1")["text"]
        'hello'
    """

    def __init__(self, db: "Layer", name: str):
        validate_table_name(name, "table name")
        self.db = db
        self.name = name

    def __repr__(self) -> str:
        return f"Table({self.name!r})"

    def insert(self, rows: t.Sequence[Row], *, wait: bool = True) -> list[t.Any]:
        """Insert rows; the table is created on first insert. Returns the new ids.

        Args:
            rows: Dicts of column -> value. ``_id`` is generated when absent.
            wait: Compute the listeners' outputs before returning (default). With
                ``False`` a ``pinnacle worker`` computes them.

        Example:
            >>> db["docs"].insert([{"_id": "8", "text": "hello"}, {"text": "world"}])
            ['8', '...']
        """
        if isinstance(rows, dict):
            rows = [rows]
        ids = self.db.backend.insert(self.name, list(rows))
        if wait:
            self._compute(ids)
        return ids

    def select(
        self,
        where: t.Optional[t.Mapping[str, t.Any]] = None,
        *,
        ids: t.Optional[t.Sequence[t.Any]] = None,
        columns: t.Optional[t.Sequence[str]] = None,
        limit: t.Optional[int] = None,
    ) -> list[Row]:
        """Rows where every ``column == value`` (a list value means any of those).

        Example:
            >>> db["docs"].select({"topic": ["space", "food"]}, columns=["_id", "text"], limit=2)
            [{'_id': '1', 'text': '...'}, {'_id': '2', 'text': '...'}]
        """
        return self.db.backend.select(self.name, self._where(where, "select"), ids=ids, columns=columns, limit=limit)

    def get(self, id: t.Any) -> t.Optional[Row]:
        """The row with primary key ``id``, or ``None``."""
        rows = self.db.backend.select(self.name, ids=[id])
        return rows[0] if rows else None

    def count(self, where: t.Optional[t.Mapping[str, t.Any]] = None) -> int:
        """How many rows match ``where`` (all rows by default)."""
        return self.db.backend.count(self.name, self._where(where, "count"))

    def update(self, where: t.Optional[t.Mapping[str, t.Any]], values: t.Mapping[str, t.Any], *, wait: bool = True) -> int:
        """Set ``values`` on the rows matching ``where``; changed keys are re-embedded. Returns the count.

        Example:
            >>> db["docs"].update({"_id": "1"}, {"text": "hello again"})
            1
        """
        where = self._where(where, "update")
        ids = self._ids(where) if wait else None
        count = self.db.backend.update(self.name, where, values)
        if wait and ids:
            self._compute(ids)
        return count

    def delete(self, where: t.Optional[t.Mapping[str, t.Any]], *, wait: bool = True) -> int:
        """Delete the rows matching ``where`` and their outputs. Returns the count.

        Example:
            >>> db["docs"].delete({"topic": ["old", "spam"]})
            3
        """
        where = self._where(where, "delete")
        ids = self._ids(where) if wait else None
        count = self.db.backend.delete(self.name, where)
        if wait and ids:
            self._compute(ids)
        return count

    def like(
        self,
        query: t.Union[str, t.Mapping[str, t.Any]],
        *,
        vector_index: str,
        n: int = 10,
        filter: t.Optional[t.Mapping[str, t.Any]] = None,
        mode: str = "vector",
        rerank: t.Any = None,
        candidates: t.Optional[int] = None,
        rrf_k: int = 60,
        weights: t.Optional[t.Mapping[str, float]] = None,
    ) -> list[Row]:
        """The ``n`` rows most similar to ``query``, best first, each with a ``_score``.

        On an index over chunks of this table's rows, each row comes once, with its best
        chunk's ``_score`` and that chunk in ``_chunk``.

        Example:
            >>> hits = db["docs"].like({"text": "a rocket reached orbit"}, vector_index="docs-idx", n=2)
            >>> [(hit["_id"], round(hit["_score"], 2)) for hit in hits]
            [('1', 1.0), ...]

        Args:
            query: A row-like dict holding the index's key, e.g. ``{"text": "a question"}``,
                or the key's value itself (``"a question"``).
            vector_index: Identifier of the VectorIndex to use.
            n: How many rows.
            filter: Only rows where every ``column == value`` (pre-filtering: still ``n`` rows).
            mode: ``"vector"`` (default): by the vectors; ``"text"``: by the database's
                full-text index of the VectorIndex (``full_text=True``); ``"hybrid"``: both,
                fused by reciprocal rank. Hits of ``"text"``/``"hybrid"`` also say their rank
                on each side: ``_vector_rank``, ``_text_rank`` (``None``: not found there).
            rerank: A second stage for the first stage's ``candidates``: the identifier of a
                VectorIndex on this table (e.g. ColBERT, MaxSim) or of a Model scoring
                ``(query, text)`` pairs (a cross-encoder), or such a Model; ``_score`` is then
                its score and ``_first_score`` the first stage's.
            candidates: Rows taken from each side before fusing (and re-ranked), at least
                ``n``; ``max(4 * n, 50)`` by default.
            rrf_k: The constant of reciprocal rank fusion: ``weight / (rrf_k + rank)`` per side.
            weights: ``mode="hybrid"``: each side's weight, ``{"vector": 1.0, "text": 1.0}`` by default.

        See docs/search.md ("Hybrid").
        """
        return self.db.like(
            self.name, query, vector_index=vector_index, n=n, filter=filter, mode=mode, rerank=rerank,
            candidates=candidates, rrf_k=rrf_k, weights=weights,
        )

    def _where(self, where: t.Any, method: str) -> t.Optional[t.Mapping[str, t.Any]]:
        if where is None or isinstance(where, t.Mapping):
            return where
        raise ConfigError(
            f"{self.name}.{method}(): 'where' must be a dict of column -> value "
            f"(e.g. {{'_id': {where!r}}}), got {type(where).__name__} {where!r}"
        )

    def _compute(self, ids: t.Sequence[t.Any]) -> None:
        """Compute the outputs of rows this call wrote; a database failure now says the rows are kept."""
        try:
            self.db.runtimes.drain_table(self.name, ids)
        except BackendError as exc:
            raise BackendError(
                f"{exc} The rows this call wrote to {self.name!r} are stored and stay queued: db.drain() "
                "or a pinnacle worker computes their outputs.", exc.orig, transient=exc.transient,
            ) from exc

    def _ids(self, where):
        return self.db.backend.ids(self.name, where)
