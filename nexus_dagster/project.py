"""Where a project's files live: the spec folder and the Dagster instance home."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

SPECS_ENV = "NEXUS_JOB_SPECS"


def specs_dir() -> Path:
    """The spec folder: ``$NEXUS_JOB_SPECS`` or ``./job_specs``."""
    return Path(os.environ.get(SPECS_ENV) or Path.cwd() / "job_specs")


def ensure_dagster_home(root: Path) -> Path:
    """Use ``$DAGSTER_HOME``, or make ``<root>/.dagster_home`` with the project's dagster.yaml.

    Dagster keeps run history, the event log and schedules there, so history survives
    processes; the project's ``dagster.yaml`` (instance settings) is copied in when it changed.
    """
    home = os.environ.get("DAGSTER_HOME")
    if home:
        path = Path(home)
        path.mkdir(parents=True, exist_ok=True)
        return path
    path = root / ".dagster_home"
    path.mkdir(parents=True, exist_ok=True)
    config = root / "dagster.yaml"
    copied = path / "dagster.yaml"
    if config.exists() and (not copied.exists() or copied.read_bytes() != config.read_bytes()):
        shutil.copyfile(config, copied)
    os.environ["DAGSTER_HOME"] = str(path)
    return path
