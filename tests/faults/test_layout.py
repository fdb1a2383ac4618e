"""Part 4 of issue 16: the layout of pinnacle's own tables, across pinnacle versions.

``tests/fixtures/layout1.*`` are databases written by pinnacle before its tables carried a
layout version (layout 1: a SQLite file, a pg_dump and a mariadb-dump of the same content,
``make_layout1.py``). Opening one with this pinnacle upgrades it: on SQLite and PostgreSQL
by itself, in one transaction; on MariaDB, whose DDL commits on its own, only when asked
(``upgrade=True``; the refusal gives the line to run). Afterwards the components load, the
queued rows drain, search works and nothing of the old content is lost. A layout newer
than this pinnacle's is refused with both versions named, touching nothing; an upgrade step
that fails leaves the database as it was (SQLite, PostgreSQL) or at the last step
recorded, to be run again (MariaDB).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

import pinnacle
from faults.servers import unavailable
from fixtures.layout_models import expected_vector
from fixtures.make_layout1 import SALT
from pinnacle.errors import StateError
from pinnacle.plugins.sql import schema
from reliability.helpers import driver_url

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def load_layout1(backend_kind: str, backend_uri: str) -> None:
    """Put the layout-1 fixture into this test's (empty) database."""
    if backend_kind == "sqlite":
        shutil.copy(FIXTURES / "layout1.sqlite", backend_uri[len("sqlite:///"):])
        return
    if backend_kind == "postgresql":
        name = re.search(r"search_path%3D([A-Za-z0-9_]+)", backend_uri).group(1)
        dump = (FIXTURES / "layout1.postgresql.sql").read_text().replace("__SCHEMA__", name)
        engine = sa.create_engine(driver_url(backend_uri), poolclass=sa.pool.NullPool)
        conn = engine.raw_connection()
        try:
            conn.cursor().execute(dump)  # psycopg runs a script without parameters as it is
            conn.commit()
        finally:
            conn.close()
            engine.dispose()
        return
    client = shutil.which("mariadb") or shutil.which("mysql")
    if not client:
        unavailable("the mariadb client is needed to load tests/fixtures/layout1.mariadb.sql")
    url = sa.engine.make_url(driver_url(backend_uri))
    with open(FIXTURES / "layout1.mariadb.sql", "rb") as dump:
        done = subprocess.run([client, "-h", url.host, "-P", str(url.port or 3306), "-u", url.username, url.database],
                              stdin=dump, capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode(errors="replace")


def _layout(raw: sa.Engine):
    with raw.connect() as conn:
        return schema.read_layout(conn)


def _tables(raw: sa.Engine) -> set[str]:
    return set(sa.inspect(raw).get_table_names())


def check_layout1_content(db: pinnacle.Datalayer) -> dict:
    """The fixture's content, read and used through this pinnacle; returns counts."""
    before = db.status()["emb"]
    assert (before["pending"], before["failed"], before["outputs"]) == (5, 1, 36), before
    assert db.drain().outputs == 5
    after = db.status()["emb"]
    assert (after["pending"], after["failed"], after["outputs"]) == (0, 1, 40), after
    rows = {r["_id"]: r["text"] for r in db["docs"].select()}
    outputs = db.outputs("emb")  # old ones and new ones: the model (and its stored salt) loaded
    assert len(rows) == 41 and set(outputs) == set(rows) - {"empty"}
    for source, vector in outputs.items():
        assert np.allclose(np.asarray(vector), expected_vector(rows[source], SALT)), source
    hits = db["docs"].like({"text": rows["d03"]}, vector_index="idx", n=1)
    assert hits[0]["_id"] == "d03" and hits[0]["_score"] > 0.999, hits
    # Layout 2: state keys differ by case on every database.
    backend = db.backend
    backend.set_state("Fixture/Key", "upper")
    backend.set_state("fixture/key", "lower")
    assert (backend.get_state("Fixture/Key"), backend.get_state("fixture/key")) == ("upper", "lower")
    assert backend.get_state("Listener/emb/serving") is not None  # the old state was kept
    return {"rows": len(rows), "outputs": after["outputs"], "failed": after["failed"], "drained": 5}


def test_upgrade_from_layout_1(backend_kind, backend_uri, raw_engine, faults_report):
    load_layout1(backend_kind, backend_uri)
    assert _layout(raw_engine) == (1, None)
    if backend_kind == "mariadb":
        tables = _tables(raw_engine)
        with pytest.raises(StateError) as refused:
            pinnacle.connect(backend_uri)
        message = str(refused.value)
        assert "layout 1" in message and f"layout {schema.LAYOUT}" in message, message
        assert "upgrade=True" in message and "python -c" in message, message
        assert _tables(raw_engine) == tables and _layout(raw_engine) == (1, None)  # untouched
        db = pinnacle.connect(backend_uri, upgrade=True)
    else:
        db = pinnacle.connect(backend_uri)  # upgraded by itself, in one transaction
    try:
        assert db.backend.layout_found == 1
        assert _layout(raw_engine) == (schema.LAYOUT, pinnacle.__version__)
        assert "_pinnacle_state__layout2" not in _tables(raw_engine)
        counts = check_layout1_content(db)
    finally:
        db.close()
    again = pinnacle.connect(backend_uri)  # now a plain open, on every database
    assert again.backend.layout_found == schema.LAYOUT
    again.close()
    faults_report(kind=backend_kind, upgraded_from=1, to=schema.LAYOUT, lost=0, **counts)


def test_a_newer_layout_is_refused_untouched(backend_kind, backend_uri, raw_engine):
    pinnacle.connect(backend_uri).close()
    with raw_engine.begin() as conn:
        conn.execute(sa.text("UPDATE _pinnacle_schema SET layout = :n, written_by = '9.9.9'"), {"n": schema.LAYOUT + 1})
        conn.exec_driver_sql("DROP TABLE _pinnacle_claims")  # an open that went on would make it again
    with pytest.raises(StateError) as refused:
        pinnacle.connect(backend_uri)
    message = str(refused.value)
    assert f"layout {schema.LAYOUT + 1}" in message and "9.9.9" in message and pinnacle.__version__ in message, message
    assert f"up to {schema.LAYOUT}" in message and "pip install -U 'pinnacle>=9.9.9'" in message, message
    assert "_pinnacle_claims" not in _tables(raw_engine)
    assert _layout(raw_engine) == (schema.LAYOUT + 1, "9.9.9")


def _broken_step(conn, metadata, dialect):
    conn.exec_driver_sql("CREATE TABLE _pinnacle_half_done (x INTEGER)")
    raise RuntimeError("step 3 broke half-way")


def test_a_failed_upgrade_step(backend_kind, backend_uri, raw_engine, monkeypatch):
    """SQLite/PostgreSQL: nothing changed. MariaDB: the last step done is recorded, and running
    the upgrade again (the step fixed) finishes it."""
    load_layout1(backend_kind, backend_uri)
    monkeypatch.setattr(schema, "LAYOUT", schema.LAYOUT + 1)
    monkeypatch.setattr(schema, "STEPS", (*schema.STEPS, schema.Step(schema.LAYOUT, "a step that breaks", _broken_step)))
    with pytest.raises(StateError) as failed:
        pinnacle.connect(backend_uri, upgrade=True)
    message = str(failed.value)
    assert "step 3 broke half-way" in message and f"to layout {schema.LAYOUT}" in message, message
    if backend_kind == "mariadb":
        assert _layout(raw_engine)[0] == schema.LAYOUT - 1  # step 2 is done and recorded
        assert "running the same line again redoes it" in message, message
        with raw_engine.begin() as conn:
            conn.exec_driver_sql("DROP TABLE _pinnacle_half_done")
        monkeypatch.setattr(schema, "STEPS", (*schema.STEPS[:-1], schema.Step(schema.LAYOUT, "fixed", lambda *a: None)))
        pinnacle.connect(backend_uri, upgrade=True).close()
        assert _layout(raw_engine)[0] == schema.LAYOUT
        return
    assert "nothing was changed" in message, message
    assert _layout(raw_engine) == (1, None)
    tables = _tables(raw_engine)
    assert "_pinnacle_half_done" not in tables and "_pinnacle_schema" not in tables
    assert "_pinnacle_state__layout2" not in tables
    with raw_engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT key FROM _pinnacle_state").scalars().all() == ["Listener/emb/serving"]
