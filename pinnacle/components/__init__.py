"""Model, Listener, VectorIndex, TextChunker and datatypes."""

from pinnacle.components.chunker import TextChunker
from pinnacle.components.datatype import MultiVector, Text, Vector, vector
from pinnacle.components.listener import Listener
from pinnacle.components.model import Model
from pinnacle.components.vector_index import VectorIndex

__all__ = ["Model", "Listener", "VectorIndex", "TextChunker", "Vector", "MultiVector", "Text", "vector"]
