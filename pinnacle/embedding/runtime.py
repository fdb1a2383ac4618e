"""One listener at run time: the version that serves outputs and, while a model change is
being rolled out, the version being built beside it."""

from __future__ import annotations

import logging
import typing as t

from pinnacle.backends.base import DataBackend, ListenerSpec
from pinnacle.components.listener import Listener
from pinnacle.embedding.drain import Drainer, DrainStats, OnCommit, RetryPolicy

logger = logging.getLogger(__name__)

__all__ = ["ListenerRuntime", "serving_key"]


def serving_key(identifier: str) -> str:
    """State key holding the version of ``identifier`` whose outputs are served."""
    return f"Listener/{identifier}/serving"


class ListenerRuntime:
    """Drains one listener's versions and switches to a new version once it is complete.

    A changed listener (new model, new key) is stored as a new version with its own
    outputs, queue and triggers. The old version keeps serving (and keeps being updated)
    until the new one has an output for every row; then the new one serves and the old
    storage is dropped.
    """

    def __init__(
        self,
        backend: DataBackend,
        serving: Listener,
        latest: Listener,
        *,
        batch_rows: int,
        retry: RetryPolicy,
        max_claim_rows: t.Optional[int] = None,
        on_commit: t.Callable[[Listener], OnCommit],
    ):
        self.backend = backend
        self.identifier = latest.identifier
        self.serving = serving
        self.latest = latest
        self._make = lambda listener: Drainer(
            backend, listener, batch_rows=batch_rows, max_claim_rows=max_claim_rows, retry=retry, on_commit=on_commit(listener)
        )
        self.drainers = {serving.version: self._make(serving)}
        if latest.version != serving.version:
            self.drainers[latest.version] = self._make(latest)

    @property
    def building(self) -> t.Optional[Listener]:
        """The version being built beside the serving one, if any."""
        return self.latest if self.latest.version != self.serving.version else None

    def serving_drainer(self) -> Drainer:
        return self.drainers[self.serving.version]

    def listens_to(self, table: str) -> bool:
        return any(d.listener.select == table for d in self.drainers.values())

    def drain_sources(self, table: str, sources: t.Sequence[t.Any]) -> None:
        """Compute ``sources`` of ``table`` in every live version (serving first)."""
        for drainer in list(self.drainers.values()):
            if drainer.listener.select == table:
                drainer.run(sources=sources)

    def drain(self, progress: t.Any = None) -> DrainStats:
        """Drain every live version, then switch to the built version if it is complete."""
        total = DrainStats()
        for drainer in list(self.drainers.values()):
            total.add(drainer.run(progress=progress))
        self.promote_if_complete()
        return total

    def pending(self) -> int:
        return sum(self.backend.queue_status(d.spec)["pending"] for d in self.drainers.values())

    def promote_if_complete(self) -> bool:
        """Serve the built version once its queue is empty; drop the old version's storage."""
        building = self.building
        if building is None:
            return False
        spec = ListenerSpec.of(building)
        status = self.backend.queue_status(spec)
        if status["pending"]:
            return False
        old = self.serving
        self.backend.set_state(serving_key(self.identifier), str(building.version))
        self.backend.drop_listener(ListenerSpec.of(old))
        self.drainers.pop(old.version, None)
        self.serving = building
        logger.info(
            "Listener %r: version %d is complete (%d outputs) and now serves; version %d removed",
            self.identifier, building.version, status["outputs"], old.version,
        )
        return True

    def status(self) -> dict[str, t.Any]:
        """Exact counts of the serving version, and of the version being built if any."""
        out: dict[str, t.Any] = dict(self.backend.queue_status(ListenerSpec.of(self.serving)))
        out["version"] = self.serving.version
        building = self.building
        if building is not None:
            out["building"] = {"version": building.version, **self.backend.queue_status(ListenerSpec.of(building))}
        return out
