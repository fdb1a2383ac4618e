#!/usr/bin/env bash
# The test suite: install pinnacle with its test extra (in .venv) and run pytest.
# Arguments go to pytest, e.g. `bash scripts/test.sh tests/cli -x`.
source "$(dirname "$0")/_venv.sh" test
exec .venv/bin/python -m pytest -q "$@"
