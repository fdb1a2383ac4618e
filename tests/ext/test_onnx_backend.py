"""backend="onnx": the encoder exported once, stored with the model, run by ONNX Runtime everywhere."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import pinnacle
from pinnacle import ConfigError, MissingDependencyError
from pinnacle.base.artifacts import IntegrityError

from ext_corpus import ANSWERS, CORPUS, QUERIES

pytest.importorskip("onnxruntime")
from pinnacle.ext.onnx import MANIFEST, OnnxExportError, build_onnx_folder, export_encoder, onnx_file  # noqa: E402
from pinnacle.ext.sentence_transformers import SentenceTransformer  # noqa: E402
from pinnacle.ext.transformers import TextEncoder  # noqa: E402


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


@pytest.fixture(scope="module")
def onnx_st(model_path):
    return SentenceTransformer(identifier="minilm-onnx", model=model_path, backend="onnx")


@pytest.fixture(scope="module")
def reference(st_native):
    return st_native.encode(CORPUS, convert_to_numpy=True)


def test_onnx_gives_the_torch_vectors(onnx_st, reference, st_native, model_path):
    ours = np.stack(onnx_st.predict_batches(CORPUS))
    np.testing.assert_allclose(ours, reference, atol=1e-5)
    assert _cosines(ours, reference).min() >= 0.9999
    np.testing.assert_allclose(onnx_st.predict_query(QUERIES[0]), st_native.encode_query(QUERIES[0]), atol=1e-5)
    assert type(onnx_st.native[0].auto_model).__name__ == "OnnxModule"  # the torch model is not what runs
    encoder = TextEncoder("minilm-hf-onnx", model=model_path, backend="onnx")
    np.testing.assert_allclose(np.stack(encoder.predict_batches(CORPUS)), reference, atol=1e-5)


def test_int8_is_close_and_keeps_the_neighbours(model_path, reference, st_native):
    int8 = SentenceTransformer(identifier="minilm-int8", model=model_path, backend="onnx", quantize="int8")
    ours = np.stack(int8.predict_batches(CORPUS))
    assert _cosines(ours, reference).min() >= 0.9
    assert not np.allclose(ours, reference, atol=1e-4)  # it is quantized: the vectors moved
    queries = st_native.encode(QUERIES)
    assert ((np.stack([int8.predict_query(q) for q in QUERIES]) @ ours.T).argmax(1) == (queries @ reference.T).argmax(1)).all()
    assert [CORPUS[i] for i in (queries @ ours.T).argmax(1)] == [CORPUS[i] for i in ANSWERS]
    manifest = json.loads((int8._onnx.current()["onnx"] / MANIFEST).read_text())
    assert manifest["file"].startswith("model_qint8_") and manifest["quantization"]["dtype"] == "int8"


def test_options_that_change_vectors_are_in_the_uuid(model_path):
    base = SentenceTransformer(identifier="m", model=model_path)
    same = [
        SentenceTransformer(identifier="m", model=model_path, trust_remote_code=False, cache_folder=None),
        SentenceTransformer(identifier="m", model=model_path, local_files_only=True, cache_folder="/tmp/hf"),
    ]
    assert {m.uuid for m in same} == {base.uuid}
    # Options added after seed 000 leave the definition (and so every stored uuid) as it was:
    # these are the uuids pinnacle gave the same definitions before the options existed.
    assert not {"backend", "quantize", "model_kwargs", "prompts", "truncate_dim"} & set(base.definition())
    earlier = SentenceTransformer(identifier="m", model="/x", predict_kwargs={"normalize_embeddings": True})
    assert earlier.uuid == "cdf6199a8d86d609b3a0bbe8c78c6eb3"
    assert TextEncoder("t", model="/x").uuid == "541e8cc5920caafb486e17fca224b552"
    onnx = SentenceTransformer(identifier="m", model=model_path, backend="onnx")
    provider = SentenceTransformer(identifier="m", model=model_path, backend="onnx",
                                   model_kwargs={"provider": "CPUExecutionProvider", "export": True})
    assert provider.uuid == onnx.uuid != base.uuid
    changed = [
        onnx,
        SentenceTransformer(identifier="m", model=model_path, backend="onnx", quantize="int8"),
        SentenceTransformer(identifier="m", model=model_path, backend="onnx", model_kwargs={"file_name": "onnx/model_O3.onnx"}),
        SentenceTransformer(identifier="m", model=model_path, truncate_dim=128),
        SentenceTransformer(identifier="m", model=model_path, prompts={"query": "query: "}),
        SentenceTransformer(identifier="m", model=model_path, revision="v2"),
        SentenceTransformer(identifier="m", model=model_path, tokenizer_kwargs={"model_max_length": 64}),
    ]
    assert len({m.uuid for m in changed} | {base.uuid}) == len(changed) + 1
    assert TextEncoder("t", model="m", backend="onnx").uuid != TextEncoder("t", model="m").uuid


def test_loading_options_reach_sentence_transformers(model_path, st_native):
    short = SentenceTransformer(identifier="short", model=model_path, truncate_dim=64,
                                prompts={"query": "query: ", "document": ""}, backend="onnx")
    assert short.infer_datatype() == pinnacle.Vector(64, "float32")
    np.testing.assert_allclose(short.predict("a cat"), st_native.encode("a cat")[:64], atol=1e-5)
    np.testing.assert_allclose(short.predict_query("a cat"), st_native.encode("query: a cat")[:64], atol=1e-5)


def test_options_are_checked(model_path):
    cases = [
        (dict(backend="tensorrt"), r"backend 'tensorrt' is not valid; valid ones are \['torch', 'onnx', 'openvino'\]"),
        (dict(quantize="int8"), "quantize='int8' needs backend='onnx'"),
        (dict(backend="onnx", quantize="int4"), "quantize 'int4' is not valid"),
        (dict(prompts={"query": "q: "}, default_prompt_name="document"), "default_prompt_name 'document' is not one of"),
        (dict(truncate_dim=0), "truncate_dim must be a positive integer"),
        (dict(model_kwargs="onnx/model.onnx"), "model_kwargs must be a dict"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ConfigError, match=message):
            SentenceTransformer(identifier="bad", model=model_path, **kwargs)
    with pytest.raises(ConfigError, match="needs model="):
        SentenceTransformer(identifier="bad", object=object(), backend="onnx")
    with pytest.raises(ConfigError, match="backend 'openvino' is not valid"):
        TextEncoder("bad", model=model_path, backend="openvino")


def test_missing_onnxruntime_names_the_pip_line(model_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if it were not installed
    model = SentenceTransformer(identifier="no-ort", model=model_path, backend="onnx")
    with pytest.raises(MissingDependencyError, match=r"pip install 'pinnacle\[onnx\]'"):
        model.predict("hello")


def test_openvino_without_optimum_names_the_pip_line(model_path):
    pytest.importorskip("sentence_transformers")
    if __import__("importlib").util.find_spec("optimum") is not None:
        pytest.skip("optimum is installed here")
    model = SentenceTransformer(identifier="ov", model=model_path, backend="openvino")
    with pytest.raises(MissingDependencyError, match=r"optimum-intel.*pip install 'sentence-transformers\[openvino\]'"):
        model.predict("hello")


def test_failed_export_names_the_model_and_the_cause(st_native, tmp_path):
    torch = pytest.importorskip("torch")

    class Broken(torch.nn.Module):
        def forward(self, input_ids, attention_mask=None, return_dict=True):
            raise RuntimeError("this layer cannot be traced")

    with pytest.raises(OnnxExportError, match=r"SentenceTransformer 'b': could not export the model to ONNX \(.*cannot be traced"):
        export_encoder(Broken(), st_native.tokenizer, tmp_path / "model.onnx", owner="SentenceTransformer 'b'")


def test_a_folder_that_has_an_onnx_file_is_not_exported_again(model_path, onnx_st, tmp_path, monkeypatch):
    folder = tmp_path / "with-onnx"
    shutil.copytree(model_path, folder)
    (folder / "onnx").mkdir()
    stored = onnx_st._onnx.current()["onnx"]
    shutil.copyfile(onnx_file(stored, owner="t")[0], folder / "onnx" / "model.onnx")
    monkeypatch.setattr("pinnacle.ext.onnx.export.export_encoder", _no_export)
    model = SentenceTransformer(identifier="has-onnx", model=str(folder), backend="onnx")
    np.testing.assert_allclose(model.predict("hello"), onnx_st.predict("hello"), atol=1e-6)
    manifest = json.loads((model._onnx.current()["onnx"] / MANIFEST).read_text())
    assert manifest["from"] == "model.onnx"
    missing = SentenceTransformer(identifier="named", model=str(folder), backend="onnx",
                                  model_kwargs={"file_name": "onnx/model_O4.onnx"})
    with pytest.raises(OnnxExportError, match=r"file_name 'onnx/model_O4.onnx' is not in .*onnx/model.onnx"):
        missing.predict("hello")


def test_an_altered_onnx_file_is_refused(onnx_st, tmp_path):
    folder = tmp_path / "export"
    shutil.copytree(onnx_st._onnx.current()["onnx"], folder)
    path, manifest = onnx_file(folder, owner="SentenceTransformer 'm'")
    with open(path, "r+b") as fh:
        fh.seek(1000)
        fh.write(b"\x00" * 16)
    with pytest.raises(IntegrityError, match=r"SentenceTransformer 'm': the stored ONNX file .* does not match its sha256"):
        onnx_file(folder, owner="SentenceTransformer 'm'")


def _no_export(*args, **kwargs):
    raise AssertionError("exported again")


# -- through a listener, on every backend ------------------------------------------------
FRESH_PROCESS = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import pinnacle
    import pinnacle.ext.onnx.export as export

    def refuse(*args, **kwargs):
        raise AssertionError("a fresh process exported the model again")

    export.export_encoder = export.build_onnx_folder = refuse
    db = pinnacle.connect(sys.argv[1])
    db["docs"].insert([{"_id": "fresh", "text": sys.argv[2]}])
    model = db.load("Model", "minilm-onnx")
    print(json.dumps({"runs": type(model.native[0].auto_model).__name__, "vector": db.outputs("docs-emb")["fresh"].tolist()}))
    """
)


