"""Encode components to plain JSON and back.

One reference scheme:

* a component: ``{"_path": "module.Class", field: value, ...}``; a child is inline,
  or ``{"_ref": "component", "type": ..., "identifier": ..., "uuid": ...}`` when the
  metadata store keeps it as its own record;
* an artifact: ``{"_ref": "artifact", "sha256": ..., "kind": "bytes" | "dir"}``;
* a callable: ``{"_ref": "callable", "path": "module:qualname"}``;
* a tuple: ``{"_ref": "tuple", "items": [...]}`` (so tuples survive the round trip).

Decoding imports only classes that are :class:`Encodable` subclasses (every
:class:`~pinnacle.base.component.Component`) and callables named by import path. Nothing is
unpickled. This module does not import the component module: components import it (their
uuid is a hash of their encoded definition).
"""

from __future__ import annotations

import dataclasses as dc
import importlib
import typing as t

from pinnacle.errors import ConfigError, NotLoadableError

__all__ = ["Encodable", "encode", "decode", "encode_value", "class_path", "callable_path", "import_callable"]


class Encodable:
    """What encoding needs of a component, the base of :class:`~pinnacle.base.component.Component`.

    A subclass is a dataclass; it is encoded as its class path and its fields, and only
    subclasses of this class are built when decoding.
    """

    #: The name under which the metadata store files this kind of component.
    type_id: t.ClassVar[str] = "Component"
    identifier: str
    uuid: str
    version: t.Optional[int]

    def on_artifacts_loaded(self, artifacts: dict[str, t.Any]) -> None:
        """Receive :class:`~pinnacle.base.artifacts.ArtifactRef` handles after decoding."""


def class_path(cls: type) -> str:
    """``module.Class`` of a class, the form used in encoded components."""
    return f"{cls.__module__}.{cls.__qualname__}"


def callable_path(fn: t.Callable, *, owner: str = "component") -> str:
    """``module:qualname`` of an importable function or class, else a :class:`ConfigError`."""
    module = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", None)
    if not module or not qualname:
        raise ConfigError(
            f"{owner}: {fn!r} has no import path. Pass a function defined at module level "
            "in an importable module."
        )
    if qualname == "<lambda>" or "<locals>" in qualname or "<lambda>" in qualname:
        raise ConfigError(
            f"{owner}: cannot store {qualname} from {module}: lambdas and nested functions have "
            "no import path, so no other process could load them. Define it with `def` at the "
            f"top level of an importable module (not __main__) and pass that function."
        )
    if module == "__main__":
        raise ConfigError(
            f"{owner}: {qualname} is defined in __main__, which other processes cannot import. "
            "Move it to a module on the Python path and import it from there."
        )
    found = import_callable(f"{module}:{qualname}", owner=owner)
    if found is not fn:
        raise ConfigError(f"{owner}: {module}:{qualname} does not import back to {fn!r}.")
    return f"{module}:{qualname}"


def import_callable(path: str, *, owner: str = "component") -> t.Callable:
    """Import ``module:qualname`` and return the object."""
    module_name, _, qualname = path.partition(":")
    try:
        obj: t.Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise NotLoadableError(
            f"{owner}: cannot import {path!r}: {exc}", kind="callable", path=path, missing=_missing_module(exc), cause=str(exc)
        ) from exc
    if not callable(obj):
        raise ConfigError(f"{owner}: {path!r} is not callable.")
    return obj


