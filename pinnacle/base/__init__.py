"""Component base, JSON encoding and the artifact store."""

from pinnacle.base.component import Component
from pinnacle.base.encoding import decode, encode

__all__ = ["Component", "encode", "decode"]
