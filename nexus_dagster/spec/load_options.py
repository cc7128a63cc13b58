"""Spec blocks about what a load does besides adding rows: slowly changing dimensions (type 2)
on targets, and what happens to a source's data once every target committed.

Example:
    >>> Scd2Spec(valid_from="effective_at", close_missing=True).is_current
    'is_current'
    >>> AfterLoadSpec(move_to="archive/").delete
    False
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = ["DEFAULT_MAX_DELETE_FRACTION", "AfterLoadSpec", "Scd2Spec"]

#: a version column name (letters, digits, underscores)
COLUMN_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"

#: the share of a target's rows a ``sync`` load (or an SCD2 load closing missing keys) may
#: remove before the load is refused
DEFAULT_MAX_DELETE_FRACTION = 0.5


def _as_list(value: object) -> object:
    return [value] if isinstance(value, str) else value


class Scd2Spec(BaseModel):
    """``scd2:`` on a ``write_mode: scd2`` target: the version columns and what counts as a
    change.

    A staged row whose ``compare_columns`` differ from the key's current version closes that
    version (``valid_to`` = load time, ``is_current`` false) and becomes the new current one;
    an unchanged row writes nothing; a new key is inserted; with ``close_missing`` a key absent
    from the (full) extract has its current version closed.
    """

    model_config = ConfigDict(extra="forbid")

    #: columns whose change makes a new version; default: every data column but the keys
    compare_columns: list[str] | None = Field(None, min_length=1)
    valid_from: str = Field("valid_from", pattern=COLUMN_PATTERN)
    valid_to: str = Field("valid_to", pattern=COLUMN_PATTERN)
    is_current: str = Field("is_current", pattern=COLUMN_PATTERN)
    #: close the current version of keys the extract no longer has (needs a full extract)
    close_missing: bool = False

    _as_list = field_validator("compare_columns", mode="before")(_as_list)

    @model_validator(mode="after")
    def _distinct_names(self) -> Scd2Spec:
        names = [self.valid_from, self.valid_to, self.is_current]
        if len(set(names)) != 3:
            raise ValueError(
                f"valid_from, valid_to and is_current must be three different columns, got "
                f"{names}"
            )
        clash = sorted(set(self.compare_columns or ()) & set(names))
        if clash:
            raise ValueError(
                f"compare_columns {clash} are version columns; compare data columns only"
            )
        return self


class AfterLoadSpec(BaseModel):
    """``after_load:`` on a source: what happens to the data it read once every target
    committed (never when a load failed).

    ``{delete: true}`` deletes the files/objects read (file and object-store sources) or the
    rows read (database table sources: by ``key_columns`` when given, else by the incremental
    window); ``{move_to: archive/}`` moves the files read under that folder/prefix.
    """

    model_config = ConfigDict(extra="forbid")

    delete: bool = False
    move_to: str | None = Field(None, min_length=1)
    #: database sources: delete exactly the rows whose keys this run read
    key_columns: list[str] = Field(default_factory=list)

    _as_list = field_validator("key_columns", mode="before")(_as_list)

    @model_validator(mode="after")
    def _one_action(self) -> AfterLoadSpec:
        if self.delete == (self.move_to is not None):
            raise ValueError(
                "give exactly one of delete: true or move_to: <folder or prefix>"
            )
        return self
