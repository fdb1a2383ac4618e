#!/usr/bin/env bash
# The main job: install pinnacle (in .venv) and run `pinnacle demo`.
# Arguments go to the demo, e.g. `bash scripts/demo.sh --rows 1000`.
source "$(dirname "$0")/_venv.sh" demo
exec .venv/bin/pinnacle demo "$@"
