"""Connecting the driver to Ray: an existing cluster, or a local one started on demand."""

from __future__ import annotations

import logging
import os
import typing as t
from types import ModuleType

from pinnacle._deps import require
from pinnacle.errors import BackendError, ConfigError

logger = logging.getLogger(__name__)

__all__ = ["RayCluster", "worker_env"]

#: Environment variables the driver hands on to its workers when it has them set.
FORWARDED_ENV = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HOME", "PINNACLE_CACHE", "TOKENIZERS_PARALLELISM")


class RayCluster:
    """Where jobs run.

    Args:
        address: ``None`` for ``$RAY_ADDRESS`` when set, else a local cluster started on
            first use (``ray.init()``, no dashboard); ``"ray://host:10001"`` for an existing
            cluster through Ray Client; ``"host:6379"`` (a cluster this machine belongs to).

    A process that already called ``ray.init`` keeps its connection.
    """

    def __init__(self, address: t.Optional[str] = None):
        if address is not None and (not isinstance(address, str) or not address.strip()):
            raise ConfigError(f"Ray address must be 'ray://host:port' or 'host:port', got {address!r}.")
        self.address = address

    def __repr__(self) -> str:
        return f"RayCluster({self.address or 'local or $RAY_ADDRESS'})"

    def describe(self) -> str:
        return self.address or os.environ.get("RAY_ADDRESS") or "local"

    def connect(self) -> ModuleType:
        """``ray``, initialised (connecting or starting a cluster the first time)."""
        ray = require("ray", extra="ray")
        if ray.is_initialized():
            return ray
        address = self.address or os.environ.get("RAY_ADDRESS") or None
        try:
            if address:
                logger.info("Connecting to the Ray cluster at %s", address)
                ray.init(address=address, logging_level=logging.WARNING)
            else:
                logger.info("Starting a local Ray cluster (set RAY_ADDRESS or compute='ray://host:port' to use an existing one)")
                # "local": a new instance, never one that another `ray start` left on this machine.
                ray.init(address="local", include_dashboard=False, logging_level=logging.WARNING)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = address or "a local cluster"
            raise BackendError(
                f"Cannot start or reach Ray at {where}: {exc}. Check the address (ray status on the head node), "
                "or leave RAY_ADDRESS unset to start a local cluster.",
                exc,
            ) from exc
        return ray


def worker_env(runtime_env: t.Optional[dict]) -> dict:
    """The actors' ``runtime_env``: the forwarded variables, then the user's ``runtime_env``."""
    env = dict(runtime_env or {})
    forwarded = {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}
    env["env_vars"] = {**forwarded, **dict(env.get("env_vars") or {})}
    if not env["env_vars"]:
        env.pop("env_vars")
    return env
