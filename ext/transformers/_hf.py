"""Shared plumbing for the Hugging Face based components: loading, caching, saving, config files."""

from __future__ import annotations

import inspect
import json
import logging
import os
import threading
import typing as t
from pathlib import Path

from pinnacle._deps import require
from pinnacle.errors import PinnacleError

logger = logging.getLogger(__name__)

__all__ = ["NativeCache", "read_json", "save_pretrained", "chunks", "torch_module", "transformers_module"]


class NativeCache:
    """A small per-process LRU of loaded native models, keyed by (source, device, options).

    Example:
        >>> cache = NativeCache(size=1)
        >>> cache.get(("a",), lambda: 1), cache.get(("b",), lambda: 2), cache.get(("a",), lambda: 3)
        (1, 2, 3)
    """

    def __init__(self, size: int = 4):
        self.size = size
        self._items: dict[tuple, t.Any] = {}
        self._lock = threading.Lock()
        self._loading: dict[tuple, threading.Lock] = {}

    def get(self, key: tuple, load: t.Callable[[], t.Any]) -> t.Any:
        with self._lock:
            if key in self._items:
                self._items[key] = self._items.pop(key)  # most recently used last
                return self._items[key]
            gate = self._loading.setdefault(key, threading.Lock())
        with gate:  # one loader per key; others wait for it
            with self._lock:
                if key in self._items:
                    return self._items[key]
            value = load()
            with self._lock:
                while len(self._items) >= self.size:
                    self._items.pop(next(iter(self._items)))
                self._items[key] = value
                self._loading.pop(key, None)
            return value

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


def read_json(source: str, filename: str) -> t.Optional[dict]:
    """``filename`` of a model folder or hub name parsed as JSON; ``None`` when it is absent."""
    if os.path.isdir(source):
        path = Path(source) / filename
        if not path.is_file():
            return None
        with open(path, encoding="utf8") as fh:
            return json.load(fh)
    try:
        from transformers.utils import cached_file

        found = cached_file(source, filename, _raise_exceptions_for_missing_entries=False)
    except Exception:  # noqa: BLE001 - not cached, offline, or no such repository: treat as absent
        return None
    if not found:
        return None
    with open(found, encoding="utf8") as fh:
        return json.load(fh)


def save_pretrained(obj: t.Any, folder: str | os.PathLike) -> None:
    """``obj.save_pretrained(folder)`` with safetensors weights on every transformers version."""
    kwargs = {}
    if "safe_serialization" in inspect.signature(obj.save_pretrained).parameters:
        kwargs["safe_serialization"] = True  # transformers 4.x; 5.x always writes safetensors
    obj.save_pretrained(str(folder), **kwargs)
    unsafe = [p.name for p in Path(folder).glob("*.bin")]
    if unsafe:
        raise PinnacleError(f"save_pretrained wrote pickled weights {unsafe} instead of safetensors into {folder}.")


def chunks(items: t.Sequence[t.Any], size: int) -> t.Iterator[t.Sequence[t.Any]]:
    """Consecutive slices of ``items`` of at most ``size``."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def torch_module() -> t.Any:
    """``torch``, or a :class:`MissingDependencyError` naming the extra."""
    return require("torch", extra="transformers")


def transformers_module() -> t.Any:
    """``transformers``, or a :class:`MissingDependencyError` naming the extra."""
    return require("transformers", extra="transformers")
