"""Named extension points: built-ins, an entry-point group, and run-time registrations.

One mechanism behind every registry of the package (connectors, API auth styles, paginators):
a name maps to a class or its ``"module:Class"`` path; other installed packages add names
through an entry-point group; :meth:`NamedRegistry.register` adds or overrides one at run time.
Paths are imported only when their class is asked for, so listing names imports no driver.

Example:
    >>> registry = NamedRegistry("connector", base=object, builtins={"x": "json:JSONDecoder"},
    ...                          group="nexus_dagster.connectors")
    >>> registry.get("x").__name__
    'JSONDecoder'
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from functools import cached_property
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar

from nexus_dagster.errors import SpecError, UnsupportedError

__all__ = ["NamedRegistry", "check_name"]

T = TypeVar("T")


def check_name(what: str, name: str) -> None:
    """A registrable name starts with a letter and holds letters, digits and underscores.

    Raises:
        SpecError: naming ``what`` (``connector``, ``api_auth style`` ...) and the fix.
    """
    if not name or not name.replace("_", "").isalnum() or not name[0].isalpha():
        raise SpecError(
            f"{what} name {name!r} must start with a letter and hold only letters, digits "
            "and underscores"
        )


class NamedRegistry(Generic[T]):
    """Named classes of one kind.

    Args:
        what: what the names are, for messages (``connector``, ``api_auth style``).
        base: the class every entry extends, or a function returning it (imported lazily).
        builtins: name -> class or ``"module:Class"`` shipped with nexus-dagster.
        group: the entry-point group other packages declare entries in.
    """

    def __init__(
        self,
        what: str,
        *,
        base: type[T] | Callable[[], type[T]],
        builtins: Mapping[str, type[T] | str],
        group: str,
    ):
        self.what = what
        self._base = base
        self.builtins: dict[str, type[T] | str] = dict(builtins)
        self.group = group
        self.registered: dict[str, type[T] | str] = {}

    @property
    def base(self) -> type[T]:
        """The class every entry must extend."""
        base = self._base
        return base if isinstance(base, type) else base()

    @cached_property
    def declared(self) -> dict[str, str]:
        """Entries other installed packages declare (``"module:Class"``, read once)."""
        return {ep.name: ep.value for ep in entry_points(group=self.group)}

    def register(self, name: str, entry: type[T] | str) -> None:
        """Serve ``name`` with ``entry`` (a class or its ``"module:Class"`` path); wins over
        entry points and built-ins."""
        check_name(self.what, name)
        self.registered[name] = entry

    def unregister(self, name: str) -> None:
        """Forget a run-time registration (built-ins and entry points stay)."""
        self.registered.pop(name, None)

    def names(self) -> list[str]:
        """Every registered name, sorted."""
        return sorted({*self.builtins, *self.declared, *self.registered})

    def entry(self, name: str) -> type[T] | str | None:
        """What serves ``name`` (class or path), or None."""
        return self.registered.get(name) or self.builtins.get(name) or self.declared.get(name)

    def get(self, name: str, unknown: Callable[[str], str] | None = None) -> type[T]:
        """The class serving ``name``.

        Args:
            name: the registered name.
            unknown: makes the message of an unknown name (default: lists the known names).

        Raises:
            UnsupportedError: no entry has that name.
            SpecError: the entry cannot be imported or does not extend :attr:`base`.
        """
        entry = self.entry(name)
        if entry is None:
            message = unknown(name) if unknown else (
                f"{self.what} {name!r} is unknown; known: {', '.join(self.names())}"
            )
            raise UnsupportedError(message)
        cls: Any = entry
        if isinstance(entry, str):
            module_name, _, class_name = entry.partition(":")
            try:
                cls = getattr(importlib.import_module(module_name), class_name)
            except (ImportError, AttributeError) as exc:
                raise SpecError(
                    f"{self.what} {name!r} is registered as {entry!r}, which cannot be "
                    f"imported: {exc}"
                ) from exc
        base = self.base
        if not (isinstance(cls, type) and issubclass(cls, base)):
            raise SpecError(
                f"{self.what} {name!r} ({entry!r}) is not a subclass of "
                f"{base.__module__}.{base.__name__}"
            )
        return cls
