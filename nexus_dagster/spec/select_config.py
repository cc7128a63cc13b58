"""The ``select`` transformation's config: keep, reorder, drop, rename and cast columns in one step.

```yaml
- name: tidy
  transformation_type: select
  config:
    columns: [id, email, amount, created]   # keep these, in this order (default: all)
    drop: [internal_note]                   # or drop these (not with columns)
    rename: {amount: amount_eur}            # old name -> new name
    cast: {amount: "decimal(12,2)", created: date}
```

Every name in the config is a column name of the step's input (``cast: {amount: ...}`` casts
the column that ``rename`` calls ``amount_eur``). Cast types: :data:`CAST_TYPES` and
``decimal(p,s)``.

Example:
    >>> SelectConfig(columns=["id", "amount"], cast={"amount": "decimal(12,2)"}).cast_types()
    {'amount': ('decimal', 12, 2)}
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = ["CAST_TYPES", "SelectConfig", "parse_cast_type"]

CAST_TYPES = ("int", "bigint", "double", "float", "string", "bool", "date", "timestamp")
"""The type names of ``cast`` besides ``decimal(p,s)``; int is 64-bit like pandas' int64."""

_DECIMAL = re.compile(r"^\s*decimal\s*\(\s*([0-9]+)\s*,\s*([0-9]+)\s*\)\s*$", re.IGNORECASE)


def parse_cast_type(text: str) -> tuple[str, int, int] | tuple[str]:
    """``"decimal(12,2)"`` -> ``("decimal", 12, 2)``; ``"int"`` -> ``("int",)``.

    Raises:
        ValueError: an unknown type or a decimal precision/scale out of range.
    """
    name = text.strip().lower() if isinstance(text, str) else text
    if name in CAST_TYPES:
        return (name,)
    match = _DECIMAL.match(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(
            f"unknown type {text!r}; use one of: {', '.join(CAST_TYPES)}, decimal(p,s)"
        )
    precision, scale = int(match.group(1)), int(match.group(2))
    if not 1 <= precision <= 38 or scale > precision:
        raise ValueError(
            f"{text!r}: decimal precision must be 1..38 and scale 0..precision, e.g. "
            "decimal(12,2)"
        )
    return ("decimal", precision, scale)


class SelectConfig(BaseModel):
    """``columns`` (keep and order) or ``drop``, ``rename`` old -> new, ``cast`` column ->
    type; every name is an input column name."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["select"] = Field("select", exclude=True, repr=False)
    columns: list[str] | None = Field(None, min_length=1)
    drop: list[str] = Field(default_factory=list)
    rename: dict[str, str] = Field(default_factory=dict)
    cast: dict[str, str] = Field(default_factory=dict)

    @field_validator("columns", "drop", mode="before")
    @classmethod
    def _as_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("cast")
    @classmethod
    def _known_types(cls, value: dict[str, str]) -> dict[str, str]:
        for column, type_name in value.items():
            try:
                parse_cast_type(type_name)
            except ValueError as exc:
                raise ValueError(f"cast of {column!r}: {exc}") from None
        return value

    @model_validator(mode="after")
    def _consistent(self) -> SelectConfig:
        if self.columns is not None and self.drop:
            raise ValueError(
                "give columns (the ones to keep) or drop (the ones to remove), not both"
            )
        if not (self.columns or self.drop or self.rename or self.cast):
            raise ValueError("select needs columns, drop, rename or cast")
        for field, names in (("columns", self.columns or []), ("drop", self.drop)):
            repeated = sorted({n for n in names if names.count(n) > 1})
            if repeated:
                raise ValueError(f"{field} names {', '.join(map(repr, repeated))} twice")
        kept = set(self.columns) if self.columns is not None else None
        for field, names in (("rename", self.rename), ("cast", self.cast)):
            for name in names:
                if name in self.drop or (kept is not None and name not in kept):
                    raise ValueError(
                        f"{field} names {name!r}, which this select drops; keep it or remove "
                        f"it from {field}"
                    )
        return self

    def cast_types(self) -> dict[str, tuple[Any, ...]]:
        """Column -> parsed cast type (see :func:`parse_cast_type`)."""
        return {column: parse_cast_type(text) for column, text in self.cast.items()}

    def outputs(self, input_columns: list[str]) -> list[tuple[str, str]]:
        """(input column, output name) of each column the step keeps, in output order."""
        names = self.columns if self.columns is not None else [
            c for c in input_columns if c not in self.drop
        ]
        return [(name, self.rename.get(name, name)) for name in names]
