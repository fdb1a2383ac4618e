"""Helpers of the reliability tests: worker processes and the exactly-once checks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import typing as t
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

TESTS_DIR = Path(__file__).resolve().parent.parent


def driver_url(uri: str) -> str:
    """The SQLAlchemy URL of ``uri`` with an installed driver named."""
    if uri.startswith("postgresql://"):
        return "postgresql+psycopg://" + uri[len("postgresql://") :]
    if uri.startswith("mysql://"):
        return "mysql+pymysql://" + uri[len("mysql://") :]
    return uri


POSTGRESQL_ADMIN = os.environ.get("PINNACLE_TEST_POSTGRESQL", "postgresql://postgres@127.0.0.1:5432/test")
MARIADB_ADMIN = os.environ.get("PINNACLE_TEST_MARIADB", "mysql://root@127.0.0.1:3306/test")
_reachable: dict[str, t.Optional[str]] = {}


def check_server(kind: str) -> None:
    """Skip when ``kind``'s server is unreachable; fail instead under ``CI=true`` (CI must not skip)."""
    if kind not in _reachable:
        admin = POSTGRESQL_ADMIN if kind == "postgresql" else MARIADB_ADMIN
        try:
            engine = sa.create_engine(driver_url(admin), connect_args={"connect_timeout": 3}, poolclass=sa.pool.NullPool)
            with engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
            engine.dispose()
            _reachable[kind] = None
        except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
            _reachable[kind] = f"{kind} server at {admin} is not reachable: {type(exc).__name__}: {exc}"
    reason = _reachable[kind]
    if reason is not None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason} (CI=true: server tests must run, not skip)", pytrace=False)
        pytest.skip(reason)


def server_params(*kinds: str) -> list:
    """``backend_kind`` parameters (for ``indirect=True``) restricted to ``kinds``, with their marks."""
    return [pytest.param(k, marks=getattr(pytest.mark, k), id=k) for k in kinds]


def child_env(**extra: t.Any) -> dict[str, str]:
    """The environment of a worker process: this one's, with ``tests/`` importable."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(TESTS_DIR), env.get("PYTHONPATH", "")) if p)
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TRANSFORMERS_OFFLINE", "1")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env.setdefault("OMP_NUM_THREADS", "1")
    for key, value in extra.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = str(value)
    return env


class Proc:
    """A child process whose stdout is read line by line and whose stderr goes to a file."""

    def __init__(self, argv: list[str], env: dict[str, str], log_dir: Path, name: str):
        self.name = name
        self.stderr_path = log_dir / f"{name}.stderr"
        self._stderr = open(self.stderr_path, "w")
        self.popen = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=self._stderr, text=True, env=env, cwd=str(TESTS_DIR.parent)
        )
        self.lines: list[str] = []

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def wait_line(self, expected: str = "ready", timeout: float = 120.0) -> None:
        """Block until the child prints ``expected`` (fails with its stderr if it dies first)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.popen.stdout.readline()
            if not line:
                self.popen.wait(timeout=10)
                raise AssertionError(f"{self.name} ended before {expected!r}:\n{self.stderr()}")
            self.lines.append(line.rstrip("\n"))
            if line.strip() == expected:
                return
        raise AssertionError(f"{self.name} did not print {expected!r} in {timeout} s")

    def kill9(self) -> bool:
        """SIGKILL; True when the process was still running."""
        alive = self.alive()
        if alive:
            os.kill(self.pid, signal.SIGKILL)
        self.popen.wait(timeout=30)
        self.close()
        return alive

    def finish(self, timeout: float = 300.0) -> dict:
        """Wait for a normal end; the JSON the child printed last."""
        try:
            out, _ = self.popen.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill9()
            raise AssertionError(f"{self.name} did not finish in {timeout} s:\n{self.stderr()}")
        self.lines.extend(out.splitlines())
        self.close()
        if self.popen.returncode != 0:
            raise AssertionError(f"{self.name} exited with {self.popen.returncode}:\n{self.stderr()}")
        for line in reversed(self.lines):
            if line.startswith("{"):
                try:
                    return json.loads(line)
                except ValueError:  # pretty-printed JSON: see stdout()
                    continue
        return {}

    def stdout(self) -> str:
        """Everything the child printed (after :meth:`finish`)."""
        return "\n".join(self.lines)

    def stderr(self) -> str:
        if not self._stderr.closed:
            self._stderr.flush()
        return self.stderr_path.read_text(errors="replace")[-6000:]

    def close(self) -> None:
        if not self._stderr.closed:
            self._stderr.close()
        if self.popen.stdout and not self.popen.stdout.closed and self.popen.poll() is not None:
            self.popen.stdout.close()


