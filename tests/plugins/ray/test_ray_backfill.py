"""Ray bulk jobs on a local cluster: exact counts, a killed actor, an interrupted driver,
two nodes, and the job's status in the metadata store."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

import pinnacle
from pinnacle.embedding.jobs import latest_job

from ray_helpers import HERE, require_ray, worker_env, worker_pythonpath
from ray_models import SlowLetters

pytestmark = pytest.mark.timeout(300)

TOPICS = ["a cat sleeps on the sofa", "the train leaves at dawn", "bread needs flour and time", "servers crash at night"]


def _rows(n: int) -> list[dict]:
    return [{"_id": f"r{i:04d}", "text": f"{TOPICS[i % 4]}, note {i}"} for i in range(n)]


def _wait_for(predicate, timeout: float, what: str, every: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


# -- exact counts, real model from the artifact store -------------------------------------
@pytest.mark.parametrize(
    "backend_kind",
    [pytest.param("sqlite", marks=pytest.mark.sqlite), pytest.param("postgresql", marks=pytest.mark.postgresql)],
    indirect=True,
)
def test_backfill_exact_counts(ray_session, connect, model_path, st_native, tmp_path):
    from pinnacle.ext.sentence_transformers import SentenceTransformer

    n, chunk = 160, 40
    folder = tmp_path / "my-model"
    shutil.copytree(model_path, folder)
    db = connect(compute="ray")
    db["docs"].insert(_rows(n))
    model = SentenceTransformer(identifier="minilm", model=str(folder))
    db.apply(pinnacle.Listener("docs-emb", model=model, key="text", select="docs"), wait=False)
    shutil.rmtree(folder)  # the workers load the model from the artifact store, not the user's files

    stats = db.backfill("docs-emb", num_actors=2, chunk_rows=chunk, show_progress_bar=False)

    assert (stats.rows, stats.outputs, stats.failed, stats.skipped) == (n, n, 0, 0)
    status = db.status()["docs-emb"]
    assert (status["outputs"], status["pending"], status["failed"]) == (n, 0, 0)
    outputs = db.outputs("docs-emb")
    assert sorted(outputs) == [f"r{i:04d}" for i in range(n)]
    for i in (0, n - 1):
        expected = st_native.encode(f"{TOPICS[i % 4]}, note {i}")
        np.testing.assert_allclose(outputs[f"r{i:04d}"], expected, atol=1e-4)
    job = db.jobs()["docs-emb"]
    assert job["state"] == "done" and job["error"] is None
    assert (job["rows_total"], job["rows_done"], job["rows_failed"], job["outputs"]) == (n, n, 0, n)
    assert job["chunks"] == math.ceil(n / chunk) and job["workers"] == 2
    assert job["created_at"] <= job["started_at"] <= job["finished_at"]
    assert job["compute"].startswith("ray")
    # Nothing left: a second job finds no work and starts no actors.
    again = db.backfill("docs-emb", show_progress_bar=False)
    assert again.rows == 0 and db.jobs()["docs-emb"]["state"] == "done"


# -- a killed actor ---------------------------------------------------------------------------
def test_killed_actor_still_every_row_exactly_once(ray_session, tmp_path):
    ray = ray_session
    n = 400
    uri = f"sqlite:///{tmp_path / 'kill.db'}"
    db = pinnacle.connect(uri)
    db["docs"].insert(_rows(n))
    db.apply(pinnacle.Listener("emb", model=SlowLetters(identifier="slow", delay=0.01), key="text", select="docs"), wait=False)
    result: dict = {}

    def job():
        try:
            result["stats"] = db.backfill(
                "emb", compute="ray", num_actors=2, chunk_rows=20, runtime_env=worker_env(), show_progress_bar=False
            )
        except BaseException as exc:  # noqa: BLE001 - reported below
            result["error"] = exc

    thread = threading.Thread(target=job)
    thread.start()
    watcher = pinnacle.connect(uri)
    running = _wait_for(
        lambda: (j := latest_job(watcher.backend, "emb")) is not None and j.rows_done >= 20 and j, 120, "a first chunk"
    )
    assert running.state == "running" and running.rows_done < n
    names = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True) if a["name"].startswith(f"pinnacle-{running.id}-")]
    assert len(names) == 2
    ray.kill(ray.get_actor(names[0], namespace="pinnacle"), no_restart=False)  # Ray restarts it and retries its chunks
    thread.join(180)
    assert not thread.is_alive()
    assert "error" not in result, result.get("error")

    stats = result["stats"]
    assert stats.outputs == n and stats.failed == 0  # each row committed exactly once
    status = db.status()["emb"]
    assert (status["outputs"], status["pending"], status["failed"]) == (n, 0, 0)
    assert sorted(db.outputs("emb")) == [f"r{i:04d}" for i in range(n)]
    job = db.jobs()["emb"]
    assert job["state"] == "done" and job["outputs"] == n and job["rows_done"] == n
    watcher.close()
    db.close()


# -- an interrupted driver ------------------------------------------------------------------
DRIVER = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {here!r})
    import pinnacle
    db = pinnacle.connect({uri!r})
    db.backfill("emb", compute="ray", num_actors=1, chunk_rows=20, show_progress_bar=False,
                runtime_env={{"env_vars": {{"PYTHONPATH": {pythonpath!r}}}}})
    """
)


