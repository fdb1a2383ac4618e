"""The full-text side of a VectorIndex (``full_text=True``): created, replaced and dropped
with the index, searched by the database.

Which index a VectorIndex has in the database is recorded in pinnacle's state
(``fulltext/<identifier>``: table, column, language), so a new version of the VectorIndex
that indexes another column or language replaces it, and ``remove()`` drops it, in any
process.
"""

from __future__ import annotations

import json
import logging
import threading
import typing as t

from pinnacle.backends.base import DataBackend
from pinnacle.backends.fulltext import FullText, FullTextStore, TextIndexSpec
from pinnacle.components.listener import Listener
from pinnacle.components.vector_index import VectorIndex
from pinnacle.errors import ConfigError

logger = logging.getLogger(__name__)

__all__ = ["TextIndexes", "text_spec", "STATE_PREFIX"]

#: State key prefix of the full-text index a VectorIndex has in the database.
STATE_PREFIX = "fulltext/"


def text_spec(index: VectorIndex, listener: Listener) -> t.Optional[TextIndexSpec]:
    """The full-text index ``index`` wants over ``listener``'s key column, ``None`` without ``full_text``.

    Example:
        >>> from pinnacle.components.model import Model
        >>> l = Listener("docs-emb", model=Model("m"), key="text", select="docs")
        >>> text_spec(VectorIndex("docs-idx", indexing_listener=l, full_text=True), l)
        TextIndexSpec(identifier='docs-idx', table='docs', column='text', language=None)
    """
    if not index.full_text:
        return None
    return TextIndexSpec(index.identifier, listener.select, t.cast(str, listener.key), index.full_text_language)


class TextIndexes:
    """The full-text indexes of one datalayer's VectorIndexes (see the module docstring)."""

    def __init__(self, backend: DataBackend):
        self.backend = backend
        self._open: dict[str, FullText] = {}
        self._lock = threading.RLock()

    def open(self, spec: TextIndexSpec) -> FullText:
        """The backend's :class:`FullText` for ``spec``; a :class:`ConfigError` where it has none."""
        backend = self.backend
        found = backend.full_text(spec) if isinstance(backend, FullTextStore) else None
        if found is None:
            why = backend.full_text_missing() if isinstance(backend, FullTextStore) else "this backend has no full-text indexes"
            raise ConfigError(f"VectorIndex {spec.identifier!r}: full_text=True cannot be used on {backend.safe_uri}: {why}.")
        return found

    def _recorded(self, identifier: str) -> t.Optional[TextIndexSpec]:
        value = self.backend.get_state(STATE_PREFIX + identifier)
        return None if value is None else TextIndexSpec.from_json(json.loads(value))

    def activate(self, index: VectorIndex) -> None:
        """Make the database's full-text index the one ``index`` wants: create it (indexing the
        rows already there), replace one made for another column or language, or drop it."""
        identifier = index.identifier
        wanted = text_spec(index, index.indexing_listener)
        with self._lock:
            self._open.pop(identifier, None)
            recorded = self._recorded(identifier)
            if recorded is not None and recorded != wanted:
                self.open(recorded).drop()
                self.backend.set_state(STATE_PREFIX + identifier, None)
                logger.info("VectorIndex %r: dropped its full-text index on %s.%s", identifier, recorded.table, recorded.column)
            if wanted is None:
                return
            self.open(wanted).create()  # nothing to do when it exists
            if recorded != wanted:
                self.backend.set_state(STATE_PREFIX + identifier, json.dumps(wanted.to_json(), sort_keys=True))
                logger.info("VectorIndex %r: full-text index on %s.%s", identifier, wanted.table, wanted.column)

    def removed(self, identifier: str) -> None:
        """``identifier`` is no longer stored: drop its full-text index, if it had one."""
        with self._lock:
            self._open.pop(identifier, None)
            recorded = self._recorded(identifier)
            if recorded is None:
                return
            self.open(recorded).drop()
            self.backend.set_state(STATE_PREFIX + identifier, None)
            logger.info("VectorIndex %r removed: dropped its full-text index on %s.%s", identifier, recorded.table, recorded.column)

    def get(self, index: VectorIndex, listener: Listener) -> FullText:
        """The full-text index of ``index`` over ``listener`` to search; a :class:`ConfigError`
        naming the fix when ``index`` has none."""
        spec = text_spec(index, listener)
        if spec is None:
            raise ConfigError(
                f"VectorIndex {index.identifier!r} has no full-text index, which mode='text' and mode='hybrid' "
                f"search; apply it with full_text=True: VectorIndex({index.identifier!r}, indexing_listener=..., full_text=True)."
            )
        with self._lock:
            found = self._open.get(index.identifier)
            if found is None or found.spec != spec:
                found = self._open[index.identifier] = self.open(spec)
            return found