def test_listener_with_onnx_backend(db, backend_uri, model_path, st_native, tmp_path):
    db["docs"].insert([{"_id": f"d{i}", "text": text} for i, text in enumerate(CORPUS)])
    model = SentenceTransformer(identifier="minilm-onnx", model=model_path, backend="onnx")
    db.apply(pinnacle.VectorIndex("docs-idx", indexing_listener=pinnacle.Listener("docs-emb", model=model, key="text", select="docs")))
    outputs = db.outputs("docs-emb")
    np.testing.assert_allclose(np.stack([outputs[f"d{i}"] for i in range(len(CORPUS))]), st_native.encode(CORPUS), atol=1e-5)
    hits = db["docs"].like({"text": QUERIES[0]}, vector_index="docs-idx", n=1)
    assert hits[0]["text"] == CORPUS[ANSWERS[0]]
    assert set(db.show("Model", "minilm-onnx")["data"]["_artifacts"]) == {"model", "onnx"}

    # Re-applying the same definition runs the stored export too.
    again = SentenceTransformer(identifier="minilm-onnx", model=model_path, backend="onnx")
    db.apply(again)
    assert again._onnx.ref is not None and again._onnx.ref.sha256 == model._onnx.ref.sha256
    if backend_uri.startswith("mongomock://"):
        return  # an in-memory database: no other process can open it

    # A new process (empty artifact cache) runs the stored file; it never exports.
    env = {**os.environ, "PINNACLE_CACHE": str(tmp_path / "fresh-cache"), "HF_HUB_OFFLINE": "1"}
    text = "a sentence embedded by another process"
    done = subprocess.run([sys.executable, "-c", FRESH_PROCESS, backend_uri, text], env=env, capture_output=True,
                          text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["runs"] == "OnnxModule"
    np.testing.assert_allclose(result["vector"], st_native.encode(text), atol=1e-5)


@pytest.mark.parametrize("backend_kind", [pytest.param("sqlite", marks=pytest.mark.sqlite)], indirect=True)
def test_text_encoder_onnx_loads_no_torch_weights(db, model_path, st_native, monkeypatch):
    encoder = TextEncoder("minilm-hf-onnx", model=model_path, backend="onnx", quantize="int8")
    db["docs"].insert([{"_id": f"d{i}", "text": text} for i, text in enumerate(CORPUS)])
    db.apply(pinnacle.Listener("docs-emb", model=encoder, key="text", select="docs"))
    assert set(db.show("Model", "minilm-hf-onnx")["data"]["_artifacts"]) == {"model", "onnx"}
    monkeypatch.setattr("pinnacle.ext.onnx.export.build_onnx_folder", _no_export)
    monkeypatch.setattr("pinnacle.ext.transformers.encoder._load", _no_export)  # the torch weights
    from pinnacle.ext.transformers.encoder import _cache

    _cache.clear()
    loaded = db.load("Model", "minilm-hf-onnx")
    vectors = np.stack(loaded.predict_batches(CORPUS))
    stored = db.outputs("docs-emb")
    np.testing.assert_allclose(vectors, np.stack([stored[f"d{i}"] for i in range(len(CORPUS))]), atol=1e-6)
    assert _cosines(vectors, st_native.encode(CORPUS)).min() >= 0.9
