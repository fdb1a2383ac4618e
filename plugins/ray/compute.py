"""The Ray compute backend: ``compute="ray"`` / ``"ray://host:port"``."""

from __future__ import annotations

import typing as t

from pinnacle.backends.compute import ComputeBackend
from pinnacle.errors import ConfigError
from pinnacle.plugins.ray.cluster import RayCluster

__all__ = ["RayCompute"]


class RayCompute(ComputeBackend):
    """Runs backfills as Ray bulk jobs (stability: beta).

    Args:
        address: ``None`` (``$RAY_ADDRESS`` if set, else a local cluster started on first
            use), ``"ray://host:10001"`` (Ray Client) or ``"host:6379"`` (this machine is a
            node of that cluster).

    Example:
        >>> RayCompute("ray://head:10001").cluster.address
        'ray://head:10001'
    """

    name = "ray"
    needs = frozenset({"jobs"})  # actors open the database themselves

    def __init__(self, address: t.Optional[str] = None):
        self.cluster = RayCluster(address)

    def __repr__(self) -> str:
        return f"RayCompute({self.cluster.describe()!r})"

    def backfill(self, db, runtime, *, show_progress_bar=None, **options):
        from pinnacle.plugins.ray.job import run_job

        return run_job(db, runtime, self.cluster, options, show_progress_bar)


def compute_backend(spec: t.Optional[str] = None) -> RayCompute:
    """The backend for ``"ray"`` (local or ``$RAY_ADDRESS``), ``"ray://host:port"`` or ``"ray:host:port"``."""
    if spec in (None, "ray"):
        return RayCompute()
    if spec.startswith("ray://"):
        return RayCompute(spec)
    if spec.startswith("ray:") and len(spec) > 4:  # ray:10.0.0.5:6379 -> a cluster this machine is part of
        return RayCompute(spec[4:])
    raise ConfigError(f"Ray compute {spec!r}: write 'ray', 'ray://host:port' (Ray Client) or 'ray:host:port'.")
