"""pinnacle: AI models next to your data.

Declare a model against a table; from then on every row carries exactly one current
output (an embedding), stored in the same database and searchable.

Example:
    >>> import pinnacle
    >>> db = pinnacle.connect("sqlite://")
    >>> db["docs"].insert([{"_id": "1", "text": "hello"}])
    ['1']
"""

from pinnacle.components import Listener, Model, MultiVector, Text, TextChunker, Vector, VectorIndex, vector
from pinnacle.datalayer import Datalayer, connect
from pinnacle.embedding.drain import RetryPolicy
from pinnacle.errors import (
    BackendError,
    ConfigError,
    MissingDependencyError,
    NotFoundError,
    NotLoadableError,
    PinnacleError,
    StateError,
)

__version__ = "0.1.0"

__all__ = [
    "connect",
    "Datalayer",
    "Model",
    "Listener",
    "VectorIndex",
    "TextChunker",
    "Vector",
    "MultiVector",
    "Text",
    "vector",
    "RetryPolicy",
    "PinnacleError",
    "ConfigError",
    "StateError",
    "NotFoundError",
    "NotLoadableError",
    "BackendError",
    "MissingDependencyError",
]
