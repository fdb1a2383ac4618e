"""ColBERT on the bundled MiniLM: lengths, skiplist, pooling, PyLate checkpoint layout, MaxSim ranking."""

from __future__ import annotations

import json
import shutil
import string

import numpy as np
import pytest

from pinnacle import ConfigError, MultiVector
from pinnacle.backends.maxsim import maxsim

from ext_corpus import ANSWERS, CORPUS, QUERIES

pytest.importorskip("transformers")
pytest.importorskip("scipy")
safetensors_torch = pytest.importorskip("safetensors.torch")
from pinnacle.ext.colbert import ColBERT, pool_hierarchical  # noqa: E402
from pinnacle.ext.colbert import model as colbert_model  # noqa: E402

LONG = " ".join(["token"] * 400)
PUNCTUATED = "Wait, what?! Yes: commas, dots... and (brackets) - all of them."


@pytest.fixture(scope="module")
def colbert(model_path):
    return ColBERT("colbert", model_name_or_path=model_path)


def _tokens(colbert, text):
    return colbert.native[0].tokenizer.tokenize(text)


def test_shapes_lengths_and_normalisation(colbert):
    assert colbert.infer_datatype() == MultiVector(128, "float32")
    for query in ["cats", QUERIES[1], LONG]:
        q = colbert.encode(query, is_query=True)
        assert q.shape == (32, 128) and q.dtype == np.float32  # always query_length (expanded or cut)
        np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1.0, atol=1e-5)
    assert colbert.predict_query("cats").shape == (32, 128)
    docs = colbert.encode(["cats", CORPUS[4], LONG], is_query=False)
    assert docs[0].shape == (4, 128)  # [CLS] [D] cats [SEP]
    assert docs[1].shape[0] == len([t for t in _tokens(colbert, CORPUS[4]) if t not in string.punctuation]) + 3
    assert docs[2].shape == (180, 128)  # document_length
    assert [d.shape for d in colbert.predict_batches(["cats", LONG])] == [(4, 128), (180, 128)]
    np.testing.assert_allclose(np.linalg.norm(docs[1], axis=1), 1.0, atol=1e-5)


def test_queries_are_expanded_with_mask_tokens(colbert):
    checkpoint, settings, _ = colbert.native
    tokenizer = checkpoint.tokenizer
    assert tokenizer.pad_token == tokenizer.mask_token
    assert tokenizer.convert_tokens_to_ids(settings.query_prefix) == len(tokenizer) - 2  # '[Q] ' was added
    short, other = colbert.encode(["cats", "dogs"], is_query=True)
    assert not np.allclose(short[-1], other[-1])  # expansion tokens carry the query's meaning


def test_skiplist_removes_punctuation_from_documents(colbert, model_path):
    pieces = _tokens(colbert, PUNCTUATED)
    punctuation = [t for t in pieces if t in string.punctuation]
    assert len(punctuation) >= 8
    with_skip = colbert.encode(PUNCTUATED, is_query=False)
    without = ColBERT("keep", model_name_or_path=model_path, skiplist_words=[]).encode(PUNCTUATED, is_query=False)
    assert without.shape[0] == len(pieces) + 3
    assert with_skip.shape[0] == len(pieces) + 3 - len(punctuation)
    # Skipped in scoring only: the remaining vectors are the same as with the punctuation kept.
    kept = [i + 2 for i, t in enumerate(pieces) if t not in string.punctuation]
    np.testing.assert_allclose(with_skip[2:-1], without[kept], atol=1e-5)
    assert colbert.encode(PUNCTUATED, is_query=True).shape[0] == 32  # queries keep everything


def test_pool_factor_reduces_tokens(colbert, model_path):
    text = CORPUS[1] + " " + CORPUS[6] + " " + CORPUS[9]
    full = colbert.encode(text, is_query=False)
    for factor in (2, 3):
        pooled = colbert.encode(text, is_query=False, pool_factor=factor)
        assert pooled.shape[0] == 1 + (full.shape[0] - 1) // factor
        np.testing.assert_allclose(pooled[0], full[0])  # [CLS] is protected
    component = ColBERT("pooled", model_name_or_path=model_path, pool_factor=2)
    assert component.predict(text).shape[0] == 1 + (full.shape[0] - 1) // 2
    assert colbert.encode(text, is_query=True, pool_factor=2).shape[0] == 32  # queries are never pooled
    x = np.eye(4)[[0, 0, 1, 1, 2, 2, 3, 3, 3]]
    merged = pool_hierarchical(x, pool_factor=2)
    assert merged.shape == (5, 4)
    assert sorted(map(tuple, merged[1:])) == sorted(map(tuple, np.eye(4)))  # one cluster per distinct vector


def test_maxsim_ranks_the_paraphrase_first(colbert):
    documents = colbert.encode(CORPUS, is_query=False)
    for query, answer in zip(QUERIES, ANSWERS):
        q = colbert.encode(query, is_query=True)
        scores = [maxsim(q, d) for d in documents]
        assert int(np.argmax(scores)) == answer, (query, scores)
        np.testing.assert_allclose(colbert.similarity([q], documents)[0], scores, rtol=1e-5)


