"""VectorIndex ``index``/``index_options``: validated at construction, with the valid choices named."""

from __future__ import annotations

import pytest

from pinnacle import ConfigError, Listener, VectorIndex
from pinnacle.components.model import Model


@pytest.fixture
def listener():
    return Listener("docs-emb", model=Model("m"), key="text", select="docs")


def test_defaults_and_overrides(listener):
    assert VectorIndex("i", indexing_listener=listener).options() == {}
    hnsw = VectorIndex("i", indexing_listener=listener, index="hnsw", index_options={"m": 32})
    assert hnsw.options() == {"m": 32, "ef_construction": 64, "ef_search": 40}
    assert VectorIndex("i", indexing_listener=listener, index="ivfflat").options() == {"lists": None, "probes": 10}
    assert hnsw.uuid != VectorIndex("i", indexing_listener=listener).uuid  # a new version, same outputs


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"index": "annoy"}, r"valid ones are \['hnsw', 'ivfflat'\]"),
        ({"index": "hnsw", "index_options": {"lists": 4}}, r"no option 'lists'; valid ones are \['m', 'ef_construction', 'ef_search'\]"),
        ({"index": "hnsw", "index_options": {"m": 0}}, "positive integer"),
        ({"index": "ivfflat", "index_options": {"probes": True}}, "positive integer"),
        ({"index_options": {"m": 8}}, "need an index"),
        ({"index": "hnsw", "measure": "maxsim"}, "maxsim"),
    ],
)
def test_invalid(listener, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        VectorIndex("i", indexing_listener=listener, **kwargs)
