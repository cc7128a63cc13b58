"""The valid part of a job spec that has model errors, so the project checks still run on it.

``nexus validate`` reports every problem in one pass: when a job file fails the model (a
misspelled key, a bad value), the offending keys are removed — and, where a required field is
then missing, the whole source/target/transformation/check — until what is left validates. The
project checks (references, connector capabilities, expressions, cron ...) run on that part, and
their problems are mapped back to the original file's lines and list indices.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from nexus_dagster.errors import SpecProblem, field_path
from nexus_dagster.spec.models import ETLJob
from nexus_dagster.spec.validate_values import has_child

#: top-level lists whose items are dropped whole when they cannot be repaired
ITEM_GROUPS = ("sources", "targets", "transformations", "checks")
_MAX_ROUNDS = 25
#: fields that name another source or step (their problems may follow from a dropped item)
_INPUT_FIELDS = (".left", ".right", ".input")
_FIELD_RE = re.compile(r"^(sources|targets|transformations|checks)\[(\d+)\]")

Loc = tuple[str | int, ...]


@dataclass
class PartialJob:
    """The part of a job file that validates.

    Attributes:
        job: the model of what is left.
        data: the data it was validated from (with the kept list items only).
        kept: per item group, the original index of each kept item.
        dropped_names: the names of the items dropped whole.
        dropped_unnamed: some item dropped whole had no readable name.
        deleted_keys: fields removed for a bad value (``sources[0].file_path``, original
            indices).
    """

    job: ETLJob
    data: dict[str, Any]
    kept: dict[str, list[int]]
    dropped_names: frozenset[str] = frozenset()
    dropped_unnamed: bool = False
    deleted_keys: frozenset[str] = frozenset()

    def follows_from_dropped(self, problem: SpecProblem) -> bool:
        """True when ``problem`` is a consequence of an item dropped for its own model error,
        not a new problem: it names the dropped item (a join whose input is a source with a
        bad field), or it is a reference to a step input while an item without a readable
        name was dropped."""
        if any(f"{name!r}" in problem.message for name in self.dropped_names):
            return True
        field = problem.field or ""
        if self.dropped_unnamed and field.endswith(_INPUT_FIELDS):
            return True
        # "a file source needs file_path" after a file_path of the wrong type was removed
        return any(path.rpartition(".")[0] == field and path.rpartition(".")[2] in problem.message
                   for path in self.deleted_keys)

    def original_path(self, path: Loc) -> Loc | None:
        """The path in the original file of a path in :attr:`data`."""
        if len(path) >= 2 and path[0] in self.kept and isinstance(path[1], int):
            kept = self.kept[str(path[0])]
            if path[1] >= len(kept):
                return None
            return (path[0], kept[path[1]], *path[2:])
        return path

    def original_lines(self, lines: dict[Loc, int]) -> dict[Loc, int]:
        """The line table of :attr:`data` (original lines under the kept items' new indices)."""
        back = {group: {old: new for new, old in enumerate(kept)}
                for group, kept in self.kept.items()}
        out: dict[Loc, int] = {}
        for path, line in lines.items():
            if len(path) >= 2 and path[0] in back and isinstance(path[1], int):
                new = back[str(path[0])].get(path[1])
                if new is None:
                    continue
                path = (path[0], new, *path[2:])
            out[path] = line
        return out

    def remap(self, problem: SpecProblem) -> SpecProblem:
        """``problem`` with its field's list index changed back to the original file's."""
        if problem.field:
            match = _FIELD_RE.match(problem.field)
            if match:
                group, index = match.group(1), int(match.group(2))
                kept = self.kept.get(group, [])
                if index < len(kept):
                    problem.field = f"{group}[{kept[index]}]{problem.field[match.end():]}"
        return problem


def _compact(data: dict[str, Any], dropped: dict[str, set[int]]) -> dict[str, Any]:
    out = dict(data)
    for group, indices in dropped.items():
        out[group] = [item for i, item in enumerate(data[group]) if i not in indices]
    return out


def _delete(data: Any, path: Loc) -> bool:
    """Remove the key (or list item) at ``path``; False when there is none."""
    parent = data
    for part in path[:-1]:
        try:
            parent = parent[part]
        except (KeyError, IndexError, TypeError):
            return False
    last = path[-1]
    if isinstance(parent, dict) and last in parent:
        del parent[last]
        return True
    if isinstance(parent, list) and isinstance(last, int) and last < len(parent):
        del parent[last]
        return True
    return False


def _existing(data: Any, loc: Loc) -> Loc:
    """The longest prefix of ``loc`` that exists in ``data`` (pydantic adds union tags)."""
    node, found = data, ()
    for part in loc:
        if has_child(node, part):
            node = node[part]
            found = (*found, part)
    return found


def _rename(data: Any, path: Loc, new: str) -> bool:
    """Rename the key at ``path`` to ``new`` (a misspelled key to its suggestion)."""
    parent = data
    for part in path[:-1]:
        parent = parent[part]
    if not isinstance(parent, dict) or new in parent:
        return False
    parent[new] = parent.pop(path[-1])
    return True


def partial_job(
    data: dict[str, Any], suggest: Callable[[Any, Loc], str | None] = lambda data, loc: None
) -> PartialJob | None:
    """The largest easily found part of ``data`` that validates as an :class:`ETLJob`.

    Args:
        data: the job file's data.
        suggest: the field a misspelled key (an ``extra_forbidden`` error at a location)
            most likely means; such a key is renamed to it rather than removed, so the
            checks see the job as it is meant.

    Returns None when nothing sensible is left (no name, no source or no target, or an error
    of the job as a whole).
    """
    data = copy.deepcopy(data)
    deleted: set[str] = set()
    dropped: dict[str, set[int]] = {g: set() for g in ITEM_GROUPS
                                    if isinstance(data.get(g), list)}
    for _ in range(_MAX_ROUNDS):
        compact = _compact(data, dropped)
        kept = {g: [i for i in range(len(data[g])) if i not in dropped[g]] for g in dropped}
        try:
            job = ETLJob.model_validate(compact)
        except ValidationError as exc:
            errors = exc.errors()
        else:
            items = [data[group][i] for group, indices in dropped.items() for i in indices]
            names = frozenset(item["name"] for item in items
                              if isinstance(item, dict) and isinstance(item.get("name"), str))
            return PartialJob(job=job, data=compact, kept=kept, dropped_names=names,
                              dropped_unnamed=len(names) < len(items),
                              deleted_keys=frozenset(deleted))
        changed = False
        for error in errors:
            loc: Loc = tuple(error["loc"])
            if len(loc) >= 2 and loc[0] in kept and isinstance(loc[1], int):
                if loc[1] >= len(kept[str(loc[0])]):
                    return None
                loc = (loc[0], kept[str(loc[0])][loc[1]], *loc[2:])
            path = _existing(data, loc)
            item = path[:2] if len(path) >= 2 and path[0] in dropped else None
            if error["type"] == "extra_forbidden" and path and path[-1] == loc[-1] \
                    and (name := suggest(data, loc)) and _rename(data, path, name):
                changed = True
            elif error["type"] != "missing" and item is not None and len(path) > 2:
                if _delete(data, path):
                    changed = True
                    deleted.add(field_path(path))
            elif item is not None:
                if item[1] not in dropped[str(item[0])]:
                    dropped[str(item[0])].add(int(item[1]))
                    changed = True
            elif path and error["type"] != "missing" and path[0] != "name" and _delete(data, path):
                changed = True
                if len(path) == 1:
                    dropped.pop(str(path[0]), None)
        if not changed:
            return None
    return None
