"""Helpers of the Ray tests (a plain module: tests import it by name, like ray_models)."""

from __future__ import annotations

import os

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))


def require_ray():
    """``ray``; skip when it is not installed, but fail under ``CI=true``: CI must run these tests."""
    try:
        import ray
    except ImportError as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"ray is not importable ({exc}); CI=true: the Ray tests must run", pytrace=False)
        pytest.skip(f"ray is not installed ({exc}); pip install 'pinnacle[ray]'")
    return ray


def worker_pythonpath() -> str:
    """PYTHONPATH for Ray workers: this folder (ray_models) first."""
    return os.pathsep.join([HERE, *filter(None, [os.environ.get("PYTHONPATH")])])


def worker_env() -> dict:
    """The ``runtime_env`` option that lets workers import ray_models."""
    return {"env_vars": {"PYTHONPATH": worker_pythonpath()}}
