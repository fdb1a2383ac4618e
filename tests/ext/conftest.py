"""Fixtures of the ext tests: the corpus as rows, and a reader of stored artifacts."""

from __future__ import annotations

import io
import tarfile

import pytest

from ext_corpus import CORPUS


@pytest.fixture
def corpus_rows():
    return [{"_id": f"r{i:02d}", "text": text} for i, text in enumerate(CORPUS)]


@pytest.fixture
def artifact_files():
    """``artifact_files(ref)``: ``{name: bytes}`` of a stored directory artifact (read back from the database)."""

    def read(ref) -> dict:
        with tarfile.open(fileobj=io.BytesIO(ref.read_bytes())) as tar:
            return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}

    return read
