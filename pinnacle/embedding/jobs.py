"""Bulk jobs' status, kept in the metadata store so any process can show it.

A job record is a JSON value in the backend's state store under ``Job/<id>``; the key
``Listener/<identifier>/job`` names the latest job of a listener. The queue is the
source of truth for what is left: a record only reports.

Example:
    >>> job = Job.new("docs-emb", compute="ray", versions=[0], rows_total=10)
    >>> job.state, job.progress
    ('queued', 0.0)
"""

from __future__ import annotations

import dataclasses as dc
import json
import os
import socket
import time
import typing as t
import uuid as _uuid

__all__ = ["Job", "JOB_STATES", "save_job", "load_job", "latest_job", "job_key", "latest_job_key"]

JOB_STATES = ("queued", "running", "done", "failed")


def job_key(job_id: str) -> str:
    """State key of one job's record."""
    return f"Job/{job_id}"


def latest_job_key(listener: str) -> str:
    """State key naming the latest job of ``listener``."""
    return f"Listener/{listener}/job"


@dc.dataclass
class Job:
    """One bulk job over a listener's pending rows.

    ``rows_done`` counts rows computed (stored, removed, parked or set to retry);
    ``rows_failed`` those parked in the failed table; ``nodes`` the chunks per node;
    ``worker_cpu_s`` the CPU seconds the workers spent on chunks.
    """

    id: str
    listener: str
    compute: str
    versions: list[int]
    state: str = "queued"
    rows_total: int = 0
    rows_done: int = 0
    rows_failed: int = 0
    outputs: int = 0
    chunks: int = 0
    workers: int = 0
    nodes: dict[str, int] = dc.field(default_factory=dict)
    worker_cpu_s: float = 0.0
    created_at: float = 0.0
    started_at: t.Optional[float] = None
    finished_at: t.Optional[float] = None
    updated_at: float = 0.0
    error: t.Optional[str] = None
    host: str = ""
    pid: int = 0
    resumed_from: t.Optional[str] = None

    @classmethod
    def new(cls, listener: str, *, compute: str, versions: t.Sequence[int], rows_total: int = 0) -> "Job":
        now = time.time()
        return cls(
            id=_uuid.uuid4().hex[:12], listener=listener, compute=compute, versions=list(versions),
            rows_total=rows_total, created_at=now, updated_at=now, host=socket.gethostname(), pid=os.getpid(),
        )

    @property
    def progress(self) -> float:
        """Fraction of ``rows_total`` done (1.0 when there was nothing to do)."""
        if self.state == "done" and not self.rows_total:
            return 1.0
        return min(1.0, self.rows_done / self.rows_total) if self.rows_total else 0.0

    @property
    def active(self) -> bool:
        return self.state in ("queued", "running")

    def to_json(self) -> str:
        return json.dumps(dc.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "Job":
        data = json.loads(text)
        names = {f.name for f in dc.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def driver_is_gone(self) -> bool:
        """The job claims to run but its driver process (on this host) has exited."""
        if not self.active or self.host != socket.gethostname() or not self.pid:
            return False
        if self.pid == os.getpid():
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return _is_zombie(self.pid)


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


class _StateStore(t.Protocol):
    def get_state(self, key: str) -> t.Optional[str]: ...
    def set_state(self, key: str, value: t.Optional[str]) -> None: ...


def save_job(backend: _StateStore, job: Job, *, latest: bool = False) -> None:
    """Write ``job``'s record (and, with ``latest``, make it its listener's latest job)."""
    job.updated_at = time.time()
    backend.set_state(job_key(job.id), job.to_json())
    if latest:
        backend.set_state(latest_job_key(job.listener), job.id)


def load_job(backend: _StateStore, job_id: str) -> t.Optional[Job]:
    value = backend.get_state(job_key(job_id))
    return None if value is None else Job.from_json(value)


def latest_job(backend: _StateStore, listener: str) -> t.Optional[Job]:
    """The latest job of ``listener``; a job whose driver exited is reported (and stored) as failed."""
    job_id = backend.get_state(latest_job_key(listener))
    job = None if job_id is None else load_job(backend, job_id)
    if job is not None and job.driver_is_gone():
        job.state = "failed"
        job.error = f"interrupted: driver process {job.pid} on {job.host} exited; run the backfill again to resume"
        job.finished_at = job.finished_at or job.updated_at
        save_job(backend, job)
    return job
