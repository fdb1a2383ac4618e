"""A drain as a pipeline: batch k+1 is claimed and batch k-1 commits while the model computes batch k.

Three stages, each in a thread of its own: a claimer takes the next batch from the queue,
the calling thread runs the model (so the model runs where the caller does, and Ctrl-C
stops it), and a writer commits the computed batches in the order they were claimed. The
queues between them hold one batch each, so at most four batches are claimed at once.

Each batch still commits alone: its claim, its outputs and the removal of its queue entries
are one transaction, as in a sequential drain. When a stage fails, every batch not yet
committed is released (its rows stay queued) and the error is raised in the calling thread.

Example:
    >>> from pinnacle.backends.base import Claim
    >>> class Batch(Claim):
    ...     def __init__(self, k): self.items, self.k = [k], k
    ...     def commit(self, result): return {self.k}, 0.0
    ...     def release(self): pass
    >>> batches = iter([Batch(1), Batch(2), Batch(3)])
    >>> done = []
    >>> run_pipelined(lambda: next(batches, None), lambda b: b.k * 10, lambda b, v: done.append(v) or True)
    >>> done
    [10, 20, 30]
"""

from __future__ import annotations

import queue
import threading
import typing as t

from pinnacle.backends.base import Claim

__all__ = ["run_pipelined"]

T = t.TypeVar("T")
_END = object()
_POLL_S = 0.05


def run_pipelined(
    next_claim: t.Callable[[], t.Optional[Claim]],
    compute: t.Callable[[Claim], T],
    commit: t.Callable[[Claim, T], bool],
    *,
    first: t.Optional[Claim] = None,
) -> None:
    """Claim with ``next_claim`` (a thread of its own; ``None`` or a claim with no items ends
    the drain), ``compute`` each claim in this thread, ``commit`` them in order in a writer
    thread (it returns ``False`` to stop claiming more). ``first``: a batch claimed already."""
    claimed: queue.Queue = queue.Queue(maxsize=1)
    computed: queue.Queue = queue.Queue(maxsize=1)
    stop, failed = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def fail(exc: BaseException) -> None:
        errors.append(exc)
        failed.set()
        stop.set()

    def claimer() -> None:
        try:
            while not stop.is_set():
                claim = next_claim()
                if claim is None:
                    return
                if not claim.items or not _put(claimed, claim, stop):
                    claim.release()
                    return
        except BaseException as exc:  # noqa: BLE001 - raised in the calling thread
            fail(exc)
        finally:
            claimed.put(_END)  # the calling thread takes everything until _END

    def writer() -> None:
        while True:
            got = computed.get()
            if got is _END:
                return
            claim, value = got
            try:
                if failed.is_set():
                    claim.release()
                    continue
                with claim:  # released unless committed
                    if not commit(claim, value):
                        stop.set()
            except BaseException as exc:  # noqa: BLE001 - raised in the calling thread
                fail(exc)

    if first is not None:
        claimed.put(first)
    threads = [threading.Thread(target=f, name=f"pinnacle-drain-{f.__name__}", daemon=True) for f in (claimer, writer)]
    for thread in threads:
        thread.start()
    try:
        while True:
            claim = claimed.get()
            if claim is _END:
                break
            if failed.is_set():
                claim.release()
                continue
            try:
                value = compute(claim)
            except BaseException:
                claim.release()
                raise
            computed.put((claim, value))
    except BaseException as exc:
        fail(exc)
    finally:
        stop.set()  # claim no more (after a normal end the claimer is done already)
        computed.put(_END)  # the writer commits what it was given, then ends
        claimer_thread, writer_thread = threads
        while claimer_thread.is_alive() or not claimed.empty():  # batches claimed but never computed
            try:
                claim = claimed.get(timeout=_POLL_S)
            except queue.Empty:
                continue
            if claim is not _END:
                claim.release()
        claimer_thread.join()
        writer_thread.join()
    if errors:
        raise errors[0]


def _put(q: queue.Queue, item: t.Any, stop: threading.Event) -> bool:
    """Put ``item`` unless ``stop`` is set first."""
    while not stop.is_set():
        try:
            q.put(item, timeout=_POLL_S)
            return True
        except queue.Full:
            continue
    return False
