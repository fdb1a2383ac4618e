"""A model for the chain tests, importable by name (components are stored by import path)."""

from __future__ import annotations

import dataclasses as dc
import typing as t

from pinnacle import Model, Text


@dc.dataclass(kw_only=True, repr=False)
class Headline(Model):
    """One text per row: the first sentence of the text (a stand-in for a summarizer)."""

    signature: str = "singleton"
    datatype: t.Any = dc.field(default_factory=Text)

    def predict(self, text: str) -> str:
        return text.split(". ")[0].strip()
