"""The body of a Ray actor: one database connection and one loaded listener version.

The actor connects to the database itself and loads the listener by identifier and
version from the metadata store, so the model comes from the artifact store: the
worker needs no access to the user's files. Each chunk runs
:meth:`~pinnacle.embedding.drain.Drainer.run` on exactly the chunk's sources (the same
claim/commit path as a local drain) and only counts come back to the driver.

This module imports no ``ray`` at import time; the driver wraps :class:`ChunkWorker`
with ``ray.remote``.
"""

from __future__ import annotations

import dataclasses as dc
import logging
import os
import threading
import time
import typing as t

logger = logging.getLogger(__name__)

__all__ = ["ChunkWorker"]


class ChunkWorker:
    """Computes chunks of one listener version's queue (run as a Ray actor).

    Args:
        uri: The database URI with its credentials (never logged or shown in the repr).
        listener: The listener's identifier.
        version: The listener version whose queue this worker drains.
        batch_rows: Rows per claim/commit transaction within a chunk.
        max_attempts: :class:`~pinnacle.embedding.drain.RetryPolicy` tries per row.
        backoff_s: :class:`~pinnacle.embedding.drain.RetryPolicy` first wait.
    """

    def __init__(self, uri: str, listener: str, version: int, batch_rows: int, max_attempts: int, backoff_s: float):
        import pinnacle
        from pinnacle.embedding.drain import Drainer, RetryPolicy

        self._label = f"{listener} v{version}"
        retry = RetryPolicy(max_attempts=max_attempts, backoff_s=backoff_s)
        self._db = pinnacle.connect(uri, batch_rows=batch_rows, retry=retry)
        component = self._db.load("Listener", listener, version)
        self._drainer = Drainer(self._db.backend, component, batch_rows=batch_rows, retry=retry)
        self._node = _node_id()
        self._lock = threading.Lock()
        self._cpu_mark = time.process_time()

    def __repr__(self) -> str:  # Ray prefixes the actor's log lines with this
        return f"ChunkWorker({self._label})"

    def ready(self) -> dict[str, t.Any]:
        """Where this worker runs: ``{"node", "pid"}``."""
        return {"node": self._node, "pid": os.getpid()}

    def run(self, sources: t.Sequence[t.Any]) -> dict[str, t.Any]:
        """Compute exactly ``sources`` (those still queued and due); returns counts, node, wall and CPU seconds.

        Called for two chunks at once (a threaded actor): their claims and commits overlap,
        their model calls take turns (the drainer's model lock). ``cpu_s`` is this process's
        CPU time since the previous chunk reported, so the chunks' figures add up to the actor's.
        """
        start = time.perf_counter()
        stats = self._drainer.run(sources=list(sources))
        with self._lock:
            cpu, self._cpu_mark = time.process_time() - self._cpu_mark, time.process_time()
        return {
            **dc.asdict(stats), "node": self._node, "pid": os.getpid(),
            "seconds": time.perf_counter() - start, "cpu_s": cpu,
        }


def _node_id() -> str:
    try:
        import ray

        return ray.get_runtime_context().get_node_id()
    except Exception:  # noqa: BLE001 - outside Ray (tests of the class itself)
        return "local"
