"""``import pinnacle`` stays light: no torch, transformers, ray, pymongo or database drivers."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = [
    "torch",
    "transformers",
    "sentence_transformers",
    "ray",
    "pymongo",
    "psycopg",
    "psycopg2",
    "pymysql",
    "MySQLdb",
    "tensorflow",
    "hnswlib",
    "faiss",
    "pgserver",
]

SCRIPT = """
import json, logging, sys
root_handlers = list(logging.getLogger().handlers)
{imports}
heavy = {heavy!r}
loaded = sorted(m for m in sys.modules if m.split(".")[0] in heavy)
print(json.dumps({{
    "loaded": loaded,
    "root_handlers_added": len(logging.getLogger().handlers) - len(root_handlers),
    "pinnacle_handlers": len(logging.getLogger("pinnacle").handlers),
}}))
"""


def _run(imports: str, tmp_path) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(imports=imports, heavy=HEAVY)],
        capture_output=True, text=True, check=True, cwd=tmp_path,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "imports",
    [
        "import pinnacle",
        "import pinnacle\nfrom pinnacle.ext.sentence_transformers import SentenceTransformer\n"
        "SentenceTransformer(identifier='m', model='/nowhere')",
        "import pinnacle.plugins.sql",
        "import pinnacle.plugins.mongodb",
        "import pinnacle\ndb = pinnacle.connect('sqlite://')\ndb['docs'].insert([{'text': 'x'}])",
    ],
    ids=["core", "ext-declared-not-loaded", "sql-plugin", "mongodb-plugin", "sqlite-connect"],
)
def test_no_heavy_imports(imports, tmp_path):
    result = _run(imports, tmp_path)
    assert result["loaded"] == []


def test_import_configures_no_logging(tmp_path):
    result = _run("import pinnacle", tmp_path)
    assert result["root_handlers_added"] == 0
    assert result["pinnacle_handlers"] == 0


def test_public_surface():
    import pinnacle

    for name in pinnacle.__all__:
        assert getattr(pinnacle, name) is not None
    for name in ("connect", "Listener", "VectorIndex", "Model", "ConfigError", "StateError", "NotFoundError"):
        assert name in pinnacle.__all__
    from pinnacle import errors

    for name in ("ConfigError", "StateError", "NotFoundError", "BackendError", "MissingDependencyError"):
        assert issubclass(getattr(errors, name), errors.PinnacleError)
    assert issubclass(errors.MissingDependencyError, ImportError)


def test_unknown_uri_scheme_lists_known(tmp_path):
    import pinnacle

    with pytest.raises(pinnacle.ConfigError) as info:
        pinnacle.connect("oracle://scott@db/x")
    assert "sqlite" in str(info.value) and "postgresql" in str(info.value)
    with pytest.raises(pinnacle.ConfigError, match="scheme"):
        pinnacle.connect("docs.db")


def test_missing_dependency_names_the_extra():
    from pinnacle import MissingDependencyError
    from pinnacle._deps import require

    with pytest.raises(MissingDependencyError, match=r"pip install 'pinnacle\[ray\]'"):
        require("no_such_module_pinnacle_test", extra="ray")
