"""Change capture: per-dialect triggers that put a row's id into its listener's queue.

The trigger runs inside the writer's transaction, so a committed write always has its
queue entry, whoever wrote it (pinnacle, psql, another application).
"""

from __future__ import annotations

import typing as t

__all__ = ["create_trigger_sql", "drop_trigger_sql"]

Quote = t.Callable[[str], str]


def _names(identifier: str) -> dict[str, str]:
    base = f"_pinnacle__{identifier}"
    return {"function": base, "ins": f"{base}__ins", "upd": f"{base}__upd", "del": f"{base}__del"}


def create_trigger_sql(
    dialect: str, identifier: str, table: str, queue: str, pk: str, key_columns: t.Sequence[str], q: Quote
) -> list[str]:
    """Statements that install change capture for one listener on ``table``."""
    n = {k: q(v) for k, v in _names(identifier).items()}
    tbl, qtbl, qpk = q(table), q(queue), q(pk)
    watched = list(dict.fromkeys([*key_columns, pk]))
    if dialect == "sqlite":
        cols = ", ".join(q(c) for c in watched)
        return [
            f"CREATE TRIGGER {n['ins']} AFTER INSERT ON {tbl} BEGIN "
            f"INSERT INTO {qtbl} (_source) VALUES (NEW.{qpk}); END",
            f"CREATE TRIGGER {n['upd']} AFTER UPDATE OF {cols} ON {tbl} BEGIN "
            f"INSERT INTO {qtbl} (_source) VALUES (NEW.{qpk}); "
            f"INSERT INTO {qtbl} (_source) SELECT OLD.{qpk} WHERE OLD.{qpk} IS NOT NEW.{qpk}; END",
            f"CREATE TRIGGER {n['del']} AFTER DELETE ON {tbl} BEGIN "
            f"INSERT INTO {qtbl} (_source) VALUES (OLD.{qpk}); END",
        ]
    if dialect == "postgresql":
        cols = ", ".join(q(c) for c in watched)
        return [
            f"""CREATE OR REPLACE FUNCTION {n['function']}() RETURNS trigger LANGUAGE plpgsql AS $body$
BEGIN
  IF TG_OP = 'DELETE' THEN
    INSERT INTO {qtbl} (_source) VALUES (OLD.{qpk});
    RETURN OLD;
  END IF;
  INSERT INTO {qtbl} (_source) VALUES (NEW.{qpk});
  IF TG_OP = 'UPDATE' AND OLD.{qpk} IS DISTINCT FROM NEW.{qpk} THEN
    INSERT INTO {qtbl} (_source) VALUES (OLD.{qpk});
  END IF;
  RETURN NEW;
END
$body$""",
            f"CREATE TRIGGER {n['ins']} AFTER INSERT OR DELETE OR UPDATE OF {cols} ON {tbl} "
            f"FOR EACH ROW EXECUTE FUNCTION {n['function']}()",
        ]
    if dialect in ("mysql", "mariadb"):
        # MySQL has no UPDATE OF: compare OLD and NEW, as bytes (a _ci collation would miss
        # a change of case or trailing spaces).
        changed = " OR ".join(f"NOT (CAST(OLD.{q(c)} AS BINARY) <=> CAST(NEW.{q(c)} AS BINARY))" for c in watched)
        return [
            f"CREATE TRIGGER {n['ins']} AFTER INSERT ON {tbl} FOR EACH ROW "
            f"INSERT INTO {qtbl} (_source) VALUES (NEW.{qpk})",
            f"CREATE TRIGGER {n['upd']} AFTER UPDATE ON {tbl} FOR EACH ROW BEGIN "
            f"IF {changed} THEN INSERT INTO {qtbl} (_source) VALUES (NEW.{qpk}); END IF; "
            f"IF NOT (CAST(OLD.{qpk} AS BINARY) <=> CAST(NEW.{qpk} AS BINARY)) THEN INSERT INTO {qtbl} (_source) VALUES (OLD.{qpk}); END IF; END",
            f"CREATE TRIGGER {n['del']} AFTER DELETE ON {tbl} FOR EACH ROW "
            f"INSERT INTO {qtbl} (_source) VALUES (OLD.{qpk})",
        ]
    raise NotImplementedError(f"No change capture for SQL dialect {dialect!r}")


def drop_trigger_sql(dialect: str, identifier: str, table: str, q: Quote) -> list[str]:
    """Statements that remove what :func:`create_trigger_sql` installed."""
    n = {k: q(v) for k, v in _names(identifier).items()}
    tbl = q(table)
    if dialect == "sqlite":
        return [f"DROP TRIGGER IF EXISTS {n[k]}" for k in ("ins", "upd", "del")]
    if dialect == "postgresql":
        return [f"DROP TRIGGER IF EXISTS {n['ins']} ON {tbl}", f"DROP FUNCTION IF EXISTS {n['function']}()"]
    return [f"DROP TRIGGER IF EXISTS {n[k]}" for k in ("ins", "upd", "del")]


def trigger_names(identifier: str) -> list[str]:
    """Unquoted names of the triggers :func:`create_trigger_sql` may install for ``identifier``."""
    n = _names(identifier)
    return [n["ins"], n["upd"], n["del"]]
