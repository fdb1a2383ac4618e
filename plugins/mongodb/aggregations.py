"""Which aggregation features the server runs, probed once per backend.

MongoDB has had ``$lookup`` (with ``$size``) and the ``$max`` accumulator of ``$group``
since 3.2; some MongoDB-compatible servers lack one or the other. Each feature is tried
once, when first needed, on a one-document input (a probe document in ``_pinnacle_state``)
and the answer is kept for the life of the backend: a server that refuses the pipeline
(:class:`~pymongo.errors.OperationFailure`) or answers it wrongly is served by equivalent
queries done in batches (``reconcile.py``, ``listeners.py``). Connection errors are not
answers: they propagate and the probe runs again on the next call.
"""

from __future__ import annotations

import logging
import typing as t

logger = logging.getLogger(__name__)

__all__ = ["Aggregations", "PROBE_KEY", "FEATURES"]

#: ``_id`` of the probe document in ``_pinnacle_state``.
PROBE_KEY = "mongodb/aggregation-probe"
_STATE = "_pinnacle_state"

#: feature -> (pipeline run on the probe document, the answer a server that has it gives)
FEATURES: dict[str, tuple[list[dict], list[dict]]] = {
    "lookup": (
        [{"$lookup": {"from": _STATE, "localField": "_id", "foreignField": "_id", "as": "same"}},
         {"$project": {"_id": 0, "found": {"$size": "$same"}}}],
        [{"found": 1}],
    ),
    "max": (
        [{"$group": {"_id": None, "n": {"$sum": 1}, "latest": {"$max": "$probe"}}}, {"$project": {"_id": 0}}],
        [{"n": 1, "latest": 2}],
    ),
}


class Aggregations:
    """The answers of one server: ``has("lookup")``, ``has("max")``.

    Args:
        db: The database (pymongo or mongomock).
        where: The server's URI without its password, for the log line.

    Example:
        >>> import mongomock
        >>> found = Aggregations(mongomock.MongoClient().doctest_aggregations)
        >>> found.has("lookup"), found.has("max"), found.known
        (True, True, {'lookup': True, 'max': True})
    """

    def __init__(self, db: t.Any, where: str = ""):
        self.db = db
        self.where = where
        self.known: dict[str, bool] = {}

    def has(self, feature: str) -> bool:
        """Whether the server runs ``feature`` (probed on first use, then remembered)."""
        if feature not in self.known:
            self.known[feature] = self._probe(feature)
        return self.known[feature]

    def _probe(self, feature: str) -> bool:
        from pymongo.errors import OperationFailure

        pipeline, expected = FEATURES[feature]
        state = self.db[_STATE]
        state.update_one({"_id": PROBE_KEY}, {"$set": {"probe": 2, "value": "2"}}, upsert=True)  # value: as get_state reads
        try:
            answer = list(state.aggregate([{"$match": {"_id": PROBE_KEY}}, *pipeline]))
        except OperationFailure as exc:
            reason = (exc.details or {}).get("errmsg") or str(exc)
            logger.warning("%s does not run %s (%s); pinnacle uses batched queries instead",
                           self.where or "The server", _NAMES[feature], reason.splitlines()[0][:200])
            return False
        if answer != expected:
            logger.warning("%s answered %s wrongly (%r, expected %r); pinnacle uses batched queries instead",
                           self.where or "The server", _NAMES[feature], answer, expected)
            return False
        return True


_NAMES = {"lookup": "$lookup", "max": "the $max accumulator"}
