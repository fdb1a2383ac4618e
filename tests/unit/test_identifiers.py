"""Names that reach SQL are validated before any SQL is built from them."""

from __future__ import annotations

import pytest

import pinnacle
from pinnacle import ConfigError
from pinnacle.base.identifiers import MAX_IDENTIFIER_LENGTH, validate_column, validate_identifier
from pinnacle.components.model import Model

HOSTILE = [
    'x"; DROP TABLE docs; --',
    "x'; DROP TABLE docs; --",
    "docs; DELETE FROM docs",
    "a b",
    "a.b",
    "a`b",
    "a/b",
    "a\nb",
    "a\x00b",
    "1abc",
    "_private",
    "-dash",
    "",
    "émbeddings",
    "x" * (MAX_IDENTIFIER_LENGTH + 1),
]


@pytest.mark.parametrize("name", ["docs", "docs-emb", "docs_emb", "D1", "a" * MAX_IDENTIFIER_LENGTH])
def test_good_identifiers_pass(name):
    assert validate_identifier(name) == name


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_identifiers_rejected(name):
    with pytest.raises(ConfigError) as info:
        validate_identifier(name, "table name")
    message = str(info.value)
    assert "table name" in message and repr(name) in message
    assert "letter" in message  # says what a valid name looks like


@pytest.mark.parametrize("name", [None, 3, b"docs", ["docs"]])
def test_non_string_identifiers_rejected(name):
    with pytest.raises(ConfigError):
        validate_identifier(name)


@pytest.mark.parametrize("name", ['x"; DROP TABLE docs; --', "a-b", "1a", "a b", "", "x" * 64])
def test_hostile_columns_rejected(name):
    with pytest.raises(ConfigError, match="column"):
        validate_column(name, "docs")


@pytest.mark.parametrize("name", ["text", "_id", "Text_2", "x" * 63])
def test_good_columns_pass(name):
    assert validate_column(name) == name


def test_component_identifier_validated():
    with pytest.raises(ConfigError, match="Model identifier"):
        Model('x"; DROP TABLE docs; --')


def test_listener_select_and_key_validated():
    model = Model("m")
    with pytest.raises(ConfigError, match="table name"):
        pinnacle.Listener("l", model=model, key="text", select='docs"; DROP TABLE docs; --')
    with pytest.raises(ConfigError, match="column"):
        pinnacle.Listener("l", model=model, key='text"; DROP TABLE docs; --', select="docs")
    with pytest.raises(ConfigError, match="column"):
        pinnacle.Listener("l", model=model, key={"x": "a;b"}, select="docs")


def test_table_name_validated_by_datalayer(sqlite_db):
    with pytest.raises(ConfigError):
        sqlite_db['x"; DROP TABLE docs; --']


def test_hostile_column_in_insert_rejected_and_nothing_created(sqlite_db):
    sqlite_db["docs"].insert([{"text": "kept"}])
    with pytest.raises(ConfigError):
        sqlite_db["other"].insert([{'x"; DROP TABLE docs; --': 1}])
    assert sqlite_db.backend.list_tables() == ["docs"]
    assert sqlite_db["docs"].count() == 1


def test_hostile_where_column_rejected(sqlite_db):
    sqlite_db["docs"].insert([{"text": "kept"}])
    with pytest.raises(ConfigError, match="no column"):
        sqlite_db["docs"].select({'text" OR 1=1 --': "x"})
    with pytest.raises(ConfigError):
        sqlite_db["docs"].select(columns=['text" FROM docs; --'])
    assert sqlite_db["docs"].count() == 1