def encode_value(value: t.Any, *, for_uuid: bool = False, refs: bool = False, owner: str = "component") -> t.Any:
    """Encode one field value. ``for_uuid`` puts children in by uuid only."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Encodable):
        if for_uuid:
            return {"_ref": "component", "type": value.type_id, "uuid": value.uuid}
        if refs:
            return component_ref(value)
        return encode(value)
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise ConfigError(f"{owner}: dictionary keys must be strings, got {k!r}.")
            out[k] = encode_value(v, for_uuid=for_uuid, refs=refs, owner=owner)
        return out
    if isinstance(value, tuple):
        return {"_ref": "tuple", "items": [encode_value(v, for_uuid=for_uuid, refs=refs, owner=owner) for v in value]}
    if isinstance(value, list):
        return [encode_value(v, for_uuid=for_uuid, refs=refs, owner=owner) for v in value]
    if hasattr(value, "to_json") and callable(value.to_json):
        return value.to_json()
    if callable(value):
        if for_uuid:
            module = getattr(value, "__module__", "?")
            return {"_ref": "callable", "path": f"{module}:{getattr(value, '__qualname__', repr(value))}"}
        return {"_ref": "callable", "path": callable_path(value, owner=owner)}
    raise ConfigError(
        f"{owner}: cannot encode {type(value).__name__} value {value!r} to JSON. Use plain "
        "values, components, or module-level functions."
    )


def component_ref(component: Encodable) -> dict:
    return {
        "_ref": "component",
        "type": component.type_id,
        "identifier": component.identifier,
        "uuid": component.uuid,
        "version": component.version,
    }


def encode(component: Encodable, *, refs: bool = False) -> dict:
    """Encode ``component`` to a JSON-able dict (children inline unless ``refs``).

    Example:
        >>> from pinnacle.components.model import Model
        >>> encode(Model("m"))["_path"]
        'pinnacle.components.model.Model'
    """
    owner = f"{component.type_id} {component.identifier!r}"
    out: dict[str, t.Any] = {"_path": class_path(type(component))}
    for f in dc.fields(component):
        if f.name.startswith("_"):
            continue
        value = getattr(component, f.name)
        if f.metadata.get("encode") is False:
            continue
        if f.default is not dc.MISSING and value is f.default and f.metadata.get("omit_default"):
            continue
        out[f.name] = encode_value(value, refs=refs, owner=owner)
    return out


def decode(
    data: t.Any,
    *,
    load_component: t.Callable[[dict], Encodable] | None = None,
    load_artifact: t.Callable[[dict], t.Any] | None = None,
) -> t.Any:
    """Decode what :func:`encode` produced.

    ``load_component`` resolves ``{"_ref": "component"}`` records; ``load_artifact``
    turns artifact references into handles (the datalayer passes lazy ones).
    """
    if isinstance(data, list):
        return [decode(v, load_component=load_component, load_artifact=load_artifact) for v in data]
    if not isinstance(data, dict):
        return data
    ref = data.get("_ref")
    if ref == "tuple":
        return tuple(decode(v, load_component=load_component, load_artifact=load_artifact) for v in data["items"])
    if ref == "callable":
        return import_callable(data["path"])
    if ref == "artifact":
        if load_artifact is None:
            raise ConfigError("An artifact reference needs a datalayer to load it; use db.load(...).")
        return load_artifact(data)
    if ref == "component":
        if load_component is None:
            raise ConfigError(f"Component reference {data!r} needs a datalayer to load it; use db.load(...).")
        return load_component(data)
    if ref is not None:
        raise ConfigError(f"Unknown reference kind {ref!r} in encoded data.")
    if "_path" in data:
        return _decode_component(data, load_component, load_artifact)
    if "_type" in data:
        from pinnacle.components.datatype import datatype_from_json

        return datatype_from_json(data)
    return {k: decode(v, load_component=load_component, load_artifact=load_artifact) for k, v in data.items()}


def _decode_component(data: dict, load_component, load_artifact) -> Encodable:
    cls = _import_component_class(data["_path"])
    kwargs = {}
    artifacts = {}
    names = {f.name for f in dc.fields(cls) if f.init}
    for key, value in data.items():
        if key == "_path":
            continue
        if key == "_artifacts":
            artifacts = {k: decode(v, load_artifact=load_artifact) for k, v in value.items()}
            continue
        if key not in names:
            raise ConfigError(f"{cls.__name__} has no field {key!r} (stored data is from another version?).")
        kwargs[key] = decode(value, load_component=load_component, load_artifact=load_artifact)
    component = cls(**kwargs)
    if artifacts:
        component.on_artifacts_loaded(artifacts)
    return component


def _import_component_class(path: str) -> type[Encodable]:
    module_name, _, name = path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as exc:
        raise NotLoadableError(
            f"Cannot import component class {path!r}: {exc}", kind="class", path=path, missing=_missing_module(exc), cause=str(exc)
        ) from exc
    if not (isinstance(cls, type) and issubclass(cls, Encodable) and dc.is_dataclass(cls)):
        raise ConfigError(f"{path!r} is not a pinnacle Component class; refusing to build it.")
    return cls


def _missing_module(exc: BaseException) -> t.Optional[str]:
    """The module a failed import could not find (``None`` for other import errors)."""
    return getattr(exc, "name", None) if isinstance(exc, ModuleNotFoundError) else None