def test_interrupted_job_resumes_with_only_the_remaining_rows(ray_session, tmp_path):
    ray = ray_session
    n = 300
    uri = f"sqlite:///{tmp_path / 'resume.db'}"
    db = pinnacle.connect(uri)
    db["docs"].insert(_rows(n))
    db.apply(pinnacle.Listener("emb", model=SlowLetters(identifier="slow", delay=0.02), key="text", select="docs"), wait=False)
    env = {**os.environ, "RAY_ADDRESS": ray.get_runtime_context().gcs_address, "PYTHONPATH": worker_pythonpath()}
    driver = subprocess.Popen([sys.executable, "-c", DRIVER.format(here=HERE, uri=uri, pythonpath=worker_pythonpath())], env=env)
    try:
        first = _wait_for(lambda: (j := latest_job(db.backend, "emb")) is not None and j.rows_done >= 40 and j, 120, "progress")
        driver.send_signal(signal.SIGKILL)
        driver.wait(30)
    finally:
        if driver.poll() is None:
            driver.kill()
    # Ray stops the dead driver's actors; after that the queue holds exactly what is left.
    _wait_for(
        lambda: not [a for a in ray.util.list_named_actors(all_namespaces=True) if a["name"].startswith(f"pinnacle-{first.id}-")],
        60, "the dead driver's actors to stop",
    )
    time.sleep(0.5)
    interrupted = latest_job(db.backend, "emb")
    assert interrupted.id == first.id and interrupted.state == "failed" and "interrupted" in interrupted.error
    left = db.status()["emb"]["pending"]
    assert 0 < left < n

    stats = db.backfill("emb", compute="ray", num_actors=2, chunk_rows=20, runtime_env=worker_env(), show_progress_bar=False)

    assert stats.outputs == left  # only the remaining rows
    job = db.jobs()["emb"]
    assert job["rows_total"] == left and job["resumed_from"] == first.id and job["state"] == "done"
    status = db.status()["emb"]
    assert (status["outputs"], status["pending"]) == (n, 0)
    db.close()


# -- two nodes on loopback --------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ray_cli() -> str:
    return os.path.join(os.path.dirname(sys.executable), "ray")


@pytest.fixture
def two_node_cluster(tmp_path):
    """A second cluster: a head (1 CPU) and a worker node (1 CPU, resource ``node2``) on 127.0.0.1.

    Started with ``ray start --block``, so teardown stops exactly these processes: SIGTERM
    to each ``ray start`` (it drains its node and stops what it started), SIGKILL to its
    process group as a fallback.
    """
    require_ray()
    port, client_port = _free_port(), _free_port()
    temp_dir = f"/tmp/pnray{os.getpid()}{port}"  # short: Ray's socket paths must fit
    env = {**os.environ, "PYTHONPATH": worker_pythonpath(), "RAY_AUTH_MODE": "disabled"}
    env.pop("RAY_ADDRESS", None)

    def own_ports() -> list[str]:  # no clash with the session's cluster or anyone else's
        names = ["--dashboard-agent-listen-port", "--dashboard-agent-grpc-port", "--metrics-export-port", "--runtime-env-agent-port"]
        return [item for name in names for item in (name, str(_free_port()))]

    common = ["--num-cpus", "1", "--block", "--node-ip-address", "127.0.0.1", "--disable-usage-stats"]
    logs = open(tmp_path / "ray-start.log", "w")
    head = [
        "--head", "--port", str(port), "--ray-client-server-port", str(client_port), "--dashboard-port", str(_free_port()),
        "--include-dashboard", "false", "--temp-dir", temp_dir,
    ]
    worker = ["--address", f"127.0.0.1:{port}", "--resources", json.dumps({"node2": 1})]
    procs = []
    try:
        for args in (head, worker):
            procs.append(
                subprocess.Popen(
                    [_ray_cli(), "start", *args, *own_ports(), *common],
                    env=env, stdout=logs, stderr=subprocess.STDOUT, start_new_session=True,
                )
            )
            time.sleep(1)
        yield {"client": f"ray://127.0.0.1:{client_port}", "env": env, "log": tmp_path / "ray-start.log"}
    finally:
        for proc in reversed(procs):  # the worker node first, then the head
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(40)
                except subprocess.TimeoutExpired:
                    pass
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # whatever it left behind (its own process group)
            except ProcessLookupError:
                pass
            proc.wait(10)
        logs.close()
        shutil.rmtree(temp_dir, ignore_errors=True)


