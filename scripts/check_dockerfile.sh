#!/usr/bin/env bash
# Run deploy/Dockerfile's install steps (its RUN instructions that start with `uv`) in a temporary
# virtualenv instead of an image, then load the code location from that virtualenv: the offline
# check of the Dockerfile, for CI machines without docker. With docker, build the image instead:
#   docker build -f deploy/Dockerfile -t nexus-dagster:check .
# Usage: bash scripts/check_dockerfile.sh [KEEP_DIR]   (exit 0: installed and loaded)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
work=${1:-$(mktemp -d -t nexus-dockerfile-XXXXXX)}
[[ -n ${1:-} ]] || trap 'rm -rf "$work"' EXIT
export VENV=$work/venv
# the build context as docker would see it (deploy/Dockerfile's COPY lines)
context=$work/context
mkdir -p "$context/scripts"
cp pyproject.toml README.md "$context/"
cp scripts/uv-overrides.txt "$context/scripts/"
cp -r nexus_dagster job_specs "$context/"
find "$context" -name __pycache__ -prune -exec rm -rf {} +
# RUN instructions with their continuation lines joined; keep those that start with `uv`, drop
# BuildKit --mount options
mapfile -t steps < <(python3 - deploy/Dockerfile <<'PY'
import re, sys
text = re.sub(r"\\\n", " ", open(sys.argv[1]).read())
for line in text.splitlines():
    if line.startswith("RUN "):
        command = re.sub(r"--mount=\S+\s+", "", line[4:]).strip()
        if command.startswith("uv "):
            print(command)
PY
)
if [[ ${#steps[@]} -eq 0 ]]; then
    echo "check_dockerfile: no RUN step starting with uv in deploy/Dockerfile" >&2
    exit 1
fi
for step in "${steps[@]}"; do
    echo "check_dockerfile: RUN $step" >&2
    (cd "$context" && bash -euo pipefail -c "$step")
done
# the image's CMD loads nexus_dagster.definitions (the installed package, not the sources: run
# outside the context) from the baked-in specs; run workers load the instance's run launcher class
(cd "$work" && NEXUS_JOB_SPECS="$context/job_specs" "$VENV/bin/python" -c '
import dagster_celery_k8s, dagster_k8s, dagster_postgres
import nexus_dagster
assert "/venv/" in nexus_dagster.__file__, nexus_dagster.__file__
from nexus_dagster.definitions import defs
jobs = sorted(j.name for j in defs.resolve_all_job_defs() if not j.name.startswith("__"))
print("check_dockerfile: definitions loaded:", ", ".join(jobs))
')
"$VENV/bin/dagster" code-server start --help >/dev/null
echo "check_dockerfile: ok" >&2
