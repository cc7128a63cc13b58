# Sourced by demo.sh and test.sh: make .venv (with uv) and install the project into it.
# Usage: source scripts/bootstrap.sh [extras]   e.g. `source scripts/bootstrap.sh test`
if ! python3 -m uv --version >/dev/null 2>&1; then
  python3 -m pip install -q --disable-pip-version-check uv
fi
if [ ! -x .venv/bin/python ]; then
  python3 -m uv venv -q -p python3.11 .venv
fi
python3 -m uv pip install -q -p .venv -e ".${1:+[$1]}"
