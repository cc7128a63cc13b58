"""nexus-dagster: enterprise ETL jobs described in YAML or Python, run as Dagster assets.

The names of the Nexus ETL API import from here::

    from nexus_dagster import (ETLManager, ETLJob, DataSource, DataTarget, Transformation,
                               SourceType, TargetType, TransformationType, ETLStatus,
                               ETLMetrics, SecurityManager, ConnectorFactory)
"""

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
