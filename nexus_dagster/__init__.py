"""nexus-dagster: enterprise ETL jobs described in YAML or Python, run as Dagster assets.

The names of the Nexus ETL API import from here::

    from nexus_dagster import (ETLManager, ETLJob, DataSource, DataTarget, Transformation,
                               SourceType, TargetType, TransformationType, ETLStatus,
                               ETLMetrics, SecurityManager, ConnectorFactory)

The names that need Dagster import it on first use, so ``import nexus_dagster`` stays
Dagster-free: ``NexusJobs`` (the ``dg`` component for a spec folder) and ``NexusIOManager``
(hand-written assets stored through a nexus connection).
"""

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
]


#: public names defined in nexus_dagster.dagster, imported by ``__getattr__`` when first used
_DAGSTER_NAMES = ("NexusIOManager", "NexusJobs")


def __getattr__(name: str) -> Any:
    """Import a name that needs Dagster (see ``_DAGSTER_NAMES``) on first use."""
    if name == "NexusJobs":
        from nexus_dagster.dagster.component import NexusJobs

        return NexusJobs
    if name == "NexusIOManager":
        from nexus_dagster.dagster.io_manager import NexusIOManager

        return NexusIOManager
    raise AttributeError(f"module 'nexus_dagster' has no attribute {name!r}")


def __dir__() -> list[str]:
    """The module's names including the lazy ones (``dg`` finds components through ``dir``)."""
    return sorted({*globals(), *_DAGSTER_NAMES})
