"""The dataclass base of every component: identifier, stable uuid, version."""

from __future__ import annotations

import dataclasses as dc
import hashlib
import json
import typing as t

from pinnacle.base.encoding import Encodable, class_path, encode_value
from pinnacle.base.identifiers import validate_identifier

__all__ = ["Component", "class_path"]


@dc.dataclass
class Component(Encodable):
    """Base of every component: a plain dataclass with ``identifier``, ``uuid`` and ``version``.

    ``uuid`` is a stable hash of the class and of the fields that change outputs, so the
    same definition gives the same uuid in every process; re-applying it is a no-op, and
    a changed definition becomes a new ``version`` when applied.

    Args:
        identifier: Name of the component, unique per type (letters, digits, ``_``, ``-``).
        db: Unused; kept for signature compatibility with pinnacledb.
        uuid: Computed from the definition when not given.
        version: Set by ``Datalayer.apply``; ``None`` before.
    """

    #: The name under which the metadata store files this kind of component.
    type_id: t.ClassVar[str] = "Component"
    #: Fields that do not change outputs and so do not enter the uuid.
    uuid_excludes: t.ClassVar[frozenset[str]] = frozenset()

    identifier: str
    db: dc.InitVar[t.Any] = None
    uuid: str = ""
    _: dc.KW_ONLY
    version: t.Optional[int] = None

    def __post_init__(self, db: t.Any = None) -> None:
        validate_identifier(self.identifier, f"{type(self).__name__} identifier")
        if not self.uuid:
            self.uuid = self.compute_uuid()

    # -- identity -----------------------------------------------------------------
    def definition(self) -> dict[str, t.Any]:
        """The fields that define outputs, encoded to JSON-able values (children by uuid)."""
        fields = {}
        for f in dc.fields(self):
            if f.name in ("uuid", "version") or f.name in self.uuid_excludes:
                continue
            if f.name.startswith("_"):
                continue
            value = getattr(self, f.name)
            if f.metadata.get("omit_default") and f.default is not dc.MISSING and value == f.default:
                continue  # an option added later leaves the uuids of earlier definitions as they were
            fields[f.name] = encode_value(value, for_uuid=True)
        return {"_path": class_path(type(self)), **fields}

    def compute_uuid(self) -> str:
        """A 32-hex-digit hash of :meth:`definition`."""
        blob = json.dumps(self.definition(), sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:32]

    # -- tree ---------------------------------------------------------------------
    def children(self) -> list["Component"]:
        """Components held directly in this component's fields."""
        out: list[Component] = []
        for f in dc.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Component):
                out.append(value)
        return out

    # -- artifacts hooks ----------------------------------------------------------
    def dump_artifacts(self) -> dict[str, t.Any]:
        """Name -> ``bytes`` or a directory ``Path`` to keep in the artifact store."""
        return {}

    def __repr__(self) -> str:
        version = "" if self.version is None else f", version={self.version}"
        return f"{type(self).__name__}({self.identifier!r}{version}, uuid={self.uuid[:8]!r})"