def test_save_load_round_trip_in_pylate_layout(colbert, tmp_path):
    folder = tmp_path / "ckpt"
    colbert.save_pretrained(folder)
    modules = json.loads((folder / "modules.json").read_text())
    assert [m["path"] for m in modules] == ["", "1_Dense"]
    assert modules[1]["type"] == "pylate.models.Dense.Dense"
    dense = json.loads((folder / "1_Dense" / "config.json").read_text())
    assert dense == {"in_features": 384, "out_features": 128, "bias": False,
                     "activation_function": "torch.nn.modules.linear.Identity"}
    weights = safetensors_torch.load_file(str(folder / "1_Dense" / "model.safetensors"))
    assert list(weights) == ["linear.weight"] and tuple(weights["linear.weight"].shape) == (128, 384)
    config = json.loads((folder / "config_sentence_transformers.json").read_text())
    assert config["model_type"] == "ColBERT" and config["similarity_fn_name"] == "MaxSim"
    assert {k: config[k] for k in ("query_prefix", "document_prefix", "query_length", "document_length")} == {
        "query_prefix": "[Q] ", "document_prefix": "[D] ", "query_length": 32, "document_length": 180}
    assert config["skiplist_words"] == list(string.punctuation) and config["attend_to_expansion_tokens"] is False
    assert (folder / "model.safetensors").exists() and not list(folder.rglob("*.bin"))

    loaded = ColBERT("loaded", model_name_or_path=str(folder))
    for a, b in zip(colbert.encode(CORPUS[:3], is_query=False), loaded.encode(CORPUS[:3], is_query=False)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(colbert.encode(QUERIES[0]), loaded.encode(QUERIES[0]))


def test_loads_a_pylate_checkpoint_with_its_settings(colbert, tmp_path):
    """A PyLate-trained folder: transformer in a subfolder, PyLate's Dense, its own lengths and skiplist."""
    saved = tmp_path / "saved"
    colbert.save_pretrained(saved)
    folder = tmp_path / "pylate"
    (folder / "0_Transformer").mkdir(parents=True)
    for item in saved.iterdir():
        target = folder / item.name if item.name in ("1_Dense", "modules.json") or item.name.startswith("config_sentence") else folder / "0_Transformer" / item.name
        shutil.copytree(item, target) if item.is_dir() else shutil.copy(item, target)
    modules = [
        {"idx": 0, "name": "0", "path": "0_Transformer", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Dense", "type": "pylate.models.Dense.Dense"},
    ]
    (folder / "modules.json").write_text(json.dumps(modules))
    config = json.loads((folder / "config_sentence_transformers.json").read_text())
    config.update(query_length=16, document_length=20, skiplist_words=[])
    (folder / "config_sentence_transformers.json").write_text(json.dumps(config))

    pylate = ColBERT("pylate", model_name_or_path=str(folder))
    assert pylate.encode("cats").shape == (16, 128)
    assert pylate.encode(LONG, is_query=False).shape == (20, 128)
    assert pylate.encode(PUNCTUATED, is_query=False).shape[0] == min(20, len(_tokens(colbert, PUNCTUATED)) + 3)
    plain = CORPUS[0].rstrip(".")  # no punctuation: same vectors with either skiplist
    np.testing.assert_allclose(pylate.encode(plain, is_query=False), colbert.encode(plain, is_query=False), atol=1e-6)
    explicit = ColBERT("explicit", model_name_or_path=str(folder), query_length=32)  # arguments override the config
    np.testing.assert_allclose(explicit.encode(QUERIES[0]), colbert.encode(QUERIES[0]), atol=1e-6)


def test_new_projection_is_seeded(model_path):
    colbert_model._cache.clear()
    a = ColBERT("a", model_name_or_path=model_path, embedding_size=64).encode("cats", is_query=False)
    colbert_model._cache.clear()
    b = ColBERT("b", model_name_or_path=model_path, embedding_size=64).encode("cats", is_query=False)
    c = ColBERT("c", model_name_or_path=model_path, embedding_size=64, seed=1).encode("cats", is_query=False)
    assert a.shape == (4, 64)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_definition_is_checked():
    with pytest.raises(ConfigError, match="model_name_or_path"):
        ColBERT("c", model_name_or_path="")
    with pytest.raises(ConfigError, match="query_length"):
        ColBERT("c", model_name_or_path="m", query_length=1)
    with pytest.raises(ConfigError, match="pool_factor"):
        ColBERT("c", model_name_or_path="m", pool_factor=0)
    with pytest.raises(ConfigError, match="skiplist_words"):
        ColBERT("c", model_name_or_path="m", skiplist_words=[1, 2])
    assert ColBERT("c", model_name_or_path="m", batch_size=4).uuid == ColBERT("c", model_name_or_path="m").uuid
    assert ColBERT("c", model_name_or_path="m", pool_factor=2).uuid != ColBERT("c", model_name_or_path="m").uuid
