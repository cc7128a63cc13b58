#!/usr/bin/env bash
# One Celery worker running the steps of nexus jobs whose spec says `execution: {executor:
# celery}` (README "Running in production", the Celery variant). Start one per machine or
# container, each in its own working directory; they share only the Dagster instance's
# PostgreSQL, the Redis broker and the object store the steps stage Parquet in.
#
# Environment (from a secret store / Kubernetes Secret, never a spec or an image):
#   DAGSTER_HOME          a folder holding deploy/dagster.yaml (with DAGSTER_PG_* set)
#   NEXUS_JOB_SPECS       this worker's copy of the project's specs (baked into the image)
#   NEXUS_CELERY_BROKER   redis://:PASSWORD@host:6379/0, the same as the runs' executor
#   NEXUS_CELERY_BACKEND  redis://:PASSWORD@host:6379/1
#   NEXUS_WORKER_NAME     the worker's name (default nexus); Celery adds @<host>
#   NEXUS_WORKER_CONCURRENCY  steps at once (default 1: one step per worker process)
#   and every ${VAR} the specs' connections name (the steps read them here, at run time).
#
# This is the command `dagster-celery worker start -A dagster_celery.app -q dagster` runs, with
# two differences: the broker settings come from dagster_celery_config.py next to this script,
# which reads them from the environment (dagster-celery would write the resolved URLs, password
# included, into $DAGSTER_HOME/dagster_celery/config/), and `exec` makes `celery worker` this
# process (dagster-celery would keep it as a child, and a SIGTERM to the container's first
# process would kill the worker mid-step). SIGTERM: Celery finishes the step in progress, then
# exits.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}"
exec celery -A dagster_celery.app worker \
    --prefetch-multiplier=1 \
    -Q dagster \
    -n "${NEXUS_WORKER_NAME:-nexus}@%h" \
    -l "${NEXUS_WORKER_LOGLEVEL:-INFO}" \
    --concurrency="${NEXUS_WORKER_CONCURRENCY:-1}" \
    --without-gossip --without-mingle
