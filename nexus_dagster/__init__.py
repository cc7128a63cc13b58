"""nexus-dagster: enterprise ETL jobs described in YAML or Python, run as Dagster assets.

The names of the Nexus ETL API import from here::

    from nexus_dagster import (ETLManager, ETLJob, DataSource, DataTarget, Transformation,
                               SourceType, TargetType, TransformationType, ETLStatus,
                               ETLMetrics, SecurityManager, ConnectorFactory)

The names that need Dagster import it on first use, so ``import nexus_dagster`` stays
Dagster-free: ``NexusJobs`` (the ``dg`` component for a spec folder), ``NexusIOManager``
(hand-written assets stored through a nexus connection), ``definitions_from_folder`` (a spec
folder as Dagster Definitions) and ``resource_class`` (the resource type of a connector, to
override a connection).
"""

from importlib import import_module
from typing import Any

from nexus_dagster.errors import (
    ConnectorError,
    LoadError,
    NexusError,
    RetriableError,
    SpecError,
    TransformError,
)
from nexus_dagster.python_api import (
    ConnectorFactory,
    ETLManager,
    ETLMetrics,
    ETLStatus,
    SecurityManager,
)
from nexus_dagster.spec.models import (
    DataSource,
    DataTarget,
    ETLJob,
    SourceType,
    TargetType,
    Transformation,
    TransformationType,
    WriteMode,
)

__all__ = [
    "ConnectorError",
    "ConnectorFactory",
    "DataSource",
    "DataTarget",
    "ETLJob",
    "ETLManager",
    "ETLMetrics",
    "ETLStatus",
    "LoadError",
    "NexusError",
    "NexusIOManager",
    "NexusJobs",
    "RetriableError",
    "SecurityManager",
    "SourceType",
    "SpecError",
    "TargetType",
    "TransformError",
    "Transformation",
    "TransformationType",
    "WriteMode",
    "definitions_from_folder",
    "resource_class",
]


#: public names defined in nexus_dagster.dagster (name -> module), imported by ``__getattr__``
#: when first used
_DAGSTER_NAMES = {
    "NexusIOManager": "nexus_dagster.dagster.io_manager",
    "NexusJobs": "nexus_dagster.dagster.component",
    "definitions_from_folder": "nexus_dagster.dagster.factory",
    "resource_class": "nexus_dagster.dagster.resources",
}


def __getattr__(name: str) -> Any:
    """Import a name that needs Dagster (see ``_DAGSTER_NAMES``) on first use."""
    module = _DAGSTER_NAMES.get(name)
    if module is None:
        raise AttributeError(f"module 'nexus_dagster' has no attribute {name!r}")
    return getattr(import_module(module), name)


def __dir__() -> list[str]:
    """The module's names including the lazy ones (``dg`` finds components through ``dir``)."""
    return sorted({*globals(), *_DAGSTER_NAMES})
