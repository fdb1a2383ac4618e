"""Model, Listener, VectorIndex and datatypes."""

from pinnacle.components.datatype import MultiVector, Vector, vector
from pinnacle.components.listener import Listener
from pinnacle.components.model import Model
from pinnacle.components.vector_index import VectorIndex

__all__ = ["Model", "Listener", "VectorIndex", "Vector", "MultiVector", "vector"]
