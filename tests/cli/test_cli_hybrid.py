"""``pinnacle search --mode text|hybrid`` and ``--rerank``: the CLI over hybrid search."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pinnacle
from pinnacle.cli import main

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # cli_models must import by name
sys.path.insert(0, str(HERE.parent / "backends" / "suite"))  # hybrid_models
from cli_models import Letters  # noqa: E402
from hybrid_models import OverlapReranker  # noqa: E402

TEXTS = {"d0": "error E-4471 on boot", "d1": "the boot loader is fine", "d2": "banana bread recipe"}


def _setup(tmp_path: Path) -> str:
    uri = f"sqlite:///{tmp_path / 'cli.db'}"
    db = pinnacle.connect(uri)
    db["docs"].insert([{"_id": k, "text": v} for k, v in TEXTS.items()])
    listener = pinnacle.Listener("emb", model=Letters(identifier="letters"), key="text", select=db["docs"])
    db.apply(pinnacle.VectorIndex("idx", indexing_listener=listener, full_text=True), show_progress_bar=False)
    db.apply(OverlapReranker("overlap"))
    db.close()
    return uri


def _run(capsys, *argv: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main(list(argv))
    return code, capsys.readouterr().out


def test_search_modes(tmp_path, capsys):
    uri = _setup(tmp_path)
    code, out = _run(capsys, "--db", uri, "search", "idx", "E-4471", "--mode", "text", "--json")
    hits = json.loads(out)
    assert code == 0 and [h["_id"] for h in hits] == ["d0"] and hits[0]["_text_rank"] == 1
    code, out = _run(capsys, "--db", uri, "search", "idx", "E-4471 boot", "--mode", "hybrid", "-n", "2")
    lines = out.splitlines()
    assert code == 0 and len(lines) == 2 and "[d0]" in lines[0] and "_vector_rank=" in lines[0] and "_text_rank=1" in lines[0]
    code, out = _run(capsys, "--db", uri, "search", "idx", "boot", "--mode", "hybrid", "--rerank", "overlap", "--candidates", "3", "-n", "2", "--json")
    hits = json.loads(out)
    assert code == 0 and {h["_id"] for h in hits[:2]} == {"d0", "d1"} and hits[0]["_score"] == 1.0 and "_first_score" in hits[0]


def test_search_mode_errors_are_one_line(tmp_path, capsys):
    uri = _setup(tmp_path)
    code = main(["--db", uri, "search", "idx", "x", "--mode", "hybrid", "-n", "5", "--candidates", "2"])
    err = capsys.readouterr().err
    assert code != 0 and "candidates" in err and "Traceback" not in err
