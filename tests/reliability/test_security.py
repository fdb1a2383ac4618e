"""Security (issue 3, part 8).

* Hostile table, component and column names are refused with a ConfigError before any
  SQL runs (every statement the engine executes is recorded).
* Artifacts are checked against their sha256 when loaded.
* Nothing is unpickled: the package has no pickle loads, and decoding builds only
  Component classes.
* A password in a connection URI never appears in logs, errors, ``repr`` or ``safe_uri``.
"""

from __future__ import annotations

import logging
import re
import traceback
from pathlib import Path

import pytest
import sqlalchemy as sa

import pinnacle
from pinnacle.base.artifacts import IntegrityError
from pinnacle.base.encoding import decode
from reliability.flaky_models import HashEmbed, WeightedHash
from reliability.helpers import child_env, server_params

HOSTILE = [
    'x"; DROP TABLE docs; --',
    "x'; DROP TABLE docs; --",
    "x`; DROP TABLE docs; --",
    "docs; DROP TABLE docs",
    "docs) --",
    "my table",
    'quo"te',
    "semi;colon",
    "new\nline",
    "nul\x00byte",
    "ünïcode",
    "1starts-with-digit",
    "",
    "a" * 41,  # identifiers: at most 40 characters
]
HOSTILE_COLUMNS = [name for name in HOSTILE if name != "a" * 41] + ["a" * 64, "dash-ed"]


class Statements:
    """Every SQL statement an engine sends, recorded."""

    def __init__(self, engine: sa.Engine):
        self.engine = engine
        self.seen: list[str] = []
        sa.event.listen(engine, "before_cursor_execute", self._record)

    def _record(self, conn, cursor, statement, parameters, context, executemany):
        self.seen.append(statement)

    def close(self) -> None:
        sa.event.remove(self.engine, "before_cursor_execute", self._record)


def _refused(statements: Statements, call, *, what: str, reads_ok: bool = False) -> str:
    """``call()`` raises ConfigError and runs no SQL; returns the message.

    With ``reads_ok``, reads that do not involve the name may run first (``update``
    looks up the ids of the rows it will touch before it checks the new values).
    """
    before = len(statements.seen)
    with pytest.raises(pinnacle.ConfigError) as info:
        call()
    ran = statements.seen[before:]
    if reads_ok:
        ran = [s for s in ran if not s.lstrip().upper().startswith(("SELECT", "BEGIN"))]
    assert not ran, f"{what}: SQL ran before the name was refused: {ran}"
    return str(info.value)


def test_hostile_names_are_refused_before_any_sql(backend_kind, db, raw_engine):
    db["docs"].insert([{"_id": "a", "text": "hello"}, {"_id": "b", "text": "world"}])
    model = HashEmbed(identifier="hash")
    good = pinnacle.Listener("emb", model=model, key="text", select="docs")
    db.apply(good)
    db["docs"].select()  # the table's definition is cached: what follows needs no SQL to check names
    statements = Statements(db.backend.engine)
    try:
        for name in HOSTILE:
            message = _refused(statements, lambda: db[name], what=f"db[{name!r}]")
            assert "Invalid table name" in message and repr(name) in message, message
            _refused(statements, lambda: db["_outputs__" + name], what=f"db['_outputs__' + {name!r}]")
            _refused(statements, lambda: pinnacle.Listener(name, model=model, key="text", select="docs"), what="Listener id")
            _refused(statements, lambda: pinnacle.Listener("emb2", model=model, key="text", select=name), what="select")
            _refused(statements, lambda: pinnacle.Listener("emb2", model=model, key="text", select="_outputs__" + name), what="select _outputs__")
            _refused(statements, lambda: HashEmbed(identifier=name), what="Model id")
            _refused(statements, lambda: pinnacle.VectorIndex(name, indexing_listener=good), what="VectorIndex id")
        for name in HOSTILE_COLUMNS:
            _refused(statements, lambda: pinnacle.Listener("emb2", model=model, key=name, select="docs"), what="key column")
            _refused(statements, lambda: db["docs"].insert([{"_id": "c", name: "v"}]), what="insert column")
            _refused(statements, lambda: db["docs"].select({name: 1}), what="where column")
            _refused(statements, lambda: db["docs"].select(columns=[name]), what="selected column")
            _refused(statements, lambda: db["docs"].update({"_id": "a"}, {name: "v"}), what="updated column", reads_ok=True)
            _refused(statements, lambda: db["docs"].delete({name: "v"}), what="delete where column")
        # A component whose name was changed after it was built is refused by apply.
        for name in HOSTILE[:3]:
            sneaky = pinnacle.Listener("emb3", model=HashEmbed(identifier="hash3"), key="text", select="docs")
            sneaky.identifier = name
            _refused(statements, lambda: db.apply(sneaky), what="apply of a renamed listener")
        # A new table with a hostile column name: refused before CREATE TABLE.
        before = len(statements.seen)
        with pytest.raises(pinnacle.ConfigError, match="Invalid column name"):
            db["fresh"].insert([{"text": "a", HOSTILE[0]: "v"}])
        assert not [s for s in statements.seen[before:] if "CREATE" in s.upper()]
    finally:
        statements.close()
    for statement in statements.seen:  # names never reach SQL text (values go as parameters)
        assert not any(name and name in statement for name in HOSTILE[:5]), statement
    with raw_engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM docs")).scalar_one() == 2
        assert not sa.inspect(conn).has_table("fresh")
    assert db.status()["emb"]["outputs"] == 2
    assert sorted(db.show("Listener")) == ["emb"]


