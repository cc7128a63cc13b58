"""The ``window`` transformation's config: per-row values computed over groups of rows.

```yaml
- name: running
  transformation_type: window
  config:
    partition_by: [customer_id]        # optional: the whole data is one partition without it
    order_by: [order_date]             # optional for most functions (then: row order)
    ascending: true                    # one flag or one per order_by column, like sort
    columns:                           # output column -> [column, function, arg...]
      running_total: [amount, cumsum]
      previous: [amount, lag]          # lag/lead: [column, lag, offset=1, default=null]
      avg_7_rows: [amount, rolling_mean, 7]          # N rows (min_periods = N, like pandas)
      avg_7_days: [amount, rolling_mean, 7d]         # a time range over the order column
      share: [amount, sum]             # whole-partition sum/mean/std/var/min/max/count/median
      p90: [amount, quantile, 0.9]
      rank: [rank]                     # ranking functions take no column
      quartile: [ntile, 4]
```

The models check names, argument counts and argument values, so ``nexus validate`` reports a
bad window column with its file, line and field; the SQL is
:mod:`nexus_dagster.transforms.window_functions`.

Example:
    >>> config = WindowConfig(order_by=["day"], columns={"total": ["amount", "cumsum"]})
    >>> config.window_columns()["total"]
    WindowColumn(column='amount', function='cumsum', args=())
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "RANKING_FUNCTIONS",
    "WINDOW_FUNCTIONS",
    "WindowColumn",
    "WindowConfig",
    "time_range_microseconds",
]

RANKING_FUNCTIONS = ("row_number", "rank", "dense_rank", "percent_rank", "ntile")
"""Functions of the window's order itself: written without a column (``[rank]``)."""

WINDOW_FUNCTIONS: dict[str, tuple[int, int, str]] = {
    # name: (fewest arguments, most arguments, what they are)
    "lag": (0, 2, "offset=1, default=null"),
    "lead": (0, 2, "offset=1, default=null"),
    "cumsum": (0, 0, ""),
    "cummin": (0, 0, ""),
    "cummax": (0, 0, ""),
    "rolling_sum": (1, 2, "rows or a time range like 7d, min_periods"),
    "rolling_mean": (1, 2, "rows or a time range like 7d, min_periods"),
    "rolling_min": (1, 2, "rows or a time range like 7d, min_periods"),
    "rolling_max": (1, 2, "rows or a time range like 7d, min_periods"),
    "row_number": (0, 0, ""),
    "rank": (0, 0, ""),
    "dense_rank": (0, 0, ""),
    "percent_rank": (0, 0, ""),
    "ntile": (1, 1, "the number of buckets"),
    "first": (0, 0, ""),
    "last": (0, 0, ""),
    "sum": (0, 0, ""),
    "mean": (0, 0, ""),
    "std": (0, 0, ""),
    "var": (0, 0, ""),
    "min": (0, 0, ""),
    "max": (0, 0, ""),
    "count": (0, 0, ""),
    "median": (0, 0, ""),
    "quantile": (1, 1, "q between 0 and 1"),
}
"""Window function name -> (fewest, most arguments after the function, their meaning)."""

_NEEDS_ORDER = ("rank", "dense_rank", "percent_rank", "ntile")
_TIME_RANGE = re.compile(r"^\s*([0-9]+)\s*(w|d|h|m|s)\s*$")
_UNIT_MICROSECONDS = {"w": 7 * 86_400, "d": 86_400, "h": 3_600, "m": 60, "s": 1}


def time_range_microseconds(value: Any) -> int | None:
    """``"7d"`` -> its length in microseconds; None when ``value`` is not a time range.

    Units: ``w`` weeks, ``d`` days, ``h`` hours, ``m`` minutes, ``s`` seconds.
    """
    if not isinstance(value, str):
        return None
    match = _TIME_RANGE.match(value)
    if match is None:
        return None
    return int(match.group(1)) * _UNIT_MICROSECONDS[match.group(2)] * 1_000_000


