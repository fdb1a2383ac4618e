"""One listener's drain: claim queued rows, predict, commit outputs in one transaction."""

from __future__ import annotations

import dataclasses as dc
import logging
import threading
import time
import typing as t

import numpy as np

from pinnacle.backends.base import Claim, DataBackend, Failure, ListenerSpec, WorkItem, WorkResult
from pinnacle.components.listener import Listener
from pinnacle.embedding.encode import encode_batch
from pinnacle.embedding.later import call_later
from pinnacle.embedding.pipeline import run_pipelined
from pinnacle.embedding.predict import PredictError, predict_isolating

logger = logging.getLogger(__name__)

__all__ = ["Drainer", "DrainStats", "RetryPolicy", "ClaimSize", "DEFAULT_BATCH_ROWS", "MAX_CLAIM_ROWS"]

#: Rows per claim unless told otherwise.
DEFAULT_BATCH_ROWS = 1024
#: The most rows a pipelined drain claims at once with a fast model, unless told a batch size.
#: Measured with a model that costs nothing (benchmarks/framework_ceiling.py, 50,000 rows):
#: PostgreSQL 18,000 rows/s at 1,024 rows a claim, 21,700 at 4,096, 23,000 at 8,192 and
#: 18,400 at 16,384; SQLite the same from 1,024 to 4,096.
MAX_CLAIM_ROWS = 8192
#: Seconds the model has had a batch before the batch counts as in flight (``status()``).
IN_FLIGHT_AFTER_S = 0.1

#: ``(sources, vectors, removed, stamp, version)``: ``version`` is the claim's ``(old, new)`` outputs version, or ``None``.
OnCommit = t.Callable[[list[t.Any], list[np.ndarray], list[t.Any], float, t.Optional[tuple]], None]


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


class ClaimSize:
    """Rows per claim of a pipelined drain, chosen by measurement: at least ``rows``, at most
    ``max_rows``, as many as the model computes in about ``target_s``.

    A slow model (a CPU encoder) keeps ``rows``; a fast one (a GPU, a cheap model) gets
    larger claims, so each transaction's fixed cost (statements, round trips, commit) is
    shared by more rows. The model's own batch size (``predict_batches``) is not changed.

    Example:
        >>> size = ClaimSize(1024, max_rows=8192, target_s=0.25)
        >>> size.observe(1024, 2.0).rows        # 2 ms a row: the model is the cost
        1024
        >>> size.observe(1024, 0.001).rows      # 1 us a row: claim the most
        8192
    """

    def __init__(self, rows: int, *, max_rows: int, target_s: float = 0.25):
        self.min_rows = self.rows = rows
        self.max_rows = max(rows, max_rows)
        self.target_s = target_s

    def observe(self, rows: int, seconds: float) -> "ClaimSize":
        """Size the next claims after the model took ``seconds`` for ``rows``."""
        if rows > 0:
            fits = self.max_rows if seconds <= 0 else int(self.target_s * rows / seconds)
            self.rows = min(self.max_rows, max(self.min_rows, fits))
        return self


