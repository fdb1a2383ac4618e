"""TextChunker: split long texts into overlapping chunks, one output per chunk (``flatten``)."""

from __future__ import annotations

import dataclasses as dc
import re
import threading
import typing as t

from pinnacle.components.datatype import Text
from pinnacle.components.model import Model, Signature
from pinnacle.errors import ConfigError

__all__ = ["TextChunker", "Unit", "UNITS", "split_chars", "split_offsets"]

Unit = t.Literal["chars", "tokens"]
UNITS: tuple[str, ...] = t.get_args(Unit)

_tokenizers: dict[str, t.Any] = {}
_tokenizers_lock = threading.Lock()
_SPACE = re.compile(r"\s")


@dc.dataclass(kw_only=True, repr=False)
class TextChunker(Model):
    """Split each text into chunks of at most ``size`` characters or tokens, overlapping by ``overlap``.

    A listener running it stores one output per chunk (``flatten=True``), as text, so a
    second listener can embed the chunks: select ``db.outputs_table("<chunker listener>")``
    with key ``"_output"``. Stability: beta.

    Args:
        size: Longest chunk, in ``unit`` s. For ``unit="tokens"`` keep it at most the
            downstream model's window minus its special tokens (all-MiniLM-L6-v2: 254).
        overlap: How much of the end of a chunk the next one repeats (less than ``size``).
        unit: ``"chars"`` (no dependency; chunks end at a space where one is near the limit)
            or ``"tokens"`` (counted by ``tokenizer``).
        tokenizer: For ``unit="tokens"``: a Hugging Face tokenizer name or local folder,
            usually the downstream model's (``pip install 'pinnacle[transformers]'``).

    Example:
        >>> chunker = TextChunker("chunker", size=12, overlap=4)
        >>> chunker.predict("one two three four five six")
        ['one two', 'two three', 'three four', 'four five', 'five six']
    """

    signature: Signature = "singleton"
    flatten: bool = True
    datatype: t.Any = dc.field(default_factory=Text)
    size: int = 500
    overlap: int = 50
    unit: Unit = "chars"
    tokenizer: t.Optional[str] = None

    def __post_init__(self, db=None, artifacts=None) -> None:
        owner = f"TextChunker {self.identifier!r}"
        if self.unit not in UNITS:
            raise ConfigError(f"{owner}: unit {self.unit!r} is not valid; valid ones are {list(UNITS)}.")
        if isinstance(self.size, bool) or not isinstance(self.size, int) or self.size <= 0:
            raise ConfigError(f"{owner}: size must be a positive integer, got {self.size!r}.")
        if isinstance(self.overlap, bool) or not isinstance(self.overlap, int) or not 0 <= self.overlap < self.size:
            raise ConfigError(f"{owner}: overlap must be an integer from 0 to size - 1 ({self.size - 1}), got {self.overlap!r}.")
        if self.unit == "tokens" and not self.tokenizer:
            raise ConfigError(f"{owner}: unit='tokens' needs a tokenizer (a Hugging Face name or folder, e.g. the downstream model's).")
        if not self.flatten:
            raise ConfigError(f"{owner}: a chunker returns a list per text; flatten must stay True.")
        if not isinstance(self.datatype, Text):
            raise ConfigError(f"{owner}: chunks are text; leave datatype at its default (Text()).")
        super().__post_init__(db, artifacts)

    def predict(self, text: str) -> list[str]:
        """The chunks of ``text``, in order (none for a blank text)."""
        if self.unit == "chars":
            return split_chars(text, self.size, self.overlap)
        offsets = self._offsets(text)
        return [text[a:b] for a, b in split_offsets(offsets, self.size, self.overlap)]

    def validate_input(self, x: t.Any) -> t.Optional[str]:
        if x is None:
            return "the text is missing (None)"
        if not isinstance(x, str):
            return f"expected text (str) but got {type(x).__name__}"
        return None

    def infer_datatype(self) -> Text:
        return Text()

    def _offsets(self, text: str) -> list[tuple[int, int]]:
        """``(start, end)`` character offsets of each token of ``text``."""
        tokenizer = _load_tokenizer(self.tokenizer)
        encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
        return [(a, b) for a, b in encoded["offset_mapping"] if b > a]


