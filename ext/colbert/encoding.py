"""Tokenize with prefixes and query expansion, run the network, keep the scored token vectors."""

from __future__ import annotations

import dataclasses as dc
import string
import typing as t

import numpy as np

from pinnacle._deps import require
from pinnacle.ext.colbert.checkpoint import Checkpoint
from pinnacle.ext.colbert.pooling import pool_hierarchical
from pinnacle.ext.transformers._hf import chunks

__all__ = ["Settings", "encode_texts", "DEFAULT_SKIPLIST"]

#: Skipped in document scoring by default: every ASCII punctuation character.
DEFAULT_SKIPLIST: tuple[str, ...] = tuple(string.punctuation)


@dc.dataclass(frozen=True)
class Settings:
    """PyLate's settings once resolved (argument, else checkpoint config, else default)."""

    query_prefix: str = "[Q] "
    document_prefix: str = "[D] "
    query_length: int = 32
    document_length: int = 180
    attend_to_expansion_tokens: bool = False
    skiplist_words: tuple[str, ...] = DEFAULT_SKIPLIST
    do_query_expansion: bool = True
    add_special_tokens: bool = True

    def to_config(self) -> dict[str, t.Any]:
        """The keys PyLate writes to ``config_sentence_transformers.json``."""
        return {
            "query_prefix": self.query_prefix,
            "document_prefix": self.document_prefix,
            "query_length": self.query_length,
            "document_length": self.document_length,
            "attend_to_expansion_tokens": self.attend_to_expansion_tokens,
            "skiplist_words": list(self.skiplist_words),
            "do_query_expansion": self.do_query_expansion,
        }


def skiplist_ids(tokenizer: t.Any, words: t.Sequence[str]) -> list[int]:
    """Token ids of ``words`` that are single tokens of the vocabulary (unknown words are dropped)."""
    vocab = tokenizer.get_vocab()
    return sorted({vocab[w] for w in words if w in vocab})


def _insert(column: t.Any, value: int, torch: t.Any) -> t.Any:
    """``column`` with ``value`` inserted at position 1 of every row (after ``[CLS]``)."""
    fill = torch.full((column.shape[0], 1), value, dtype=column.dtype, device=column.device)
    return torch.cat([column[:, :1], fill, column[:, 1:]], dim=1)


def encode_texts(
    checkpoint: Checkpoint,
    settings: Settings,
    texts: t.Sequence[str],
    *,
    is_query: bool,
    batch_size: int,
    skip_ids: t.Sequence[int],
    normalize: bool = True,
    pool_factor: int = 1,
    protected_tokens: int = 1,
) -> list[np.ndarray]:
    """Token vectors of ``texts``: ``query_length`` per query, at most ``document_length`` per document.

    Queries keep every position (the ``[MASK]`` expansion tokens too); documents drop
    padding and skiplist tokens (after the forward pass: they still give context), then
    are pooled when ``pool_factor > 1``.
    """
    torch = require("torch", extra="colbert")
    tokenizer, transformer = checkpoint.tokenizer, checkpoint.transformer
    prefix = settings.query_prefix if is_query else settings.document_prefix
    prefix_id = tokenizer.convert_tokens_to_ids(prefix) if prefix and settings.add_special_tokens else None
    length = settings.query_length if is_query else settings.document_length
    expand = is_query and settings.do_query_expansion
    device = next(transformer.parameters()).device
    skip = torch.tensor(list(skip_ids), dtype=torch.long, device=device)
    out: list[np.ndarray] = []
    for batch in chunks([str(x).strip() for x in texts], batch_size):
        features = tokenizer(
            list(batch),
            padding="max_length" if expand else True,
            truncation=True,
            max_length=length - 1 if prefix_id is not None else length,
            return_tensors="pt",
        )
        features = {k: v.to(device) for k, v in features.items()}
        if prefix_id is not None:
            features["input_ids"] = _insert(features["input_ids"], prefix_id, torch)
            features["attention_mask"] = _insert(features["attention_mask"], 1, torch)
            if "token_type_ids" in features:
                features["token_type_ids"] = _insert(features["token_type_ids"], 0, torch)
        attention = features["attention_mask"].bool()
        if expand and settings.attend_to_expansion_tokens:
            features["attention_mask"] = torch.ones_like(features["attention_mask"])
        with torch.inference_mode():
            hidden = transformer(**features).last_hidden_state
            vectors = checkpoint.projection(hidden)
        if expand:
            keep = torch.ones_like(attention)
        elif is_query:
            keep = attention
        else:
            keep = attention & ~torch.isin(features["input_ids"], skip)
        for row, mask in zip(vectors, keep):
            tokens = row[mask]
            if normalize:
                tokens = torch.nn.functional.normalize(tokens, p=2, dim=1)
            array = tokens.float().cpu().numpy()
            if not is_query and pool_factor > 1:
                array = pool_hierarchical(array, pool_factor, protected_tokens)
            out.append(array)
    return out