# -- artifacts -------------------------------------------------------------------------------
def _corrupt(engine: sa.Engine, sha256: str, part: int = 0) -> None:
    with engine.begin() as conn:
        data = bytes(
            conn.execute(
                sa.text("SELECT data FROM _pinnacle_artifacts WHERE sha256 = :s AND part = :p"), {"s": sha256, "p": part}
            ).scalar_one()
        )
        flipped = bytes([data[0] ^ 0xFF]) + data[1:]
        conn.execute(
            sa.text("UPDATE _pinnacle_artifacts SET data = :d WHERE sha256 = :s AND part = :p"),
            {"d": flipped, "s": sha256, "p": part},
        )


def _artifact_shas(engine: sa.Engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(sa.text("SELECT DISTINCT sha256 FROM _pinnacle_artifacts")).scalars())


def test_corrupt_bytes_artifact_is_refused_on_load(backend_kind, connect, raw_engine):
    db = connect()
    db["docs"].insert([{"_id": "a", "text": "hello"}])
    weights = bytes(range(256)) * 40
    db.apply(pinnacle.Listener("emb", model=WeightedHash(identifier="weighted", weights=weights), key="text", select="docs"))
    assert db.status()["emb"]["outputs"] == 1
    (sha,) = _artifact_shas(raw_engine)

    fresh = connect()
    assert fresh.load("Model", "weighted").load_weights() == weights  # intact: loads and checks

    _corrupt(raw_engine, sha)
    again = connect(retry=pinnacle.RetryPolicy(max_attempts=1, backoff_s=0.01))
    model = again.load("Model", "weighted")
    with pytest.raises(IntegrityError, match=f"Artifact {sha} is corrupt"):
        model.load_weights()
    # A drain never stores outputs computed from corrupt weights: the rows are parked with the cause.
    again["docs"].insert([{"_id": "b", "text": "world"}])
    assert "b" not in again.outputs("emb")
    (failure,) = again.failures("emb")
    assert failure["_source"] == "b" and failure["error_type"] == "IntegrityError" and "corrupt" in failure["message"]

    # The advice in the message works: delete the stored copy, re-apply, and the weights load again.
    with raw_engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM _pinnacle_artifacts WHERE sha256 = :s"), {"s": sha})
    repaired = connect()
    repaired.apply(pinnacle.Listener("emb", model=WeightedHash(identifier="weighted", weights=weights), key="text", select="docs"))
    assert connect().load("Model", "weighted").load_weights() == weights


@pytest.mark.parametrize("backend_kind", server_params("sqlite"), indirect=True)  # one is enough for 90 MB
def test_corrupt_model_directory_is_refused_on_load(backend_kind, connect, raw_engine, minilm, tmp_path, monkeypatch):
    db = connect()
    db["docs"].insert([{"_id": "a", "text": "hello"}])
    db.apply(pinnacle.Listener("emb", model=minilm(), key="text", select="docs"))
    (sha,) = _artifact_shas(raw_engine)
    _corrupt(raw_engine, sha, part=1)
    monkeypatch.setenv("PINNACLE_CACHE", str(tmp_path / "empty-cache"))  # nothing unpacked yet
    listener = connect().load("Listener", "emb")
    with pytest.raises(IntegrityError, match=f"Artifact {sha} is corrupt"):
        listener.model.native
    unpacked = tmp_path / "empty-cache" / "artifacts" / sha
    assert not (unpacked / ".complete").exists()