def split_chars(text: str, size: int, overlap: int) -> list[str]:
    """Chunks of at most ``size`` characters, each starting ``overlap`` characters before the
    end of the previous one; a chunk ends at whitespace when there is some in its second half.

    Example:
        >>> split_chars("aaaa bbbb cccc", 9, 0)
        ['aaaa bbbb', 'cccc']
    """
    chunks: list[str] = []
    start, n = 0, len(text)
    while start < n:
        while start < n and text[start].isspace():
            start += 1
        if start >= n:
            break
        end = min(start + size, n)
        if end < n and not text[end].isspace():  # do not cut a word in two
            cut = _last_space(text, start + size // 2, end)
            if cut is not None:
                end = cut
        piece = text[start:end].strip()
        if piece:
            chunks.append(piece)
        if end >= n:
            break
        start = _word_start(text, max(end - overlap, start + 1), start, end) if overlap else end
    return chunks


def _word_start(text: str, at: int, lo: int, hi: int) -> int:
    """``at`` moved to the start of a word: forward (before ``hi``), else backward (after ``lo``)."""
    if text[at - 1].isspace():
        return at
    for i in range(at, hi):
        if text[i].isspace():
            return i + 1
    space = _last_space(text, lo + 1, at)
    return space + 1 if space is not None else at


def _last_space(text: str, lo: int, hi: int) -> t.Optional[int]:
    """Index of the last whitespace in ``text[lo:hi]``, or ``None``."""
    for i in range(min(hi, len(text)) - 1, max(lo, 0) - 1, -1):
        if text[i].isspace():
            return i
    return None


def split_offsets(offsets: t.Sequence[tuple[int, int]], size: int, overlap: int) -> list[tuple[int, int]]:
    """Character spans of windows of at most ``size`` tokens, each starting about ``overlap``
    tokens before the end of the previous one. Windows start and end at word boundaries
    where one is near (a token right after another, like ``##ing``, continues a word), so
    each chunk tokenizes again to the same tokens.

    Example:
        >>> split_offsets([(0, 3), (4, 7), (8, 11), (12, 15)], 3, 1)
        [(0, 11), (8, 15)]
    """
    n = len(offsets)

    def starts_word(i: int) -> bool:
        return i == 0 or offsets[i][0] > offsets[i - 1][1]

    spans: list[tuple[int, int]] = []
    first = 0
    while first < n:
        last = min(first + size, n) - 1
        if last < n - 1:
            for end in range(last, first + size // 2 - 1, -1):
                if starts_word(end + 1):
                    last = end
                    break
        spans.append((offsets[first][0], offsets[last][1]))
        if last >= n - 1:
            break
        nxt = max(last + 1 - overlap, first + 1)
        j = nxt
        while j <= last and not starts_word(j):  # forward to a word start within the overlap
            j += 1
        if j > last:
            j = nxt
            while j > first + 1 and not starts_word(j):
                j -= 1
        first = j
    return spans


def _load_tokenizer(name: str) -> t.Any:
    """A fast Hugging Face tokenizer (it reports offsets), loaded once per process."""
    with _tokenizers_lock:
        found = _tokenizers.get(name)
        if found is None:
            from pinnacle._deps import require

            transformers = require("transformers", extra="transformers")
            found = transformers.AutoTokenizer.from_pretrained(name, use_fast=True)
            if not getattr(found, "is_fast", False):
                raise ConfigError(f"Tokenizer {name!r} has no fast (Rust) version; TextChunker needs one for character offsets.")
            _tokenizers[name] = found
        return found
