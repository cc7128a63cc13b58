"""The deployment recipe, checked offline: deploy/dagster.yaml is a valid Dagster instance config,
the Helm values use only keys of Dagster's chart and agree with dagster.yaml, no secret is
written in them, and deploy/Dockerfile's install steps install a package that loads the code
location (scripts/check_dockerfile.sh, no docker needed)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from dagster._core.instance.config import dagster_instance_config

from tests.integration.deploy.postgres_instance import DEPLOY_YAML, REPO

DEPLOY = REPO / "deploy"
HELM_VALUES = [DEPLOY / "helm" / "values.yaml", DEPLOY / "helm" / "values-celery.yaml"]
CHART_KEYS = Path(__file__).with_name("helm_chart_keys.yaml")


def _unknown_keys(values: Any, allowed: Any, path: str = "") -> list[str]:
    """Paths in ``values`` that the chart's key tree ``allowed`` does not have."""
    if allowed is None:
        return []
    if isinstance(allowed, dict):
        if not isinstance(values, dict):
            return [f"{path} (expected a mapping)"]
        found = []
        for key, value in values.items():
            if key not in allowed:
                found.append(f"{path}.{key}".lstrip("."))
            else:
                found += _unknown_keys(value, allowed[key], f"{path}.{key}")
        return found
    if isinstance(allowed, list):
        if not isinstance(values, list):
            return [f"{path} (expected a list)"]
        return [p for i, item in enumerate(values)
                for p in _unknown_keys(item, allowed[0], f"{path}[{i}]")]
    return []


def test_production_instance_config_is_accepted_by_dagster(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    env = {"DAGSTER_PG_HOST": "db", "DAGSTER_PG_PORT": "5432", "DAGSTER_PG_USER": "dagster",
           "DAGSTER_PG_PASSWORD": "pw", "DAGSTER_PG_DB": "dagster",
           "DAGSTER_DEQUEUE_INTERVAL_SECONDS": "5"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    (tmp_path / "dagster.yaml").write_bytes(DEPLOY_YAML.read_bytes())
    config, _ = dagster_instance_config(str(tmp_path))
    assert config["storage"]["postgres"]["postgres_db"]["scheme"] == "postgresql+psycopg2"
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert config["concurrency"]["runs"]["max_concurrent_runs"] == 4
    assert config["concurrency"]["pools"]["default_limit"] == 1
    assert config["run_monitoring"]["enabled"] is True
    # slots of steps whose process died come back (tests/integration/deploy/test_celery.py)
    assert config["run_monitoring"]["free_slots_after_run_end_seconds"] == 60
    assert config["telemetry"]["enabled"] is False
    # the password is an env reference, never a value in the file
    assert config["storage"]["postgres"]["postgres_db"]["password"] == {
        "env": "DAGSTER_PG_PASSWORD"}


@pytest.mark.parametrize("path", HELM_VALUES, ids=lambda p: p.name)
def test_helm_values_use_only_keys_of_dagsters_chart(path: Path):
    values = yaml.safe_load(path.read_text())
    assert _unknown_keys(values, yaml.safe_load(CHART_KEYS.read_text())) == []


@pytest.mark.parametrize("path", HELM_VALUES, ids=lambda p: p.name)
def test_helm_values_hold_no_secret_value(path: Path):
    text = path.read_text()
    body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    assert not re.search(r"(?i)(password|secret_key|token)\s*:\s*\S", body)
    assert "envSecrets" in body or "redis" in body


def test_helm_values_queue_and_pools_match_the_instance_profile():
    helm = yaml.safe_load(HELM_VALUES[0].read_text())
    instance = yaml.safe_load(DEPLOY_YAML.read_text())["concurrency"]
    runs = helm["concurrency"]["runs"]
    assert runs["maxConcurrentRuns"] == instance["runs"]["max_concurrent_runs"]
    assert runs["tagConcurrencyLimits"] == instance["runs"]["tag_concurrency_limits"]
    assert helm["concurrency"]["pools"]["defaultLimit"] == instance["pools"]["default_limit"]
    assert helm["postgresql"]["postgresqlScheme"] == "postgresql+psycopg2"
    assert helm["dagsterDaemon"]["runMonitoring"]["freeSlotsAfterRunEndSeconds"] == yaml.safe_load(
        DEPLOY_YAML.read_text())["run_monitoring"]["free_slots_after_run_end_seconds"]
    # the code server listens where the chart's user deployment expects it
    [deployment] = helm["dagster-user-deployments"]["deployments"]
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert f'"-p", "{deployment["port"]}"' in dockerfile
    assert '"-m", "nexus_dagster.definitions"' in dockerfile
    assert deployment["codeServerArgs"] == ["-m", "nexus_dagster.definitions"]


def test_celery_workers_manifest_runs_the_tested_worker_script_from_the_code_image():
    """deploy/celery/workers.yaml starts deploy/celery/worker.sh (what test_celery.py starts)
    from the code location's image, with the broker Secret the run pods get too."""
    [workers] = list(yaml.safe_load_all((DEPLOY / "celery" / "workers.yaml").read_text()))
    [container] = workers["spec"]["template"]["spec"]["containers"]
    [deployment] = yaml.safe_load(HELM_VALUES[0].read_text())[
        "dagster-user-deployments"]["deployments"]
    assert container["image"] == f"{deployment['image']['repository']}:{deployment['image']['tag']}"
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert "WORKDIR /opt/nexus" in dockerfile and "COPY deploy/celery deploy/celery" in dockerfile
    assert container["command"] == ["bash", "/opt/nexus/deploy/celery/worker.sh"]
    assert {"name": "NEXUS_WORKER_CONCURRENCY", "value": "1"} in container["env"]
    secrets = {source["secretRef"]["name"] for source in container["envFrom"]}
    assert secrets == {"nexus-secrets", "nexus-celery"}
    celery_values = yaml.safe_load(HELM_VALUES[1].read_text())
    run_secrets = celery_values["runLauncher"]["config"]["k8sRunLauncher"]["envSecrets"]
    assert {s["name"] for s in run_secrets} == secrets
    # the broker URLs (with the Redis password) come from the worker's environment
    config = (DEPLOY / "celery" / "dagster_celery_config.py").read_text()
    assert 'broker_url = os.environ["NEXUS_CELERY_BROKER"]' in config
    assert 'result_backend = os.environ["NEXUS_CELERY_BACKEND"]' in config


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_dockerfile_install_steps_install_a_package_that_loads_the_code_location(tmp_path):
    done = subprocess.run(["bash", str(REPO / "scripts" / "check_dockerfile.sh"),
                           str(tmp_path)], capture_output=True, text=True, timeout=880)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "check_dockerfile: definitions loaded: category_totals, demo_orders" in done.stdout
    assert (tmp_path / "venv" / "bin" / "dagster").exists()
