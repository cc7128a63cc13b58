"""Celery settings of a nexus step worker, imported by ``dagster_celery.app`` (the app
deploy/celery/worker.sh starts) because worker.sh puts this folder on PYTHONPATH.

The broker and result backend URLs hold the Redis password: they are read from the worker's
environment (a secret store or a Kubernetes Secret), the same variables the runs' celery
executor reads (nexus_dagster/dagster/executors.py), and never written to a file.
"""

import os

broker_url = os.environ["NEXUS_CELERY_BROKER"]
result_backend = os.environ["NEXUS_CELERY_BACKEND"]
# one task at a time per pool process, as `dagster-celery worker start` sets it
worker_prefetch_multiplier = 1