TWO_NODE_DRIVER = textwrap.dedent(
    """
    import json, sys, time
    sys.path.insert(0, {here!r})
    import ray
    import pinnacle
    deadline = time.time() + 120
    while True:  # the cluster is starting: wait for both nodes
        try:
            ray.init(address={client!r})
            nodes = sorted(n["NodeID"] for n in ray.nodes() if n["Alive"])
            ray.shutdown()
        except Exception:  # not up yet
            nodes = []
        if len(nodes) == 2:
            break
        assert time.time() < deadline, "the two nodes did not come up"
        time.sleep(1)
    db = pinnacle.connect({uri!r}, compute={client!r})  # pinnacle connects through Ray Client itself
    stats = db.backfill("emb", chunk_rows=10, show_progress_bar=False,
                        runtime_env={{"env_vars": {{"PYTHONPATH": {pythonpath!r}}}}})
    print("RESULT", json.dumps({{"nodes": nodes, "outputs": stats.outputs}}))
    """
)


def test_job_runs_across_two_nodes(two_node_cluster, tmp_path):
    n = 120
    uri = f"sqlite:///{tmp_path / 'two.db'}"
    db = pinnacle.connect(uri)
    db["docs"].insert(_rows(n))
    db.apply(pinnacle.Listener("emb", model=SlowLetters(identifier="slow", delay=0.01), key="text", select="docs"), wait=False)
    script = TWO_NODE_DRIVER.format(
        here=HERE, uri=uri, client=two_node_cluster["client"], pythonpath=worker_pythonpath()
    )
    out = subprocess.run([sys.executable, "-c", script], env=two_node_cluster["env"], capture_output=True, text=True, timeout=240)
    if out.returncode != 0:
        log = two_node_cluster["log"].read_text()[-3000:]
        pytest.fail(f"driver failed:\n{out.stdout[-3000:]}\n{out.stderr[-5000:]}\nray start log:\n{log}")
    result = json.loads(out.stdout.split("RESULT", 1)[1])
    job = db.jobs()["emb"]
    assert result["outputs"] == n and len(result["nodes"]) == 2, (result, job)
    assert job["state"] == "done" and job["rows_done"] == n and job["workers"] == 2, job
    assert sorted(job["nodes"]) == result["nodes"], (job, result)  # chunks ran on both nodes
    assert all(count > 0 for count in job["nodes"].values())
    assert sum(job["nodes"].values()) == job["chunks"] == math.ceil(n / 10)
    status = db.status()["emb"]
    assert (status["outputs"], status["pending"]) == (n, 0)
    db.close()


# -- the command line -------------------------------------------------------------------------
def test_cli_backfill_on_ray_then_status_shows_the_job(ray_session, tmp_path, capsys):
    from pinnacle.cli import main

    n = 60
    uri = f"sqlite:///{tmp_path / 'cli.db'}"
    db = pinnacle.connect(uri)
    db["docs"].insert(_rows(n))
    model = SlowLetters(identifier="slow", compute_kwargs={"num_actors": 1, "chunk_rows": 25, "runtime_env": worker_env()})
    db.apply(pinnacle.Listener("emb", model=model, key="text", select="docs"), wait=False)

    assert main(["--db", uri, "-q", "backfill", "emb", "--compute", "ray"]) == 0
    out = capsys.readouterr().out
    assert f"{n} row(s): {n} embedded" in out

    job = db.jobs()["emb"]  # the model's compute_kwargs became the job's options
    assert (job["workers"], job["chunks"], job["state"]) == (1, math.ceil(n / 25), "done")
    assert main(["--db", uri, "status"]) == 0
    out = capsys.readouterr().out
    assert "Jobs (latest per listener)" in out and job["id"] in out
    assert "done" in out and "[####################] 100%" in out and f"{n}/{n} rows" in out
    assert main(["--db", uri, "status", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["emb"]["job"]["outputs"] == n
    db.close()
