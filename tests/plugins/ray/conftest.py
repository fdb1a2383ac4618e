"""One local Ray cluster for the whole session (2 CPUs, no dashboard).

Skipped only when ray is not importable, and under ``CI=true`` that fails instead: CI
must run these tests. Workers import the test models of this folder (``ray_models``)
through ``PYTHONPATH``.
"""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # ray_models, ray_helpers
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

from ray_helpers import require_ray, worker_env  # noqa: E402


@pytest.fixture(scope="session")
def ray_session():
    """``ray``, initialised on a fresh local cluster (num_cpus=2) for the session."""
    ray = require_ray()
    if not ray.is_initialized():
        ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="WARNING", runtime_env=worker_env())
    yield ray
    ray.shutdown()
