"""Listener chains: a listener that reads another listener's outputs table.

``Listener("chunk-emb", key="_output", select=db.outputs_table("chunks"))`` embeds the
outputs of listener ``chunks``. On SQL the outputs table has change-capture triggers of
its own, so every commit of ``chunks`` queues work for ``chunk-emb`` in the same
transaction; deleting a source row deletes its items, which deletes their outputs
downstream. This module holds what the datalayer needs to know about chains: who is
upstream of whom, the order to drain in, and how search maps chunk hits to parent rows.
"""

from __future__ import annotations

import typing as t

from pinnacle.backends.work import ListenerSpec
from pinnacle.components.listener import Listener
from pinnacle.errors import ConfigError, StateError

if t.TYPE_CHECKING:
    from pinnacle.backends.base import DataBackend
    from pinnacle.embedding.runtime import ListenerRuntime

    class Running(t.Protocol):
        """What chains read of the runtime registry (:class:`pinnacle.runtimes.Runtimes`)."""

        running: dict[str, ListenerRuntime]

        def get(self, listener_id: str) -> ListenerRuntime: ...

__all__ = ["upstream_of", "downstream_of", "upstream_first", "drain_downstream", "search_parents", "parent_query"]

#: How deep chains may go (a guard against a loop of listeners).
MAX_DEPTH = 8


def _outputs_tables(runtime: "ListenerRuntime") -> set[str]:
    return {d.spec.outputs_table for d in runtime.drainers.values()}


def upstream_of(runtimes: "Running", listener: Listener) -> t.Optional["ListenerRuntime"]:
    """The runtime of the listener whose outputs ``listener`` reads, or ``None``."""
    if not ListenerSpec.is_outputs_table(listener.select):
        return None
    for runtime in list(runtimes.running.values()):
        if listener.select in _outputs_tables(runtime):
            return runtime
    return None


def downstream_of(backend: "DataBackend", identifier: str) -> list[str]:
    """Identifiers of the applied listeners that read ``identifier``'s outputs (any version)."""
    found = []
    for row in backend.list_components("Listener"):
        if row["identifier"] == identifier:
            continue
        record = backend.get_component("Listener", row["identifier"])
        select = record["data"].get("select", "")
        if isinstance(select, str) and ListenerSpec.outputs_table_of(select, identifier):
            found.append(row["identifier"])
    return found


def depth(runtimes: "Running", runtime: "ListenerRuntime") -> int:
    """0 for a listener on a user table, 1 for one on its outputs, and so on."""
    level, current = 0, runtime
    while level < MAX_DEPTH:
        upstream = upstream_of(runtimes, current.latest)
        if upstream is None or upstream is current:
            return level
        level, current = level + 1, upstream
    raise StateError(f"Listener {runtime.identifier!r}: chain of listeners deeper than {MAX_DEPTH} (a loop?).")


def upstream_first(runtimes: "Running", names: t.Sequence[str]) -> list[str]:
    """``names`` ordered so that a listener comes after the listeners it reads from."""
    return sorted(names, key=lambda name: depth(runtimes, runtimes.get(name)))


def drain_downstream(runtimes: "Running", drained: t.Sequence["ListenerRuntime"]) -> None:
    """Drain what the commits of ``drained`` queued for the listeners reading their outputs."""
    level = 0
    while drained and level < MAX_DEPTH:
        tables = set().union(*(_outputs_tables(r) for r in drained))
        drained = [r for r in list(runtimes.running.values()) if any(r.listens_to(name) for name in tables)]
        for runtime in drained:
            runtime.drain()
        level += 1


# -- search over a chain --------------------------------------------------------------------
def parent_query(listener: Listener, parent: t.Optional[Listener], query: t.Any) -> t.Any:
    """``query`` as ``listener`` reads it: a plain string is its key's value; for an index over
    chunks, the parent table's key (``{"text": ...}``) stands for ``_output``."""
    if isinstance(listener.key, str):
        if isinstance(query, str):
            return {listener.key: query}
        if isinstance(query, t.Mapping) and listener.key not in query and parent is not None and isinstance(parent.key, str):
            if parent.key in query:
                return {listener.key: query[parent.key]}
    return query


def search_parents(
    backend: "DataBackend", live: t.Any, vector: t.Any, table: str, outputs: str, n: int,
    filter: t.Optional[t.Mapping[str, t.Any]] = None,
) -> list[dict]:
    """Rows of ``table`` best first, from an index over ``outputs``, the outputs table of a
    listener on ``table`` (e.g. chunks).

    Each parent appears once, with its best item's score (``_score``) and that item's text
    (``_chunk``, when the items are text). More candidates are fetched until ``n`` distinct
    parents are found or the index is exhausted.
    """
    item_pk = backend.primary_key(outputs)
    within = None
    if filter:
        parents = backend.ids(table, filter)
        within = set(backend.ids(outputs, {"_source": parents})) if parents else set()
        if not within:
            return []
    k = max(4 * n, 16)
    while True:
        hits = live.search(vector, k, within=within)
        columns = list(dict.fromkeys([item_pk, "_source", "_output"]))  # item_pk is _source when not flattened
        rows = backend.select(outputs, ids=[h[0] for h in hits], columns=columns) if hits else []
        items = {r[item_pk]: r for r in rows}
        best: dict[t.Any, tuple[float, dict]] = {}
        for item, score in hits:
            row = items.get(item)
            if row is not None and row["_source"] not in best:
                best[row["_source"]] = (score, row)
        if len(best) >= n or len(hits) < k:
            break
        k *= 4
    chosen = list(best.items())[:n]
    if not chosen:
        return []
    pk = backend.primary_key(table)
    found = {r[pk]: r for r in backend.select(table, ids=[source for source, _ in chosen])}
    out = []
    for source, (score, item) in chosen:
        row = found.get(source)
        if row is None:
            continue
        hit = {**row, "_score": score}
        if isinstance(item["_output"], str):
            hit["_chunk"] = item["_output"]
        out.append(hit)
    return out


def parent_listener(runtimes: "Running", listener: Listener, table: str, index: str) -> Listener:
    """The serving listener on ``table`` whose outputs ``listener`` embeds (for searching ``table``)."""
    upstream = upstream_of(runtimes, listener)
    if upstream is None or upstream.serving.select != table:
        raise ConfigError(f"VectorIndex {index!r} searches table {listener.select!r}, not {table!r}.")
    return upstream.serving
