# Sourced by demo.sh and test.sh: make .venv (with uv) and install the project into it.
# Usage: source scripts/bootstrap.sh [extras]   e.g. `source scripts/bootstrap.sh test`
_py=${PYTHON:-python3}
if command -v uv >/dev/null 2>&1; then
    _uv=(uv)
else
    if ! "$_py" -m uv --version >/dev/null 2>&1; then
        echo "[bootstrap] installing uv" >&2
        "$_py" -m pip install -q --disable-pip-version-check uv \
            || "$_py" -m pip install -q --disable-pip-version-check --break-system-packages uv
    fi
    _uv=("$_py" -m uv)
fi
if [[ ! -x .venv/bin/python ]]; then
    "${_uv[@]}" venv -q -p python3.11 .venv
fi
# --compile-bytecode: where PYTHONDONTWRITEBYTECODE is set, every process would otherwise
# recompile Dagster (~6 s each).
"${_uv[@]}" pip install -q --compile-bytecode -p .venv --override scripts/uv-overrides.txt \
    -e ".${1:+[$1]}"
