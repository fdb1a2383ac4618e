"""A server that lacks aggregation features: ``aggregate`` refuses ``$lookup`` and the
``$max`` accumulator as such servers do (an OperationFailure naming the stage or operator)."""

from __future__ import annotations

import typing as t

from pymongo.errors import OperationFailure


def _uses(pipeline: t.Any, key: str) -> bool:
    if isinstance(pipeline, dict):
        return key in pipeline or any(_uses(v, key) for v in pipeline.values())
    if isinstance(pipeline, (list, tuple)):
        return any(_uses(v, key) for v in pipeline)
    return False


def refuse(monkeypatch, *features: str, seen: t.Optional[list] = None, classes: t.Optional[list] = None) -> None:
    """Make every collection's ``aggregate`` refuse ``features`` (``"lookup"``, ``"max"``);
    ``seen`` collects every pipeline that was run. ``classes``: the collection classes to
    patch (default: mongomock's and pymongo's)."""
    import mongomock.collection
    import pymongo.collection

    for cls in classes or {mongomock.collection.Collection, pymongo.collection.Collection}:
        real = cls.aggregate

        def aggregate(self, pipeline, *args, _real=real, **kwargs):
            if seen is not None:
                seen.append(pipeline)
            if "lookup" in features and _uses(pipeline, "$lookup"):
                raise OperationFailure("Unrecognized pipeline stage name: '$lookup'", code=40324)
            if "max" in features and _uses(pipeline, "$max"):
                raise OperationFailure("unknown group operator '$max'", code=15952)
            return _real(self, pipeline, *args, **kwargs)

        monkeypatch.setattr(cls, "aggregate", aggregate)
