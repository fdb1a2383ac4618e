"""The driver of a Ray bulk job: stream queued ids in chunks to a pool of actors.

The driver holds only the ids of the chunks in flight (``num_actors * max_in_flight``
chunks) and one page of the queue: memory stays flat in the number of rows. Workers
commit themselves and return counts; the queue is the source of truth, so a job that is
interrupted leaves exactly the remaining rows queued and the next job computes only those.

Each actor runs up to :data:`PIPELINE` of its queued chunks at once (a threaded actor):
the model computes one chunk while the previous one commits and the next one is claimed;
the model itself runs one chunk at a time.

Faults: actors run with ``max_restarts``/``max_task_retries``, so Ray restarts a killed
actor and re-runs its chunks; a chunk whose actor is gone for good goes to another actor.
A chunk run twice commits once (the claim/commit path skips rows already committed).
"""

from __future__ import annotations

import collections
import logging
import time
import typing as t

from pinnacle.embedding.drain import DrainStats
from pinnacle.embedding.jobs import Job, latest_job, save_job
from pinnacle.errors import BackendError
from pinnacle.plugins.ray.cluster import RayCluster, worker_env
from pinnacle.plugins.ray.options import JobOptions, resolve_options
from pinnacle.plugins.ray.worker import ChunkWorker
from pinnacle.progress import progress_bar

logger = logging.getLogger(__name__)

__all__ = ["run_job"]

#: Seconds between writes of a running job's record.
RECORD_EVERY_S = 1.0
#: Chunks one actor works on at once, so that it computes one while the previous commits.
PIPELINE = 2
NAMESPACE = "pinnacle"


def run_job(
    db: t.Any, runtime: t.Any, cluster: RayCluster, overrides: t.Mapping[str, t.Any],
    show_progress_bar: t.Optional[bool] = None,
) -> DrainStats:
    """Compute every pending row of each live version of ``runtime``'s listener on Ray."""
    backend = db.backend
    drainers = list(runtime.drainers.values())
    options = {
        d.listener.version: resolve_options(
            d.listener.model.compute_kwargs, overrides, owner=f"Listener {runtime.identifier!r} v{d.listener.version}"
        )
        for d in drainers
    }
    uri = backend.worker_uri()  # fails early for an in-memory database
    pending = {d.listener.version: backend.queue_status(d.spec)["pending"] for d in drainers}
    previous = latest_job(backend, runtime.identifier)
    job = Job.new(runtime.identifier, compute=f"ray:{cluster.describe()}", versions=list(pending), rows_total=sum(pending.values()))
    if previous is not None and previous.state != "done":
        job.resumed_from = previous.id
    save_job(backend, job, latest=True)
    logger.info("Job %s: %d row(s) of %r to compute on Ray", job.id, job.rows_total, runtime.identifier)
    total = DrainStats()
    try:
        with progress_bar(total=job.rows_total, desc=f"{runtime.identifier} (ray)", unit="row", show=show_progress_bar) as bar:
            for drainer in drainers:
                version = drainer.listener.version
                if pending[version]:
                    run = _VersionRun(cluster.connect(), db, drainer, job, options[version], uri, bar)
                    total.add(run.run())
        runtime.promote_if_complete()
        job.state = "done"
    except BaseException as exc:
        job.state = "failed"
        job.error = "interrupted" if isinstance(exc, KeyboardInterrupt) else f"{type(exc).__name__}: {exc}"[:2000]
        raise
    finally:
        job.finished_at = time.time()
        save_job(backend, job)
        logger.info(
            "Job %s %s: %d row(s) done, %d failed, %d chunk(s) on %d node(s)",
            job.id, job.state, job.rows_done, job.rows_failed, job.chunks, len(job.nodes),
        )
    return total