class Drainer:
    """Computes the queued rows of one listener.

    Args:
        backend: Where the rows, queue and outputs live.
        listener: The listener (its model is loaded on first use).
        batch_rows: Rows claimed and predicted per pass (one transaction each).
        max_claim_rows: The most rows a pipelined drain claims at once when the model is fast
            (:class:`ClaimSize`); default ``batch_rows`` (claims of exactly that size).
        retry: The :class:`RetryPolicy` for rows whose prediction fails.
        on_commit: Called with ``(sources, vectors, removed, stamp, version)`` after each commit.
    """

    def __init__(
        self,
        backend: DataBackend,
        listener: Listener,
        *,
        batch_rows: int = DEFAULT_BATCH_ROWS,
        max_claim_rows: t.Optional[int] = None,
        retry: RetryPolicy = RetryPolicy(),
        on_commit: t.Optional[OnCommit] = None,
    ):
        self.backend = backend
        self.listener = listener
        self.spec = ListenerSpec.of(listener)
        self.batch_rows = batch_rows
        self.max_claim_rows = max_claim_rows or batch_rows
        self.retry = retry
        self.on_commit = on_commit
        self._datatype = None
        self._model_lock = threading.Lock()

    @property
    def datatype(self):
        if self._datatype is None:
            self._datatype = self.listener.model.output_datatype()
        return self._datatype

    def run_once(self, sources: t.Optional[t.Sequence[t.Any]] = None, limit: t.Optional[int] = None) -> DrainStats:
        """One pass over at most ``limit`` (default ``batch_rows``) queued rows."""
        with self.backend.claim_work(self.spec, limit or self.batch_rows, sources) as claim:
            if not claim.items:
                return DrainStats()
            return self._commit(claim, self.compute(claim))

    def run(self, sources: t.Optional[t.Sequence[t.Any]] = None, progress: t.Optional[t.Any] = None) -> DrainStats:
        """Drain until nothing due is left (only ``sources`` if given).

        Where the backend's claims may be open together (``concurrent_claims``), a drain of
        more than one batch is pipelined (:mod:`~pinnacle.embedding.pipeline`): the next
        batch is claimed and the previous one commits while the model computes.
        """
        total = DrainStats()
        pipelined = bool(getattr(self.backend, "concurrent_claims", False))
        if sources is not None:
            sources = list(dict.fromkeys(sources))
            parts = [sources[start : start + self.batch_rows] for start in range(0, len(sources), self.batch_rows)]
            if pipelined and len(parts) > 1:
                self._pipeline(self._claims_of(parts), total, progress, stop_when_taken=False)
                return total
            for part in parts:
                total.add(self._tick(self.run_once(part, limit=len(part)), progress))
            return total
        while True:
            claim = self.backend.claim_work(self.spec, self.batch_rows)
            if not claim.items:
                claim.release()
                return total
            if pipelined and sum(len(item.queue_ids) for item in claim.items) >= self.batch_rows:
                # A full batch: more are queued. Claim ahead of the model, commit behind it,
                # in claims as large as the model's pace makes worth it.
                size = ClaimSize(self.batch_rows, max_rows=self.max_claim_rows)
                self._pipeline(lambda: self.backend.claim_work(self.spec, size.rows), total, progress, first=claim, size=size)
                return total
            with claim:
                stats = self._tick(self._commit(claim, self.compute(claim)), progress)
            total.add(stats)
            if stats.skipped == stats.rows:  # all taken by other workers
                return total

    def compute(self, claim: Claim) -> tuple[WorkResult, list[np.ndarray]]:
        """The result of a claim's rows (one batch through the model at a time, whatever the thread).

        A claim that can record its rows as being computed (``mark_in_flight``, SQL: for
        ``status()``'s ``in_flight``) does so once the model has had them for
        :data:`IN_FLIGHT_AFTER_S`, from pinnacle's timer thread (``later.py``). A batch done sooner is never recorded:
        no one could have seen it, and the record is a transaction of its own (on SQLite it
        waited for the write lock of the previous batch's commit: a third of a fast drain).
        """
        with self._model_lock:
            mark = getattr(claim, "mark_in_flight", None)
            timer = None if mark is None else call_later(IN_FLIGHT_AFTER_S, _mark_quietly, mark, self.listener.identifier)
            try:
                return self._compute(claim.items)
            finally:
                if timer is not None:
                    timer.cancel()

    # -- committing ---------------------------------------------------------------------
    def _commit(self, claim: Claim, computed: tuple[WorkResult, list[np.ndarray]]) -> DrainStats:
        result, vectors = computed
        committed, stamp = claim.commit(result)
        items = claim.items
        if len(committed) == len(items):  # the usual case: every claimed row was still ours
            stats = DrainStats(
                rows=len(items), outputs=len(result.outputs), removed=len(result.gone),
                retrying=len(result.retry), failed=len(result.failed),
            )
        else:
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
            if len(committed) == len(items):
                done, gone = [s for s, _ in result.outputs], list(result.gone)
                vecs = vectors
            else:
                pairs = [(s, v) for (s, _), v in zip(result.outputs, vectors) if s in committed]
                done, vecs = [s for s, _ in pairs], [v for _, v in pairs]
                gone = [s for s in result.gone if s in committed]
            self.on_commit(done, vecs, gone, stamp, getattr(claim, "outputs_version", None))
        return stats

    def _tick(self, stats: DrainStats, progress: t.Optional[t.Any]) -> DrainStats:
        if progress is not None:
            progress.update(stats.rows)
        return stats

    def _claims_of(self, parts: list[list[t.Any]]) -> t.Callable[[], t.Optional[Claim]]:
        """Claims of ``parts`` in turn (parts with nothing queued are passed over)."""
        remaining = iter(parts)

        def next_claim() -> t.Optional[Claim]:
            for part in remaining:
                claim = self.backend.claim_work(self.spec, len(part), part)
                if claim.items:
                    return claim
                claim.release()
            return None

        return next_claim

    def _pipeline(
        self, next_claim, total: DrainStats, progress, *, first: t.Optional[Claim] = None,
        stop_when_taken: bool = True, size: t.Optional[ClaimSize] = None,
    ) -> None:
        def commit(claim: Claim, computed) -> bool:
            stats = self._tick(self._commit(claim, computed), progress)
            total.add(stats)
            return not (stop_when_taken and stats.skipped == stats.rows)  # all taken by other workers: stop

        def compute(claim: Claim):
            start = time.perf_counter()
            computed = self.compute(claim)
            if size is not None:
                size.observe(len(claim.items), time.perf_counter() - start)
            return computed

        run_pipelined(next_claim, compute, commit, first=first)

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
        if not todo:
            return result, vectors
        datatype = self.datatype
        flatten, keep = self.spec.flatten, not (self.spec.flatten or self.spec.text)
        good = [out for out in outputs if not isinstance(out, PredictError)]
        stored = iter(_encode_all_items(datatype, good) if flatten else encode_batch(datatype, good))
        for (item, _), out in zip(todo, outputs):
            if isinstance(out, PredictError):
                self._fail(result, item, out.error_type, str(out), now)
                continue
            data = next(stored)
            if isinstance(data, Exception):
                self._park(result, item, "InvalidOutput", f"model output cannot be stored: {data}")
                continue
            result.outputs.append((item.source, data))
            vectors.append(np.asarray(out) if keep else None)
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


def _mark_quietly(mark: t.Callable[[], None], listener: str) -> None:
    """``mark()`` in a timer thread: a failure to record the batch costs only the count."""
    try:
        mark()
    except Exception as exc:  # noqa: BLE001 - status() counts the batch later, or never
        logger.warning("Listener %r: could not record a batch as in flight: %s", listener, exc)


def _encode_items(datatype: t.Any, out: t.Any) -> list[t.Any]:
    """The stored form of each item of a flattened model's output (a list or tuple)."""
    if not isinstance(out, (list, tuple)):
        raise TypeError(f"flatten=True: the model must return a list per input, got {type(out).__name__}")
    return [datatype.encode(x) for x in out]


def _encode_all_items(datatype: t.Any, outputs: list[t.Any]) -> list[t.Any]:
    """:func:`_encode_items` of each output, or the error it raised."""
    encoded: list[t.Any] = []
    for out in outputs:
        try:
            encoded.append(_encode_items(datatype, out))
        except (ValueError, TypeError) as exc:
            encoded.append(exc)
    return encoded
