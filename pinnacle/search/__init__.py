"""Search: ``like()`` over a VectorIndex, and the run-time form of each index.

- :mod:`pinnacle.search.indexes`: :class:`DatabaseIndex` (the database searches, e.g.
  pgvector) or :class:`LiveIndex` (an in-memory copy of a listener's outputs kept fresh).
- :mod:`pinnacle.search.similar`: :class:`Search`, which turns a query row into a vector
  with the index's model and the hits into rows of the table.
"""

from pinnacle.search.indexes import DatabaseIndex, LiveIndex, open_index
from pinnacle.search.similar import Search

__all__ = ["Search", "DatabaseIndex", "LiveIndex", "open_index"]
