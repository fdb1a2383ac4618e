"""The SQL plugin's dialects: one object per database, chosen at connect (issue 13).

Behaviour on real servers is covered by the shared suite (``tests/backends``) and the
reliability tests; these check the choice itself and that no module outside
``plugins/sql/dialects/`` branches on a dialect's name again.
"""

from __future__ import annotations

import ast
import os
import pathlib
import subprocess
import sys

import pytest
import sqlalchemy as sa

import pinnacle
from pinnacle.plugins.sql.dialects import dialect_class, dialect_for

DIALECT_NAMES = {"sqlite", "postgresql", "mysql", "mariadb"}


def _plugin_dir() -> pathlib.Path:
    import pinnacle.plugins.sql

    return pathlib.Path(pinnacle.plugins.sql.__file__).parent


@pytest.mark.parametrize(
    "url, cls, name",
    [
        ("sqlite://", "SQLiteDialect", "sqlite"),
        ("postgresql+psycopg://u@localhost/db", "PostgreSQLDialect", "postgresql"),
        ("mysql+pymysql://u@localhost/db", "MySQLDialect", "mysql"),
        ("mariadb+pymysql://u@localhost/db", "MySQLDialect", "mysql"),
    ],
)
def test_dialect_chosen_from_the_engine(url, cls, name):
    pytest.importorskip("psycopg" if "psycopg" in url else "pymysql" if "pymysql" in url else "sqlite3")
    engine = sa.create_engine(url)  # no connection is made
    dialect = dialect_for(engine)
    assert type(dialect).__name__ == cls and dialect.name == name
    assert dialect.engine is engine and dialect.quote("a b") == engine.dialect.identifier_preparer.quote("a b")


def test_backend_holds_its_dialect(tmp_path):
    backend = pinnacle.connect(f"sqlite:///{tmp_path / 'x.db'}").backend
    assert type(backend.dialect).__name__ == "SQLiteDialect" and backend.dialect.engine is backend.engine
    assert backend.dialect.locking_claims is False and backend.dialect.supports_pgvector is False


def test_unknown_dialect_lists_the_supported_ones():
    with pytest.raises(pinnacle.ConfigError) as info:
        dialect_class("oracle")
    assert "'oracle'" in str(info.value) and all(name in str(info.value) for name in DIALECT_NAMES)


def test_each_dialect_module_ends_with_a_dialect_alias():
    for name in DIALECT_NAMES:
        cls = dialect_class(name)
        assert cls.__module__.rsplit(".", 1)[1] == ("mysql" if name == "mariadb" else name)


@pytest.mark.parametrize("name", sorted(DIALECT_NAMES - {"mariadb"}))
def test_triggers_and_their_removal_name_the_same_objects(name):
    engine = sa.create_engine("sqlite://")  # only its quoting is used
    dialect = dialect_class(name)(engine)
    create = " ".join(dialect.create_triggers("docs-emb", "docs", "_queue__docs-emb", "_id", ["text"]))
    drop = " ".join(dialect.drop_triggers("docs-emb", "docs"))
    assert '"_queue__docs-emb"' in create and " ON docs " in create
    for trigger in dialect.trigger_names("docs-emb"):
        if f'"{trigger}"' in create:
            assert f'"{trigger}"' in drop


def test_sqlite_holders_are_alive_while_their_process_is():
    dialect = dialect_for(sa.create_engine("sqlite://"))
    me = dialect.holder_of(None)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    dead = me.rsplit(":", 1)[0] + ":" + gone.stdout.strip()
    elsewhere = f"sqlite:another-host:{os.getpid()}"
    assert me == dialect.holder_of(None) and me.startswith("sqlite:")
    assert dialect.alive_holders(None, {me, dead, elsewhere}) == {me, elsewhere}


def test_no_dialect_name_branches_outside_dialects():
    """Comparing a dialect's name (``== "mysql"``, ``in ("mysql", "mariadb")``) is the
    dialects' job: every other module asks ``backend.dialect``."""
    root = _plugin_dir()
    found = []
    for path in sorted(root.rglob("*.py")):
        if "dialects" in path.relative_to(root).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare) or (
                isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "startswith"
            ):
                names = [n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and n.value in DIALECT_NAMES]
                if names:
                    found.append(f"{path.relative_to(root)}:{node.lineno}: {ast.unparse(node)}")
    assert found == []
