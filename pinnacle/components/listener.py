"""The Listener component: keeps one current output of a model for every row of a table."""

from __future__ import annotations

import dataclasses as dc
import typing as t

from pinnacle.base.component import Component
from pinnacle.base.identifiers import validate_column, validate_identifier, validate_table_name
from pinnacle.components.model import Model
from pinnacle.errors import ConfigError

__all__ = ["Listener"]

Key = t.Union[str, tuple, dict]


@dc.dataclass(kw_only=True, repr=False)
class Listener(Component):
    """Run ``model`` over column(s) ``key`` of table ``select`` and keep the outputs current.

    Once applied, every row (existing, inserted, updated, or written by another client)
    gets exactly one output, stored in the same database and removed with the row.

    Args:
        model: The model to run.
        key: The column the model reads (``'text'``); a tuple of columns for
            ``signature='*args'``; a ``{parameter: column}`` dict for ``'**kwargs'``.
        select: The table to listen to: a table handle (``db["docs"]``) or its name; or
            another listener's outputs (``db.outputs_table("chunks")``, key ``"_output"``):
            a chain, see docs/chunking.md.

    Example:
        >>> from pinnacle.components.model import Model
        >>> Listener("docs-emb", model=Model("m"), key="text", select="docs").select
        'docs'
    """

    type_id: t.ClassVar[str] = "Listener"

    model: Model
    key: Key
    select: t.Any

    def __post_init__(self, db=None) -> None:
        owner = f"Listener {self.identifier!r}"
        if not isinstance(self.model, Model):
            raise ConfigError(f"{owner}: model must be a Model component, got {type(self.model).__name__}.")
        self.select = _table_name(self.select, owner)
        if isinstance(self.key, list):
            self.key = tuple(self.key)
        for column in self.key_columns:
            validate_column(column, self.select)
        super().__post_init__(db)

    @property
    def key_columns(self) -> tuple[str, ...]:
        """The source columns this listener reads."""
        if isinstance(self.key, str):
            return (self.key,)
        if isinstance(self.key, tuple):
            return self.key
        if isinstance(self.key, dict):
            return tuple(self.key.values())
        raise ConfigError(f"Listener {self.identifier!r}: key must be a column name, a tuple or a dict.")

    def model_input(self, row: t.Mapping[str, t.Any]) -> t.Any:
        """The model input for one row: shaped by the key and the model's signature.

        Raises:
            KeyError: a key column is missing from the row.
        """
        if isinstance(self.key, str):
            value = row[self.key]
            return (value,) if self.model.signature == "*args" else value
        if isinstance(self.key, tuple):
            return tuple(row[c] for c in self.key)
        kwargs = {param: row[column] for param, column in self.key.items()}
        return ((), kwargs) if self.model.signature == "*args,**kwargs" else kwargs


def _table_name(select: t.Any, owner: str) -> str:
    name = select if isinstance(select, str) else getattr(select, "name", None)
    if name is None:
        raise ConfigError(f"{owner}: select must be a table (db['docs']) or a table name, got {select!r}.")
    return validate_table_name(name, "table name")
