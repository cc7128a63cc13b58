"""Helpers shared by the transformation tests."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pyarrow as pa

from nexus_dagster.relation import Relation
from nexus_dagster.spec.models import Transformation
from nexus_dagster.transforms.chain import apply_transformations


def step(name: str, kind: str, code: str | None = None, **config: Any) -> Transformation:
    """A Transformation with its config given as keyword arguments."""
    return Transformation(name=name, transformation_type=kind, config=config, custom_code=code)


def run(data: pa.Table | dict[str, pa.Table], *steps: Transformation, **kwargs: Any) -> pa.Table:
    """Apply steps to one table (source ``src``) or named tables; return the result."""
    sources = data if isinstance(data, dict) else {"src": data}
    relations = {name: Relation.from_table(t, name, batch_size=3) for name, t in sources.items()}
    return apply_transformations(relations, list(steps), **kwargs).to_table()


def frame(table: pa.Table) -> pd.DataFrame:
    """Arrow -> pandas with a clean index, for comparisons."""
    return table.to_pandas().reset_index(drop=True)
