#!/usr/bin/env bash
# The project's test command: installs the package with its test extras, starts the test
# database servers on 127.0.0.1 (scripts/services.py), runs ruff and pytest, and stops the
# servers it started on exit. Extra arguments go to pytest (default: -q).
#   bash scripts/test.sh [pytest args...]
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
exec </dev/null

PY=${PYTHON:-python3}

if command -v uv >/dev/null 2>&1; then
    UV=(uv)
else
    if ! "$PY" -m uv --version >/dev/null 2>&1; then
        echo "[test.sh] installing uv" >&2
        "$PY" -m pip install -q uv || "$PY" -m pip install -q --break-system-packages uv
    fi
    UV=("$PY" -m uv)
fi

if [[ ! -x .venv/bin/python ]]; then
    "${UV[@]}" venv -p python3.11 .venv
fi
"${UV[@]}" pip install -q -p .venv -e '.[test]'

cleanup() {
    local rc=$?
    "$PY" scripts/services.py stop --lease $$ || true
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"$PY" scripts/services.py start --lease $$ >/dev/null
# shellcheck disable=SC1091
source .services/env

# Lint first, but still run the tests when lint fails so one run shows both; the exit code is
# pytest's, or ruff's when pytest passed.
lint_rc=0
.venv/bin/ruff check . || lint_rc=$?

if [[ $# -eq 0 ]]; then
    set -- -q
fi
rc=0
.venv/bin/python -m pytest "$@" || rc=$?
if [[ $rc -eq 0 && $lint_rc -ne 0 ]]; then
    echo "[test.sh] pytest passed but ruff check failed (exit $lint_rc)" >&2
    rc=$lint_rc
fi
exit "$rc"
