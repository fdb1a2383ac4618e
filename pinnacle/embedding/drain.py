"""One listener's drain: claim queued rows, predict, commit outputs in one transaction."""

from __future__ import annotations

import dataclasses as dc
import logging
import time
import typing as t

import numpy as np

from pinnacle.backends.base import DataBackend, Failure, ListenerSpec, WorkItem, WorkResult
from pinnacle.components.listener import Listener
from pinnacle.embedding.predict import PredictError, predict_isolating

logger = logging.getLogger(__name__)

__all__ = ["Drainer", "DrainStats", "RetryPolicy"]

OnCommit = t.Callable[[list[t.Any], list[np.ndarray], list[t.Any], float], None]


@dc.dataclass(frozen=True)
class RetryPolicy:
    """How often a failing row is retried, and how long to wait between tries.

    Args:
        max_attempts: Tries before a row is parked in the failed table.
        backoff_s: Wait before the second try; doubled for each further try.
    """

    max_attempts: int = 3
    backoff_s: float = 1.0

    def delay(self, attempts: int) -> float:
        return self.backoff_s * (2 ** max(0, attempts - 1))


@dc.dataclass
class DrainStats:
    """What one or more drain passes did."""

    rows: int = 0
    outputs: int = 0
    removed: int = 0
    retrying: int = 0
    failed: int = 0
    skipped: int = 0

    def add(self, other: "DrainStats") -> None:
        for f in dc.fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


class Drainer:
    """Computes the queued rows of one listener.

    Args:
        backend: Where the rows, queue and outputs live.
        listener: The listener (its model is loaded on first use).
        batch_rows: Rows claimed and predicted per pass (one transaction each).
        retry: The :class:`RetryPolicy` for rows whose prediction fails.
        on_commit: Called with ``(sources, vectors, removed, stamp)`` after each commit.
    """

    def __init__(
        self,
        backend: DataBackend,
        listener: Listener,
        *,
        batch_rows: int = 1024,
        retry: RetryPolicy = RetryPolicy(),
        on_commit: t.Optional[OnCommit] = None,
    ):
        self.backend = backend
        self.listener = listener
        self.spec = ListenerSpec.of(listener)
        self.batch_rows = batch_rows
        self.retry = retry
        self.on_commit = on_commit
        self._datatype = None

    @property
    def datatype(self):
        if self._datatype is None:
            self._datatype = self.listener.model.output_datatype()
        return self._datatype

    def run_once(self, sources: t.Optional[t.Sequence[t.Any]] = None, limit: t.Optional[int] = None) -> DrainStats:
        """One pass over at most ``limit`` (default ``batch_rows``) queued rows."""
        with self.backend.claim_work(self.spec, limit or self.batch_rows, sources) as claim:
            items = claim.items
            if not items:
                return DrainStats()
            result, vectors = self._compute(items)
            committed, stamp = claim.commit(result)
        stats = DrainStats(
            rows=len(items),
            outputs=sum(1 for s, _ in result.outputs if s in committed),
            removed=sum(1 for s in result.gone if s in committed),
            retrying=sum(1 for s, *_ in result.retry if s in committed),
            failed=sum(1 for s, _ in result.failed if s in committed),
            skipped=len(items) - len(committed),
        )
        # Indexes read flattened and text outputs from the table; vectors go to them directly.
        if self.on_commit is not None and committed and not (self.spec.flatten or self.spec.text):
            done = [(s, v) for (s, _), v in zip(result.outputs, vectors) if s in committed]
            self.on_commit([s for s, _ in done], [v for _, v in done], [s for s in result.gone if s in committed], stamp)
        return stats

    def run(self, sources: t.Optional[t.Sequence[t.Any]] = None, progress: t.Optional[t.Any] = None) -> DrainStats:
        """Drain until nothing due is left (only ``sources`` if given)."""
        total = DrainStats()
        if sources is not None:
            sources = list(dict.fromkeys(sources))
            for start in range(0, len(sources), self.batch_rows):
                part = sources[start : start + self.batch_rows]
                stats = self.run_once(part, limit=len(part))
                total.add(stats)
                if progress is not None:
                    progress.update(stats.rows)
            return total
        while True:
            stats = self.run_once()
            total.add(stats)
            if progress is not None:
                progress.update(stats.rows)
            if stats.rows == 0 or stats.skipped == stats.rows:  # empty, or all taken by other workers
                return total

    # -- computing ----------------------------------------------------------------------
    def _compute(self, items: list[WorkItem]) -> tuple[WorkResult, list[np.ndarray]]:
        listener, model = self.listener, self.listener.model
        result = WorkResult()
        todo: list[tuple[WorkItem, t.Any]] = []
        for item in items:
            if item.row is None:
                result.gone.append(item.source)
                continue
            try:
                x = listener.model_input(item.row)
            except KeyError as exc:
                self._park(result, item, "MissingColumn", f"key column {exc} is missing")
                continue
            reason = model.validate_input(x)
            if reason is not None:
                self._park(result, item, "InvalidInput", reason)
                continue
            todo.append((item, x))
        outputs = predict_isolating(model, [x for _, x in todo]) if todo else []
        vectors: list[np.ndarray] = []
        now = time.time()
        datatype = self.datatype if todo else None
        flatten = self.spec.flatten
        for (item, _), out in zip(todo, outputs):
            if isinstance(out, PredictError):
                self._fail(result, item, out.error_type, str(out), now)
                continue
            try:
                data = _encode_items(datatype, out) if flatten else datatype.encode(out)
            except (ValueError, TypeError) as exc:
                self._park(result, item, "InvalidOutput", f"model output cannot be stored: {exc}")
                continue
            result.outputs.append((item.source, data))
            vectors.append(None if flatten or self.spec.text else np.asarray(out))
        return result, vectors

    def _message(self, item: WorkItem, cause: str) -> str:
        return f"Listener {self.listener.identifier!r}, row {item.source!r} of {self.spec.table!r}: {cause}"

    def _park(self, result: WorkResult, item: WorkItem, error_type: str, cause: str) -> None:
        """Input that no retry can fix goes straight to the failed table."""
        message = self._message(item, cause)
        logger.info(message)
        result.failed.append((item.source, Failure(error_type, message, item.attempts + 1)))

    def _fail(self, result: WorkResult, item: WorkItem, error_type: str, cause: str, now: float) -> None:
        attempts = item.attempts + 1
        message = self._message(item, f"{error_type}: {cause}")
        if attempts >= self.retry.max_attempts:
            logger.warning("%s (giving up after %d attempts)", message, attempts)
            result.failed.append((item.source, Failure(error_type, message, attempts)))
        else:
            logger.info("%s (attempt %d, retrying)", message, attempts)
            result.retry.append((item.source, attempts, now + self.retry.delay(attempts)))


def _encode_items(datatype: t.Any, out: t.Any) -> list[t.Any]:
    """The stored form of each item of a flattened model's output (a list or tuple)."""
    if not isinstance(out, (list, tuple)):
        raise TypeError(f"flatten=True: the model must return a list per input, got {type(out).__name__}")
    return [datatype.encode(x) for x in out]