@dataclass(frozen=True)
class WindowColumn:
    """One output column of a window step.

    Attributes:
        column: the input column it reads (None for ranking functions).
        function: a name of :data:`WINDOW_FUNCTIONS`.
        args: the arguments after the function, as written.
    """

    column: str | None
    function: str
    args: tuple[Any, ...]

    @property
    def time_range(self) -> int | None:
        """A rolling window's time range in microseconds (None for a window of N rows)."""
        if self.function.startswith("rolling_"):
            return time_range_microseconds(self.args[0])
        return None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def parse_window_column(output: str, spec: Any) -> WindowColumn:
    """``[column, function, arg...]`` (or ``[function, arg...]`` for ranking) checked.

    Raises:
        ValueError: naming the output column, what is wrong and the fix.
    """
    known = ", ".join(WINDOW_FUNCTIONS)
    if isinstance(spec, str):
        spec = [spec]
    if not isinstance(spec, list | tuple) or not spec or not all(
        isinstance(p, str | int | float | bool) or p is None for p in spec
    ):
        raise ValueError(
            f"{output!r}: write [column, function, arg...], e.g. [amount, cumsum], or "
            f"[function] for {', '.join(RANKING_FUNCTIONS)}"
        )
    first, rest = spec[0], list(spec[1:])
    if first in RANKING_FUNCTIONS and not (rest and rest[0] in WINDOW_FUNCTIONS):
        column, function, args = None, first, rest
    else:
        if len(spec) < 2 or not isinstance(first, str):
            hint = (f"; {first!r} needs a column: [column, {first}]"
                    if first in WINDOW_FUNCTIONS else "")
            raise ValueError(f"{output!r}: write [column, function, arg...]{hint}")
        column, function, args = first, spec[1], rest[1:]
        if function not in WINDOW_FUNCTIONS:
            raise ValueError(
                f"{output!r} uses unknown window function {function!r}; known: {known}"
            )
        if function in RANKING_FUNCTIONS:
            raise ValueError(
                f"{output!r}: {function} ranks rows by the window's order_by and takes no "
                f"column: write [{function}{', ...' if function == 'ntile' else ''}]"
            )
    fewest, most, meaning = WINDOW_FUNCTIONS[function]
    if not fewest <= len(args) <= most:
        expected = str(fewest) if fewest == most else f"{fewest} to {most}"
        what = f" ({meaning})" if meaning else ""
        raise ValueError(
            f"{output!r}: {function} takes {expected} argument(s){what}, got {len(args)}"
        )
    _check_args(output, function, args)
    return WindowColumn(column, function, tuple(args))


def _check_args(output: str, function: str, args: list[Any]) -> None:
    if function in ("lag", "lead") and args and not (_is_int(args[0]) and args[0] >= 0):
        raise ValueError(f"{output!r}: the {function} offset must be a whole number >= 0")
    if function == "ntile" and not (_is_int(args[0]) and args[0] >= 1):
        raise ValueError(f"{output!r}: ntile needs a number of buckets >= 1, e.g. [ntile, 4]")
    if function == "quantile" and not (
        isinstance(args[0], int | float) and not isinstance(args[0], bool) and 0 <= args[0] <= 1
    ):
        raise ValueError(f"{output!r}: quantile needs q between 0 and 1, e.g. [amount, quantile, "
                         "0.9]")
    if function.startswith("rolling_"):
        window = args[0]
        if not ((_is_int(window) and window >= 1) or time_range_microseconds(window)):
            raise ValueError(
                f"{output!r}: {function} needs a number of rows >= 1 or a time range such as "
                f"7d, 12h, 30m, 45s, 2w; got {window!r}"
            )
        if len(args) > 1:
            minimum = args[1]
            if not (_is_int(minimum) and minimum >= 0) or (
                _is_int(window) and minimum > window
            ):
                raise ValueError(
                    f"{output!r}: min_periods must be a whole number from 0 to the window size"
                )


class WindowConfig(BaseModel):
    """``partition_by`` / ``order_by`` columns and ``columns``: output -> [column, function,
    arg...] (see the module docstring)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["window"] = Field("window", exclude=True, repr=False)
    partition_by: list[str] = Field(default_factory=list)
    order_by: list[str] = Field(default_factory=list)
    ascending: bool | list[bool] = True
    columns: dict[str, Any] = Field(min_length=1)

    @field_validator("partition_by", "order_by", mode="before")
    @classmethod
    def _as_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("columns")
    @classmethod
    def _known_functions(cls, value: dict[str, Any]) -> dict[str, Any]:
        for output, spec in value.items():
            parse_window_column(output, spec)
        return value

    @model_validator(mode="after")
    def _order_fits(self) -> WindowConfig:
        if isinstance(self.ascending, list) and len(self.ascending) != len(self.order_by):
            raise ValueError(
                f"ascending has {len(self.ascending)} flags for {len(self.order_by)} order_by "
                "columns; give one flag per column or a single true/false"
            )
        for output, column in self.window_columns().items():
            if column.function in _NEEDS_ORDER and not self.order_by:
                raise ValueError(
                    f"{output!r}: {column.function} ranks rows by order_by: add order_by: [column]"
                )
            if column.time_range is not None:
                if len(self.order_by) != 1:
                    raise ValueError(
                        f"{output!r}: the time range {column.args[0]!r} is measured on the "
                        "order column: give exactly one order_by column (a date or timestamp)"
                    )
                if self.ascending is False or self.ascending == [False]:
                    raise ValueError(
                        f"{output!r}: a time range looks back in time: order_by must be "
                        "ascending"
                    )
        return self

    def window_columns(self) -> dict[str, WindowColumn]:
        """Each output column, parsed."""
        return {out: parse_window_column(out, spec) for out, spec in self.columns.items()}

    def order_flags(self) -> list[bool]:
        """One ascending flag per ``order_by`` column."""
        if isinstance(self.ascending, list):
            return list(self.ascending)
        return [self.ascending] * len(self.order_by)
