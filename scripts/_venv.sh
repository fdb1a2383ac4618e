# Sourced by scripts/demo.sh and scripts/test.sh: creates .venv (or reuses it) and installs
# pinnacle with the extra named in $1. torch==2.13.0 goes first: it is the CPU build, and an
# unpinned torch pulled in by a later package would download gigabytes of CUDA libraries.
# A stamp skips the installs while pyproject.toml is unchanged; delete .venv to start over.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
extra="$1"
if [ ! -x .venv/bin/python ]; then
    echo "Creating .venv with $(${PYTHON:-python3} --version)"
    "${PYTHON:-python3}" -m venv .venv
fi
stamp=".venv/.pinnacle-installed-$extra"
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "Installing torch==2.13.0, then pinnacle[$extra] (editable) into .venv"
    .venv/bin/python -m pip install --quiet torch==2.13.0
    .venv/bin/python -m pip install --quiet -e ".[$extra]"
    echo "$want" > "$stamp"
fi
