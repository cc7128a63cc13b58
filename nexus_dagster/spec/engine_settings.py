"""The job-level ``engine`` block: memory settings of the transformation engine (DuckDB).

Example (YAML)::

    engine:
      memory_limit: 2GB          # blocking steps (sort, aggregate, deduplicate, join) spill
      temp_directory: /mnt/tmp   # where they spill (relative paths: from the project root)
      threads: 2                 # engine threads (default: by memory_limit and the CPUs)
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

_SIZE_RE = re.compile(r"^\s*[0-9]+(\.[0-9]+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)\s*$", re.I)


class EngineSettings(BaseModel):
    """How much memory, disk and CPU the job's transformations may use.

    Attributes:
        memory_limit: the engine's memory limit, a number with a unit (``512MB``, ``2GB``,
            ``1.5GiB``); steps that must see all rows spill to ``temp_directory`` past it.
        temp_directory: the folder spill files go to (a private folder is made inside it and
            removed after the run); default: the system temporary folder.
        threads: how many threads the engine uses; default: the CPUs, fewer under a small
            ``memory_limit`` (about 256 MB per thread) so that spilling can succeed.
    """

    model_config = ConfigDict(extra="forbid")

    memory_limit: str | None = None
    temp_directory: str | None = Field(None, min_length=1)
    threads: int | None = Field(None, ge=1, le=1024)

    @field_validator("memory_limit")
    @classmethod
    def _size(cls, value: str | None) -> str | None:
        if value is not None and not _SIZE_RE.match(value):
            raise ValueError(
                f"memory_limit {value!r} is not a size; write a number and a unit such as "
                "512MB, 2GB or 1.5GiB"
            )
        return value.strip() if value is not None else None
