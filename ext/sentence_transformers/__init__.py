"""sentence-transformers models as pinnacle components.

Example:
    >>> from pinnacle.ext.sentence_transformers import SentenceTransformer
    >>> SentenceTransformer(identifier="minilm", model="all-MiniLM-L6-v2").signature
    'singleton'
"""

from pinnacle.ext.sentence_transformers.model import SentenceTransformer

__all__ = ["SentenceTransformer"]
