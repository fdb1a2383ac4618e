"""A second-stage model for the hybrid tests, importable by name (components are stored by import path)."""

from __future__ import annotations

import dataclasses as dc
import re
import typing as t

from pinnacle import Model

_WORD = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")


def words(text: str) -> set[str]:
    return set(_WORD.findall(text.lower()))


@dc.dataclass(kw_only=True, repr=False)
class OverlapReranker(Model):
    """The shape of a cross-encoder: ``predict((query, text))`` is one score, higher is better.

    Here: the share of the query's words (codes like ``E-4471`` count as one word) found in
    the text, so the expected order is easy to compute by hand. ``calls`` counts the pairs.
    """

    signature: str = "singleton"
    calls: t.ClassVar[list] = []

    def predict(self, pair: t.Sequence[str]) -> float:
        query, text = pair
        OverlapReranker.calls.append((query, text))
        wanted = words(query)
        return len(wanted & words(text)) / max(1, len(wanted))
