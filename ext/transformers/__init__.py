"""Hugging Face transformers models as pinnacle components.

``TextEncoder`` embeds text with any encoder (``AutoModel`` + mean or CLS pooling);
``Pipeline`` wraps a ``transformers.pipeline``. Importing this package does not
import torch or transformers; the model loads on first use.

Example:
    >>> from pinnacle.ext.transformers import TextEncoder
    >>> TextEncoder("minilm", model="all-MiniLM-L6-v2").pooling is None  # read from the checkpoint
    True
"""

from pinnacle.ext.transformers.encoder import POOLINGS, TextEncoder
from pinnacle.ext.transformers.pipeline import Pipeline, mean_pool

__all__ = ["TextEncoder", "Pipeline", "mean_pool", "POOLINGS"]