class _VersionRun:
    """The pool and the in-flight loop for one listener version."""

    def __init__(self, ray: t.Any, db: t.Any, drainer: t.Any, job: Job, options: JobOptions, uri: str, bar: t.Any):
        self.ray = ray
        self.backend = db.backend
        self.spec = drainer.spec
        self.version = drainer.listener.version
        self.job = job
        self.options = options
        self.bar = bar
        self.stats = DrainStats()
        self._recorded = 0.0
        self._args = (uri, self.spec.identifier, self.version, db.batch_rows, db.retry_policy.max_attempts, db.retry_policy.backoff_s)

    def run(self) -> DrainStats:
        rows = self.backend.queue_status(self.spec)["pending"]
        count = self.options.num_actors or self._fill_cluster()
        count = max(1, min(count, -(-rows // self.options.chunk_rows)))
        actors = self._start(count)
        try:
            self._loop(actors)
        finally:
            for actor in actors:
                try:
                    self.ray.kill(actor, no_restart=True)
                except Exception:  # noqa: BLE001 - already gone
                    pass
        return self.stats

    # -- the pool -------------------------------------------------------------------------
    def _fill_cluster(self) -> int:
        """Actors that fit in the cluster's total resources (at least one)."""
        total = self.ray.cluster_resources()
        actor = self.options.actor
        fits = []
        for name, amount in (("CPU", actor.get("num_cpus", 1)), ("GPU", actor.get("num_gpus", 0)), *(actor.get("resources") or {}).items()):
            if amount:
                fits.append(int(total.get(name, 0) // amount))
        return max(1, min(fits)) if fits else 1

    def _start(self, count: int) -> list[t.Any]:
        remote = self.ray.remote(ChunkWorker)
        actor_options = dict(self.options.actor)
        runtime_env = worker_env(actor_options.pop("runtime_env", None))
        if runtime_env:
            actor_options["runtime_env"] = runtime_env
        # An actor works on up to PIPELINE of its queued chunks at once: one in the model (its
        # model lock), the others claiming or committing meanwhile.
        concurrency = max(1, min(PIPELINE, self.options.max_in_flight))
        actors = [
            remote.options(
                name=f"pinnacle-{self.job.id}-v{self.version}-{i}", namespace=NAMESPACE, max_concurrency=concurrency, **actor_options
            ).remote(*self._args)
            for i in range(count)
        ]
        self.job.state = "running"
        self.job.started_at = self.job.started_at or time.time()
        self.job.workers = count
        save_job(self.backend, self.job)
        logger.info("Job %s: %d Ray actor(s) with %s", self.job.id, count, {k: v for k, v in actor_options.items() if k != "runtime_env"})
        return actors

    def _chunks(self) -> t.Iterator[list[t.Any]]:
        """The due sources of the queue, one page (``chunk_rows`` entries) at a time."""
        after = None
        while True:
            page = self.backend.pending_sources(self.spec, after=after, limit=self.options.chunk_rows)
            if not page:
                return
            after = page[-1][0]
            yield list(dict.fromkeys(source for _, source in page))

    def _loop(self, actors: list[t.Any]) -> None:
        ray = self.ray
        chunks = self._chunks()
        again: collections.deque[list[t.Any]] = collections.deque()  # chunks whose actor is gone
        load = {i: 0 for i in range(len(actors))}
        dead: set[int] = set()
        in_flight: dict[t.Any, tuple[int, list[t.Any]]] = {}
        exhausted = False
        while True:
            for i in sorted((i for i in load if i not in dead), key=load.__getitem__):
                while load[i] < self.options.max_in_flight:
                    chunk = again.popleft() if again else None if exhausted else next(chunks, None)
                    if chunk is None:
                        exhausted = True
                        break
                    in_flight[actors[i].run.remote(chunk)] = (i, chunk)
                    load[i] += 1
            if not in_flight:
                break
            ready, _ = ray.wait(list(in_flight), num_returns=1)
            i, chunk = in_flight.pop(ready[0])
            load[i] -= 1
            try:
                result = ray.get(ready[0])
            except ray.exceptions.ActorUnavailableError:
                again.append(chunk)  # the actor is restarting: run the chunk again
                continue
            except ray.exceptions.RayActorError as exc:
                dead.add(i)
                again.append(chunk)
                logger.warning("Job %s: Ray actor %d is gone (%s); its chunks go to the others", self.job.id, i, _short(exc))
                if len(dead) == len(actors):
                    raise BackendError(f"Job {self.job.id}: every Ray worker died; last error: {_short(exc, 1500)}", exc) from exc
                continue
            except ray.exceptions.RayTaskError as exc:
                raise BackendError(
                    f"Job {self.job.id}: a worker failed on a chunk of {len(chunk)} row(s): {_short(exc, 1500)}. "
                    "The rows stay queued; fix the cause and run the backfill again.",
                    exc,
                ) from exc
            self._record(result)

    def _record(self, result: dict[str, t.Any]) -> None:
        stats = DrainStats(**{k: result[k] for k in ("rows", "outputs", "removed", "retrying", "failed", "skipped")})
        self.stats.add(stats)
        job = self.job
        done = stats.rows - stats.skipped
        job.rows_done += done
        job.rows_failed += stats.failed
        job.outputs += stats.outputs
        job.chunks += 1
        job.worker_cpu_s += float(result.get("cpu_s", 0.0))
        job.nodes[result["node"]] = job.nodes.get(result["node"], 0) + 1
        if job.rows_done > job.rows_total:  # rows written while the job ran
            job.rows_total = job.rows_done
            if getattr(self.bar, "total", None) is not None:
                self.bar.total = job.rows_total
        self.bar.update(done)
        now = time.monotonic()
        if now - self._recorded >= RECORD_EVERY_S:
            self._recorded = now
            save_job(self.backend, job)


def _short(exc: BaseException, width: int = 300) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= width else text[: width - 1] + "…"
