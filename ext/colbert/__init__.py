"""ColBERT (late interaction) models as pinnacle components, after PyLate's API.

Rows get one vector per token (a ``MultiVector``); ``VectorIndex(measure="maxsim")``
ranks them by MaxSim. Importing this package does not import torch or transformers.

Example:
    >>> from pinnacle.ext.colbert import ColBERT
    >>> ColBERT("colbert", model_name_or_path="all-MiniLM-L6-v2").pool_factor
    1
"""

from pinnacle.ext.colbert.model import ColBERT
from pinnacle.ext.colbert.pooling import pool_hierarchical

__all__ = ["ColBERT", "pool_hierarchical"]
