"""The Ray plugin without a cluster: option validation, choosing the backend, import hygiene."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import pinnacle
from pinnacle.backends.compute import LocalCompute, load_compute
from pinnacle.embedding.jobs import Job, latest_job, save_job
from pinnacle.plugins.ray.options import OPTIONS, resolve_options


def test_compute_kwargs_become_actor_options():
    opts = resolve_options(
        {"num_cpus": 2, "num_gpus": 0.5, "memory": 2**30, "resources": {"node2": 1}, "num_actors": 3},
        {"chunk_rows": 50},
    )
    assert opts.actor["num_cpus"] == 2 and opts.actor["num_gpus"] == 0.5
    assert opts.actor["memory"] == 2**30 and opts.actor["resources"] == {"node2": 1}
    assert opts.actor["max_restarts"] >= 1 and opts.actor["max_task_retries"] >= 1  # a killed actor's chunk is retried
    assert (opts.num_actors, opts.chunk_rows) == (3, 50)
    assert "num_actors" not in opts.actor and "chunk_rows" not in opts.actor


def test_call_options_override_compute_kwargs():
    assert resolve_options({"num_actors": 4}, {"num_actors": 1}).num_actors == 1


def test_unknown_option_lists_the_valid_ones():
    with pytest.raises(pinnacle.ConfigError) as info:
        resolve_options({"num_cpu": 1}, {}, owner="Listener 'docs-emb' v0")
    message = str(info.value)
    assert "'num_cpu'" in message and "docs-emb" in message
    for name in ("num_cpus", "num_gpus", "memory", "resources", "num_actors"):
        assert name in message
    assert set(OPTIONS) >= {"num_cpus", "num_gpus", "memory", "resources", "num_actors", "max_restarts", "max_task_retries"}


@pytest.mark.parametrize(
    "bad", [{"num_cpus": -1}, {"num_actors": 0}, {"num_actors": True}, {"resources": {"x": "1"}}, {"scheduling_strategy": "PACKED"}]
)
def test_bad_option_values(bad):
    with pytest.raises(pinnacle.ConfigError, match="is not valid"):
        resolve_options(bad, {})


def test_compute_is_found_by_name():
    assert isinstance(load_compute(None), LocalCompute) and isinstance(load_compute("local"), LocalCompute)
    ray_backend = load_compute("ray")
    assert ray_backend.name == "ray" and ray_backend.cluster.address is None
    assert load_compute("ray://head:10001").cluster.address == "ray://head:10001"
    with pytest.raises(pinnacle.ConfigError, match=r"valid ones are \['local', 'ray'"):
        load_compute("spark")
    with pytest.raises(pinnacle.ConfigError, match="compute"):
        pinnacle.connect("sqlite://", compute="rya")


def test_in_memory_sqlite_cannot_be_shared(tmp_path):
    db = pinnacle.connect("sqlite://", compute="ray")
    with pytest.raises(pinnacle.ConfigError, match="in-memory"):
        db.backend.worker_uri()
    file_db = pinnacle.connect(f"sqlite:///{tmp_path / 'x.db'}")
    assert file_db.backend.worker_uri() == f"sqlite:///{tmp_path / 'x.db'}"


def test_worker_uri_keeps_the_password_safe_uri_masks_it():
    from pinnacle.plugins.sql.engine import normalise_url

    url = normalise_url("postgresql://alice:s3cret@db.example/x")
    assert "s3cret" not in url.render_as_string(hide_password=True)
    from pinnacle.plugins.sql.backend import SQLBackend

    backend = SQLBackend.__new__(SQLBackend)  # no server needed: only the URI handling
    backend._worker_url = url
    assert "s3cret" in backend.worker_uri()
    assert "s3cret" not in repr(load_compute("ray"))


def test_no_ray_import_until_a_job_runs(tmp_path):
    script = (
        "import sys, json, pinnacle\n"
        f"db = pinnacle.connect('sqlite:///{tmp_path / 'x.db'}', compute='ray')\n"
        "import pinnacle.plugins.ray, pinnacle.plugins.ray.job\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'ray')))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=tmp_path)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_job_record_round_trip_and_interrupted_driver(tmp_path):
    db = pinnacle.connect(f"sqlite:///{tmp_path / 'x.db'}")
    job = Job.new("docs-emb", compute="ray:local", versions=[0], rows_total=10)
    job.state, job.rows_done = "running", 4
    save_job(db.backend, job, latest=True)
    assert latest_job(db.backend, "docs-emb") == job  # this process is alive: still running
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    job.pid = int(dead.stdout)
    save_job(db.backend, job)
    found = latest_job(db.backend, "docs-emb")
    assert found.state == "failed" and "interrupted" in found.error
    assert db.backend.get_state(f"Job/{job.id}") is not None
