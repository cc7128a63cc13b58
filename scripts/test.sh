#!/usr/bin/env bash
# The project's test command: installs the package with its test extras, starts the test
# database servers on 127.0.0.1 (scripts/services.py), runs ruff and pytest, and stops the
# servers it started on exit. Extra arguments go to pytest (default: -q).
#   bash scripts/test.sh [pytest args...]
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
exec </dev/null

PY=${PYTHON:-python3}
# shellcheck source=scripts/bootstrap.sh
source scripts/bootstrap.sh test

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
