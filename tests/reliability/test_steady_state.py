"""Steady state: a process that inserts for days holds what it held after its first inserts."""

from __future__ import annotations

import pinnacle
from reliability.flaky_models import HashEmbed


def test_one_row_inserts_reuse_compiled_statements(backend_kind, connect):
    """The statements of the embedding path depend on the shape of the work, never on its
    values: after a warm-up, one-row inserts with a live listener add nothing to
    SQLAlchemy's compiled-statement cache. (A statement text per call, e.g. ids written
    into the SQL, fills that cache entry by entry and holds memory until it is full.)"""
    db = connect()
    db["docs"].insert([{"_id": "seed", "text": "seed"}])
    db.apply(pinnacle.Listener("emb", model=HashEmbed(identifier="hash", dim=8), key="text", select="docs"))
    def writes(prefix: str, n: int) -> None:
        for i in range(n):
            db["docs"].insert([{"_id": f"{prefix}{i}", "text": f"row {prefix} {i}"}])
        db["docs"].update({"_id": f"{prefix}0"}, {"text": f"row {prefix} 0, changed"})
        db["docs"].delete({"_id": f"{prefix}1"})

    writes("warm", 10)
    cache = db.backend.engine._compiled_cache
    before = len(cache)
    writes("r", 60)
    assert db.status()["emb"]["outputs"] == 1 + (10 - 1) + (60 - 1)
    assert len(cache) == before, f"{len(cache) - before} new compiled statements over 62 writes of the shapes already seen"
