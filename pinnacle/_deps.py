"""One helper to import optional heavy dependencies lazily, naming the extra to install."""

from __future__ import annotations

import importlib
from types import ModuleType

from pinnacle.errors import MissingDependencyError


def require(module: str, extra: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependencyError` with the pip line.

    Example:
        >>> require("json", extra="core").__name__
        'json'
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"{module!r} is needed here but is not installed. "
            f"Install it with: pip install 'pinnacle[{extra}]'"
        ) from exc
