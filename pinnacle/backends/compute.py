"""Compute backends: who computes a listener's pending rows in bulk.

``"local"`` (the default) is this process's own drain. Other names are plugins found
by name, like data backends: ``pinnacle.plugins.<name>`` first, then the
``pinnacle.compute`` entry-point group. A plugin module exposes
``compute_backend(spec) -> ComputeBackend``; the core never imports the plugin's engine
(``compute="ray"`` loads :mod:`pinnacle.plugins.ray`, which imports ``ray`` only when a
job runs).

Example:
    >>> load_compute(None).name
    'local'
    >>> load_compute("spark")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    pinnacle.errors.ConfigError: Unknown compute backend 'spark'; valid ones are ['local', 'ray']...
"""

from __future__ import annotations

import abc
import importlib
import typing as t
from importlib import metadata

from pinnacle.errors import ConfigError
from pinnacle.progress import progress_bar

if t.TYPE_CHECKING:  # pragma: no cover
    from pinnacle.embedding.drain import DrainStats
    from pinnacle.embedding.runtime import ListenerRuntime
    from pinnacle.runtimes import Runtimes

__all__ = ["ComputeBackend", "LocalCompute", "load_compute", "BUILTIN_COMPUTE"]

#: Compute backends that ship with pinnacle: name -> plugin module.
BUILTIN_COMPUTE = {"local": None, "ray": "pinnacle.plugins.ray"}


class ComputeBackend(abc.ABC):
    """Computes every pending row of a listener (stability: beta).

    Implementations commit through the listener's claim/commit path (see
    :class:`~pinnacle.embedding.drain.Drainer`), so a row is stored exactly once
    whoever computes it.
    """

    #: The name a user passes as ``compute=``.
    name: str = ""
    #: The optional backend capabilities it needs (``"jobs"``: other processes open the database).
    needs: frozenset[str] = frozenset()

    @abc.abstractmethod
    def backfill(
        self, db: "Runtimes", runtime: "ListenerRuntime", *, show_progress_bar: t.Optional[bool] = None,
        **options: t.Any,
    ) -> "DrainStats":
        """Compute the pending rows of every live version of ``runtime``'s listener.

        Args:
            db: The datalayer's runtime registry (:class:`~pinnacle.runtimes.Runtimes`): its
                ``backend`` holds the queue; ``batch_rows`` and ``retry_policy`` are the drain's.
            runtime: The listener's serving version and the version being built, if any.
            show_progress_bar: A tqdm bar while it runs (default: on at INFO logging).
            **options: Backend options overriding the model's ``compute_kwargs``.

        Returns:
            The summed :class:`~pinnacle.embedding.drain.DrainStats`.
        """

    def close(self) -> None:
        """Release what the backend holds (clusters it started stay up until exit)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


class LocalCompute(ComputeBackend):
    """This process drains the queue itself (``db.drain``)."""

    name = "local"

    def backfill(self, db, runtime, *, show_progress_bar=None, **options):
        if options:
            raise ConfigError(f"compute='local' takes no options, got {sorted(options)}.")
        with progress_bar(total=runtime.pending(), desc=runtime.identifier, unit="row", show=show_progress_bar) as bar:
            return runtime.drain(progress=bar)


def _entry_points() -> dict[str, t.Any]:
    return {e.name: e for e in metadata.entry_points(group="pinnacle.compute")}


def load_compute(spec: t.Union[None, str, ComputeBackend]) -> ComputeBackend:
    """The compute backend for ``spec``: ``None``/``"local"``, ``"ray"``, ``"ray://host:port"``...

    The part before ``://`` names the plugin; the whole ``spec`` is handed to it.

    Raises:
        ConfigError: no plugin has that name (the message lists the valid ones).
    """
    if isinstance(spec, ComputeBackend):
        return spec
    if spec is None or spec == "local":
        return LocalCompute()
    if not isinstance(spec, str) or not spec:
        raise ConfigError(f"compute must be a name such as 'local' or 'ray', got {spec!r}.")
    name = spec.split("://", 1)[0].lower()
    entries = _entry_points()
    if name in BUILTIN_COMPUTE and BUILTIN_COMPUTE[name]:
        module = importlib.import_module(BUILTIN_COMPUTE[name])
    elif name in entries:
        module = entries[name].load()
    else:
        valid = sorted(set(BUILTIN_COMPUTE) | set(entries))
        raise ConfigError(
            f"Unknown compute backend {spec!r}; valid ones are {valid} "
            "(e.g. compute='ray', compute='ray://head-node:10001')."
        )
    return module.compute_backend(spec)