class Procs:
    """Starts worker processes for one test and kills (by pid) any still running at its end."""

    def __init__(self, log_dir: Path):
        self.log_dir = log_dir
        self.started: list[Proc] = []

    def worker(self, *args: str, env: t.Optional[dict] = None, name: t.Optional[str] = None) -> Proc:
        argv = [sys.executable, "-m", "reliability.worker", *args]
        proc = Proc(argv, env or child_env(), self.log_dir, name or f"{args[0]}-{len(self.started)}")
        self.started.append(proc)
        return proc

    def cli(self, *args: str, env: t.Optional[dict] = None, name: t.Optional[str] = None) -> Proc:
        argv = [sys.executable, "-c", "import sys; from pinnacle.cli import main; sys.exit(main())", *args]
        proc = Proc(argv, env or child_env(), self.log_dir, name or f"cli-{len(self.started)}")
        self.started.append(proc)
        return proc

    def cleanup(self) -> None:
        for proc in self.started:
            if proc.alive():
                proc.kill9()
            proc.close()


# -- checks ---------------------------------------------------------------------------------
def read_state(engine: sa.Engine, table: str = "docs", storage: str = "emb") -> dict:
    """Rows, outputs (raw bytes), queue sources and failed sources of a listener, read directly."""
    with engine.connect() as conn:
        rows = {r[0]: r[1] for r in conn.execute(sa.text(f"SELECT _id, text FROM {table}"))}
        outputs: dict = {}
        dupes = 0
        for source, data in conn.execute(sa.text(f"SELECT _source, _output FROM _outputs__{_q(storage)}")):
            if source in outputs:
                dupes += 1
            outputs[source] = bytes(data)
        queue = {r[0] for r in conn.execute(sa.text(f"SELECT _source FROM _queue__{_q(storage)}"))}
        failed = {r[0] for r in conn.execute(sa.text(f"SELECT _source FROM _failed__{_q(storage)}"))}
    return {"rows": rows, "outputs": outputs, "queue": queue, "failed": failed, "duplicates": dupes}


def _q(storage: str) -> str:
    assert storage.replace("_", "").replace("-", "").isalnum(), storage
    return storage


def open_work(state: dict, expected: t.Callable[[str], bytes]) -> dict:
    """What is not (yet) right: missing, stale and orphan outputs, and which of those are not queued.

    The crash-safety invariant is that everything not right is still queued.
    """
    rows, outputs, queue = state["rows"], state["outputs"], state["queue"]
    missing = {s for s in rows if s not in outputs}
    stale = {s for s in rows if s in outputs and outputs[s] != expected(rows[s])}
    orphans = {s for s in outputs if s not in rows}
    return {
        "missing": missing,
        "stale": stale,
        "orphans": orphans,
        "lost": (missing | stale | orphans) - queue - state["failed"],
    }


def hash_bytes(dim: int = 16) -> t.Callable[[str], bytes]:
    from reliability.flaky_models import hash_vector

    return lambda text: np.ascontiguousarray(hash_vector(text, dim), dtype="<f4").tobytes()


def assert_exactly_once(state: dict, expected: t.Callable[[str], bytes]) -> dict:
    """Every row has exactly one output equal to ``expected(text)``; nothing queued, failed or orphaned."""
    work = open_work(state, expected)
    counts = {
        "rows": len(state["rows"]),
        "outputs": len(state["outputs"]),
        "duplicates": state["duplicates"],
        "missing": len(work["missing"]),
        "stale": len(work["stale"]),
        "orphans": len(work["orphans"]),
        "lost": len(work["lost"]),
        "queued": len(state["queue"]),
        "failed": len(state["failed"]),
    }
    assert counts["duplicates"] == 0, counts
    assert not work["missing"], (counts, sorted(work["missing"])[:10])
    assert not work["stale"], (counts, sorted(work["stale"])[:10])
    assert not work["orphans"], (counts, sorted(work["orphans"])[:10])
    assert counts["outputs"] == counts["rows"], counts
    assert not state["queue"] and not state["failed"], counts
    return counts