# -- no pickle -------------------------------------------------------------------------------
PACKAGE_DIRS = ("pinnacle", "ext", "plugins")
UNSAFE = re.compile(
    r"\b(c?pickle|cloudpickle|dill|joblib|marshal|shelve)\.(loads?|Unpickler)\b"
    r"|\btorch\.load\("
    r"|allow_pickle\s*=\s*True"
    r"|\byaml\.(unsafe_)?load\("
)
#: An unpickling call is allowed only behind the user's explicit opt-in, checked just before it.
OPT_IN = "ALLOW_PICKLE_ENV"


def _allowed(lines: list[str], index: int) -> bool:
    line = lines[index]
    if "torch.load(" in line and "weights_only=True" in line:
        return True  # tensors only: torch refuses pickled code
    return any(OPT_IN in previous for previous in lines[max(0, index - 12) : index])


def test_package_source_never_unpickles_without_opt_in():
    root = Path(__file__).resolve().parents[2]
    found = []
    for folder in PACKAGE_DIRS:
        for path in sorted((root / folder).rglob("*.py")):
            lines = path.read_text(encoding="utf-8").splitlines()
            for index, line in enumerate(lines):
                if UNSAFE.search(line) and not _allowed(lines, index):
                    found.append(f"{path.relative_to(root)}:{index + 1}: {line.strip()}")
    assert not found, "unpickling code in the package (not behind an opt-in):\n" + "\n".join(found)


@pytest.mark.parametrize("path", ["os.system", "subprocess.Popen", "pickle.loads", "builtins.eval", "numpy.load"])
def test_decoding_builds_only_components(path):
    with pytest.raises(pinnacle.ConfigError, match="not a pinnacle Component class"):
        decode({"_path": path, "identifier": "x"})


# -- passwords in URIs -----------------------------------------------------------------------
SECRET = "secretpw"


def _with_password(uri: str) -> str:
    scheme, rest = uri.split("://", 1)
    user, host = rest.split("@", 1)
    return f"{scheme}://{user}:{SECRET}@{host}"


def _texts(exc: BaseException) -> list[str]:
    out = ["".join(traceback.format_exception(exc))]
    while exc is not None:
        out.append(str(exc))
        out.append(repr(exc))
        exc = exc.__cause__ or exc.__context__
    return out


@pytest.mark.parametrize("backend_kind", server_params("postgresql", "mariadb"), indirect=True)
def test_uri_passwords_never_logged(backend_kind, backend_uri, caplog, procs):
    caplog.set_level(logging.DEBUG)
    for name in ("pinnacle", "sqlalchemy.engine", "sqlalchemy.pool"):
        caplog.set_level(logging.DEBUG, logger=name)
    uri = _with_password(backend_uri)
    texts: list[str] = []
    if backend_kind == "postgresql":
        db = pinnacle.connect(uri)  # trust authentication ignores the password
        try:
            texts += [repr(db), db.backend.safe_uri, repr(db.backend), str(db.backend.engine.url)]
            assert "***" in db.backend.safe_uri
            db["docs"].insert([{"_id": "a", "text": "hello"}])
            db.apply(pinnacle.Listener("emb", model=HashEmbed(identifier="hash"), key="text", select="docs"))
            db.status()
            with pytest.raises(pinnacle.BackendError) as info:
                db["docs"].insert([{"_id": "a", "text": "again"}])  # duplicate key
            texts += _texts(info.value)
        finally:
            db.close()
    else:  # MariaDB's root has no password: a wrong one is refused
        with pytest.raises(pinnacle.BackendError) as info:
            pinnacle.connect(uri)
        texts += _texts(info.value)
        assert "***" in str(info.value)
    # An unreachable server: the error names the masked URI.
    unreachable = re.sub(r"@127\.0\.0\.1:\d+", "@127.0.0.1:1", uri)
    with pytest.raises(pinnacle.BackendError) as info:
        pinnacle.connect(unreachable)
    texts += _texts(info.value)
    texts += [r.getMessage() for r in caplog.records] + [caplog.text]
    # The command line, with and without tracebacks.
    for flags in ([], ["-v"]):
        cli = procs.cli("--db", unreachable, *flags, "status", env=child_env(PINNACLE_URI=unreachable))
        out, _ = cli.popen.communicate(timeout=120)
        cli.close()
        assert cli.popen.returncode == 1
        err = cli.stderr()
        assert "pinnacle: error:" in err and "***" in err, err
        texts += [out, err]
    assert caplog.records, "nothing was logged: the check would be empty"
    leaks = [text for text in texts if SECRET in text]
    assert not leaks, leaks[0][:2000]
