"""Components this process cannot build (issue 18): another service's model class, a
``preprocess`` function or an artifact that is not here.

Two services share one database, each with its own model code. Here the other service's
code is a module written into a temporary folder: importable while the folder is on
``sys.path`` (the other service applies with it, in this process or in a subprocess),
then taken off the path, so a fresh datalayer is a process without it. Everything else
keeps working, the listener's rows stay queued, and a process that has the module
computes them.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import numpy as np
import pytest

import pinnacle
from pinnacle import NotFoundError, NotLoadableError

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))  # service_models must import by name
from service_models import NeedsLibrary, Words, words_vector  # noqa: E402

FOREIGN = '''
"""Another service's model code."""
import dataclasses as dc

from service_models import Words


def shout(text):
    return text.upper()


@dc.dataclass(kw_only=True, repr=False)
class ServiceEmbedder(Words):
    """Another service's model class."""
'''

SVC_ROWS = [{"_id": f"s{i}", "text": f"service row number {i}"} for i in range(3)]


class Service:
    """The other service's module: ``with svc.importable(): ...`` has it on the path."""

    def __init__(self, folder: Path, source: str = FOREIGN):
        self.name = f"svc_{uuid.uuid4().hex[:8]}"
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{self.name}.py").write_text(source)

    @contextlib.contextmanager
    def importable(self):
        sys.path.insert(0, str(self.folder))
        importlib.invalidate_caches()
        try:
            yield importlib.import_module(self.name)
        finally:
            sys.path.remove(str(self.folder))
            sys.modules.pop(self.name, None)
            importlib.invalidate_caches()

    def env(self) -> dict[str, str]:
        """The environment of a process that has the module."""
        path = os.pathsep.join([str(self.folder), str(HERE), os.environ.get("PYTHONPATH", "")])
        return {**os.environ, "PYTHONPATH": path}


@pytest.fixture
def service(tmp_path) -> Service:
    return Service(tmp_path / "service-code")


@pytest.fixture
def pn_warnings(caplog):
    """``pn_warnings(text)``: the pinnacle warnings logged so far that contain ``text``."""
    caplog.set_level(logging.WARNING, logger="pinnacle")

    def found(text: str) -> list[str]:
        return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and text in r.getMessage()]

    return found


def _apply_service(db, module, **model_kwargs):
    """The other service's listener ``svc-emb`` (and index ``svc-idx``) on table ``svc_docs``."""
    db["svc_docs"].insert(SVC_ROWS)
    model = module.ServiceEmbedder(identifier="svc-model", **model_kwargs)
    listener = pinnacle.Listener("svc-emb", model=model, key="text", select=db["svc_docs"])
    db.apply(pinnacle.VectorIndex("svc-idx", indexing_listener=listener))
    assert db.status()["svc-emb"]["outputs"] == len(SVC_ROWS)


def _assert_outputs(db_status: dict, pending: int, outputs: int) -> None:
    assert (db_status["pending"], db_status["outputs"]) == (pending, outputs), db_status


def test_listener_whose_model_class_does_not_import(indexed, connect, service, rows, pn_warnings, schemaless):
    with service.importable() as module:
        _apply_service(indexed, module)
    path = f"{service.name}.ServiceEmbedder"

    db = connect()  # a process without the other service's module
    # writes, reads and search of everything else work
    db["docs"].insert([{"_id": "new", "topic": "tech", "text": "The cluster rebooted after the kernel update."}])
    assert "new" in db.outputs("docs-emb")
    assert db["docs"].like({"text": "The cluster rebooted after the kernel update."}, vector_index="docs-idx", n=1)[0]["_id"] == "new"
    assert db["docs"].get("d03")["topic"] == "travel" and db["svc_docs"].count() == len(SVC_ROWS)
    # apply of another component works, and computes its rows
    db.apply(pinnacle.Listener("words", model=Words(identifier="words"), key="text", select=db["docs"]))
    np.testing.assert_allclose(db.outputs("words")["d00"], words_vector(rows[0]["text"]), atol=1e-6)

    # a write to the table it reads succeeds; its rows stay queued, and insert() says so once
    assert db["svc_docs"].insert([{"_id": "s9", "text": "written by the search service"}]) == ["s9"]
    db["svc_docs"].update({"_id": "s0"}, {"text": "service row zero, changed"})
    db["svc_docs"].insert([{"_id": "s10", "text": "and another"}])
    (queued,) = pn_warnings("stay queued for Listener 'svc-emb'")
    assert "svc_docs" in queued and service.name in queued

    status = db.status()
    _assert_outputs(status["svc-emb"], pending=3, outputs=len(SVC_ROWS))
    assert status["svc-emb"]["loadable"] is False and status["svc-emb"]["version"] == 0
    assert path in status["svc-emb"]["error"] and f"No module named '{service.name}'" in status["svc-emb"]["error"]
    assert "loadable" not in status["docs-emb"] and status["docs-emb"]["pending"] == 0
    assert db.drain().rows == 0  # nothing it can compute; the other rows stay queued
    _assert_outputs(db.status()["svc-emb"], pending=3, outputs=len(SVC_ROWS))

    # one warning per process, naming the listener, the class path and the missing module
    (skipped,) = pn_warnings("Listener 'svc-emb' (version 0) cannot be loaded")
    assert path in skipped and f"install module {service.name!r}" in skipped and "stay queued" in skipped
    assert len(pn_warnings("VectorIndex 'svc-idx' (version 0) cannot be loaded")) == 1
    connect().status()  # another datalayer in the same process: no new warning
    assert len(pn_warnings("cannot be loaded in this process:")) == 2

    # what needs the model says why it cannot be had here
    with pytest.raises(NotLoadableError, match="Model 'svc-model' has class") as info:
        db.load("Listener", "svc-emb")
    assert info.value.path == path and info.value.missing == service.name and info.value.kind == "class"
    with pytest.raises(NotLoadableError, match="VectorIndex 'svc-idx'"):
        db["svc_docs"].like({"text": "service"}, vector_index="svc-idx", n=1)
    with pytest.raises(NotLoadableError, match="svc-emb"):
        db.drain("svc-emb")
    assert [(e["type"], e["identifier"], e["kind"], e["path"]) for e in db.not_loadable()] == [
        ("Listener", "svc-emb", "class", path), ("VectorIndex", "svc-idx", "class", path),
    ]
    assert db.listeners() == ["docs-emb", "words"]

    # a later process that has the module computes the queued rows
    with service.importable():
        later = connect()
        stats = later.drain()
        assert stats.outputs == 3
        _assert_outputs(later.status()["svc-emb"], pending=0, outputs=len(SVC_ROWS) + 2)
        assert "loadable" not in later.status()["svc-emb"]
        out = later.outputs("svc-emb")
        np.testing.assert_allclose(out["s0"], words_vector("service row zero, changed"), atol=1e-6)
        np.testing.assert_allclose(out["s9"], words_vector("written by the search service"), atol=1e-6)
        assert later["svc_docs"].like({"text": "written by the search service"}, vector_index="svc-idx", n=1)[0]["_id"] == "s9"


def test_remove_works_from_the_stored_record(indexed, connect, service, raw_docs):
    with service.importable() as module:
        _apply_service(indexed, module)
    db = connect()
    db["svc_docs"].insert([{"_id": "q", "text": "queued"}])
    assert db.status()["svc-emb"]["pending"] == 1
    with pytest.raises(pinnacle.StateError, match="svc-idx"):
        db.remove("Listener", "svc-emb")  # still in use, as for any listener
    db.remove("Listener", "svc-emb", recursive=True)
    assert not any(name.endswith("__svc-emb") for name in raw_docs.table_names())
    assert {(c["type"], c["identifier"]) for c in db.show()} == {
        ("Model", "minilm"), ("Listener", "docs-emb"), ("VectorIndex", "docs-idx"), ("Model", "svc-model"),
    }
    db.remove("Model", "svc-model")
    assert "svc-emb" not in db.status() and db.not_loadable() == []
    with pytest.raises(NotFoundError):
        db.load("Listener", "svc-emb")
    db["svc_docs"].insert([{"_id": "after", "text": "no listener now"}])  # no queue to write to
    assert db["svc_docs"].count() == len(SVC_ROWS) + 2 and db.status()["docs-emb"]["outputs"] == 20


def test_preprocess_function_that_does_not_import(connect, service, pn_warnings):
    db = connect()
    db["docs"].insert([{"_id": "a", "text": "kept here"}])
    db.apply(pinnacle.Listener("plain", model=Words(identifier="plain"), key="text", select="docs"))
    with service.importable() as module:
        db["svc_docs"].insert(SVC_ROWS)
        db.apply(pinnacle.Listener("svc-emb", model=Words(identifier="shouting", preprocess=module.shout), key="text", select="svc_docs"))
    fresh = connect()
    fresh["svc_docs"].insert([{"_id": "x", "text": "queued here"}])
    fresh["docs"].insert([{"_id": "b", "text": "computed here"}])
    assert set(fresh.outputs("plain")) == {"a", "b"}
    status = fresh.status()["svc-emb"]
    _assert_outputs(status, pending=1, outputs=len(SVC_ROWS))
    assert f"names the function '{service.name}:shout'" in status["error"]
    (warning,) = pn_warnings("Listener 'svc-emb' (version 0) cannot be loaded")
    assert "Model 'shouting'" in warning and f"No module named '{service.name}'" in warning
    with service.importable():
        later = connect()
        assert later.drain().outputs == 1
        np.testing.assert_allclose(later.outputs("svc-emb")["x"], words_vector("QUEUED HERE"), atol=1e-6)


def test_artifact_missing_from_the_store(connect, raw_docs, pn_warnings, backend_uri):
    weights = b"w" * 5
    db = connect()
    db["docs"].insert([{"_id": "a", "text": "kept here"}])
    db.apply(pinnacle.Listener("plain", model=Words(identifier="plain"), key="text", select="docs"))
    db["svc_docs"].insert(SVC_ROWS)
    db.apply(pinnacle.Listener("svc-emb", model=Words(identifier="weighted", weights=weights), key="text", select="svc_docs"))
    sha = db.show("Model", "weighted")["data"]["_artifacts"]["weights"]["sha256"]
    _delete_artifact(raw_docs, sha)

    fresh = connect()
    fresh["svc_docs"].insert([{"_id": "x", "text": "queued here"}])  # not parked as failed: queued
    fresh["docs"].insert([{"_id": "b", "text": "computed here"}])
    assert set(fresh.outputs("plain")) == {"a", "b"}
    status = fresh.status()["svc-emb"]
    _assert_outputs(status, pending=1, outputs=len(SVC_ROWS))
    assert status["failed"] == 0 and f"needs artifact {sha[:12]}" in status["error"]
    (warning,) = pn_warnings("Listener 'svc-emb' (version 0) cannot be loaded")
    assert "Model 'weighted'" in warning and "artifact store" in warning
    # the repair: apply it again from a process that has the weights; then the row is computed
    connect().apply(pinnacle.Listener("svc-emb", model=Words(identifier="weighted", weights=weights), key="text", select="svc_docs"))
    later = connect()
    assert later.status()["svc-emb"]["pending"] == 0 and "loadable" not in later.status()["svc-emb"]
    np.testing.assert_allclose(later.outputs("svc-emb")["x"], words_vector("queued here", 5.0), atol=1e-6)


def test_model_whose_library_is_missing_when_it_runs(connect, tmp_path, pn_warnings):
    """The class imports, but the model needs a module when it runs (its native library, e.g.
    torch) that this process lacks: the rows it claimed go back to the queue, none is failed."""
    library = Service(tmp_path / "library", source="VERSION = 1\n")
    db = connect()
    db["docs"].insert([{"_id": "a", "text": "kept here"}])
    db.apply(pinnacle.Listener("plain", model=Words(identifier="plain"), key="text", select="docs"))
    with library.importable():
        db["svc_docs"].insert(SVC_ROWS)
        db.apply(pinnacle.Listener("svc-emb", model=NeedsLibrary(identifier="native", library=library.name), key="text", select="svc_docs"))

    fresh = connect()
    fresh["svc_docs"].insert([{"_id": "x", "text": "queued here"}])
    fresh["svc_docs"].insert([{"_id": "y", "text": "and here"}])
    fresh["docs"].insert([{"_id": "b", "text": "computed here"}])
    assert set(fresh.outputs("plain")) == {"a", "b"}
    status = fresh.status()["svc-emb"]
    _assert_outputs(status, pending=2, outputs=len(SVC_ROWS))
    assert status["failed"] == status["retrying"] == 0 and status["loadable"] is False
    assert f"Model 'native' needs module {library.name!r} to run" in status["error"]
    assert len(pn_warnings("Listener 'svc-emb' (version 0) cannot be loaded in this process:")) == 1
    assert fresh.drain().rows == 0
    with pytest.raises(NotLoadableError, match="needs module"):
        fresh.drain("svc-emb")
    with library.importable():
        later = connect()
        assert later.drain().outputs == 2
        np.testing.assert_allclose(later.outputs("svc-emb")["y"], words_vector("and here"), atol=1e-6)


def _delete_artifact(raw_docs, sha: str) -> None:
    if raw_docs.engine is None:  # MongoDB
        raw_docs.db["_pinnacle_artifacts"].delete_many({"sha256": sha})
        return
    import sqlalchemy as sa

    with raw_docs.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM _pinnacle_artifacts WHERE sha256 = :s"), {"s": sha})


# -- another process applies it -----------------------------------------------------------------
APPLY_SCRIPT = textwrap.dedent(
    """
    import sys
    import pinnacle
    from {module} import ServiceEmbedder

    db = pinnacle.connect(sys.argv[1])
    db["svc_docs"].insert({rows!r})
    listener = pinnacle.Listener("svc-emb", model=ServiceEmbedder(identifier="svc-model"), key="text", select="svc_docs")
    db.apply(pinnacle.VectorIndex("svc-idx", indexing_listener=listener))
    print(db.status()["svc-emb"]["outputs"])
    """
)


def _run(argv: list[str], env: dict, **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=180, cwd=str(HERE), **kwargs)
    assert done.returncode == 0, done.stderr
    return done


def test_applied_by_another_process(other_processes, connect, service, backend_uri, raw_docs, tmp_path):
    script = tmp_path / "apply_service.py"
    script.write_text(APPLY_SCRIPT.format(module=service.name, rows=SVC_ROWS))
    assert _run([sys.executable, str(script), backend_uri], service.env()).stdout.split() == [str(len(SVC_ROWS))]

    db = connect()  # this process has never seen the module
    db["docs"].insert([{"_id": "a", "text": "kept here"}])
    db.apply(pinnacle.Listener("plain", model=Words(identifier="plain"), key="text", select="docs"))
    db["svc_docs"].insert([{"_id": "x", "text": "queued here"}, {"_id": "y", "text": "and here"}])
    assert set(db.outputs("plain")) == {"a"}
    _assert_outputs(db.status()["svc-emb"], pending=2, outputs=len(SVC_ROWS))

    # the CLI without the module: status shows it, the worker drains the rest and reports it once
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
    shown = _run([sys.executable, "-m", "pinnacle.cli", "--db", backend_uri, "status"], env)
    assert "svc-emb (not loadable here)" in shown.stdout and f"{service.name}.ServiceEmbedder" in shown.stdout
    db["docs"].insert([{"_id": "b", "text": "for the worker"}], wait=False)
    worked = _run([sys.executable, "-m", "pinnacle.cli", "--db", backend_uri, "worker", "--once"], env)
    assert "1 row(s): 1 embedded" in worked.stdout
    assert worked.stdout.count("svc-emb") == 1 and "2 row(s) stay queued" in worked.stdout
    assert worked.stderr.count("cannot be loaded in this process:") == 2  # the listener and its index, once each
    assert set(db.outputs("plain")) == {"a", "b"}

    # a worker that has the module computes the queued rows
    done = _run([sys.executable, "-m", "pinnacle.cli", "--db", backend_uri, "worker", "--once"], service.env())
    assert "2 row(s): 2 embedded" in done.stdout and "svc-emb" not in done.stdout
    status = connect().status()["svc-emb"]
    _assert_outputs(status, pending=0, outputs=len(SVC_ROWS) + 2)
    assert raw_docs.count("_outputs__svc-emb") == len(SVC_ROWS) + 2
