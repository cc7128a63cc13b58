"""Open registries of named API styles (auth, pagination), like the connector registry.

A style is a class with its own pydantic settings model (:attr:`Style.Config`, extending
:class:`StyleConfig`). The spec's ``api_auth`` / ``api_pagination`` blocks name a style by
``type``; the project validation checks that name against the registry and the other keys
against the style's model. A registry holds the built-in styles, the styles other installed
packages declare in an entry-point group, and the styles registered at run time; a registered
name validates and runs like a built-in one.

Example:
    >>> from nexus_dagster.connectors.http.auth import AUTH_STYLES
    >>> AUTH_STYLES.style_class("bearer").__name__
    'BearerAuth'
    >>> AUTH_STYLES.problems({"type": "bearer"})
    [('api_auth.token', 'Field required', 'add token; bearer settings: token')]
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from nexus_dagster.errors import SpecError, SpecProblem, UnsupportedError, did_you_mean
from nexus_dagster.plugins import NamedRegistry
from nexus_dagster.secrets import is_reference, register_secret

__all__ = ["Style", "StyleConfig", "StyleRegistry", "register_secret_fields"]


class StyleConfig(BaseModel):
    """The settings of one style: its registered name in ``type`` plus the style's own typed
    fields (a style's model extends this one; secrets as ``SecretStr``). Unknown keys are
    errors."""

    model_config = ConfigDict(extra="forbid")

    type: str = Field(min_length=1, description="the registered name of the style")


class Style:
    """Common base of auth styles and paginators: built from validated settings.

    Attributes:
        config: the settings, an instance of :attr:`Config`.
    """

    #: the style's settings model; a style taking settings declares its own subclass
    Config: ClassVar[type[StyleConfig]] = StyleConfig

    def __init__(self, config: StyleConfig | Mapping[str, Any]):
        if not isinstance(config, self.Config):
            data = config.model_dump() if isinstance(config, BaseModel) else dict(config)
            try:
                config = self.Config.model_validate(data)
            except ValidationError as exc:
                raise SpecError([
                    SpecProblem(message, field=field, fix=fix)
                    for field, message, fix in settings_problems(
                        exc, type(self), "settings", str(data.get("type") or type(self).__name__)
                    )
                ]) from None
        self.config = config
        register_secret_fields(config)


S = TypeVar("S", bound=Style)



def settings_problems(
    exc: ValidationError,
    cls: type[Style],
    field: str,
    kind: str,
    unresolved: Mapping[str, Any] | None = None,
) -> list[tuple[str, str, str]]:
    """``(field, message, fix)`` of each error of validating the settings of style ``cls``
    (named ``kind`` in specs), without the offending values. With the ``unresolved``
    settings (load time), errors of settings holding ``${ENV}``/``enc:`` are left out: they
    are checked at run time."""
    names = [n for n in cls.Config.model_fields if n != "type"]
    known = ", ".join(names) or "none"
    found = []
    for error in exc.errors(include_url=False, include_input=False):
        loc = [str(part) for part in error["loc"]]
        if (unresolved is not None and loc and error["type"] != "extra_forbidden"
                and is_reference(unresolved.get(loc[0]))):
            continue  # a value checked once resolved; an unknown key is wrong at any time
        last = loc[-1] if loc else "type"
        if error["type"] == "missing":
            fix = f"add {last}"
        elif error["type"] == "extra_forbidden":
            fix = f"{did_you_mean(last, names)}remove {last}"
        else:
            fix = f"set {'.'.join(loc)} to a valid value"
        found.append((".".join([field, *loc]), error["msg"],
                      f"{fix}; {kind} settings: {known}"))
    return found


def register_secret_fields(config: BaseModel) -> None:
    """Register every ``SecretStr`` value of ``config`` (nested models too) for masking."""
    for name in type(config).model_fields:
        value = getattr(config, name)
        if isinstance(value, SecretStr):
            register_secret(value.get_secret_value())
        elif isinstance(value, BaseModel):
            register_secret_fields(value)


class StyleRegistry(NamedRegistry[S]):
    """Named styles of one kind: built-ins, an entry-point group, run-time registrations.

    Args:
        field: the spec field naming a style (``api_auth``), for messages.
        base: the class every style of this kind extends.
        builtins: name -> class of the styles shipped with nexus-dagster.
        group: the entry-point group other packages declare styles in.
        register_function: the public function registering a style, for messages.
    """

    def __init__(
        self,
        field: str,
        base: type[S],
        builtins: Mapping[str, type[S]],
        group: str,
        register_function: str,
    ):
        super().__init__(f"{field} style", base=base, builtins=builtins, group=group)
        self.field = field
        self.register_function = register_function

    def style_class(self, name: str) -> type[S]:
        """The class of style ``name``.

        Raises:
            UnsupportedError: no style has that name (the message lists the known ones).
            SpecError: the registered class cannot be imported or is not a :attr:`base`.
        """
        return self.get(name, unknown=lambda n: (
            f"{self.field}.type {n!r} is unknown; known: {', '.join(self.names())} "
            f"({self.fix_hint()})"
        ))

    def fix_hint(self) -> str:
        """How another style is added, for messages."""
        return f"add one with {self.register_function}() or the entry-point group {self.group!r}"

    def problems(self, value: Any, field: str | None = None) -> list[tuple[str, str, str]]:
        """Problems of an unresolved style block: ``(field, message, fix)`` each, ``field``
        starting with ``field`` (default :attr:`field`). A setting holding ``${ENV}`` or
        ``enc:`` is checked at run time only; values are never shown."""
        return self.check(value, field or self.field, references=True)[1]

    def check(
        self, value: Any, field: str, *, references: bool = False
    ) -> tuple[StyleConfig | None, list[tuple[str, str, str]]]:
        """``value`` validated by its style's model, or None and the problems
        (``(field, message, fix)`` each, values never shown). With ``references``, settings
        holding ``${ENV}``/``enc:`` are not reported (load time)."""
        names = ", ".join(self.names())
        if isinstance(value, StyleConfig):  # validated already, maybe by another style's model
            value = value.model_dump()
        if not isinstance(value, Mapping):
            return None, [(field, f"must be a mapping with a type, not {type(value).__name__}",
                           f"write {field}: {{type: <one of {names}>, ...}}")]
        kind = value.get("type")
        if not isinstance(kind, str) or not kind:
            return None, [(f"{field}.type", "a style type is required", f"use one of: {names}")]
        try:
            cls = self.style_class(kind)
        except UnsupportedError:
            return None, [(f"{field}.type", f"{kind!r} is not a registered {self.field} style",
                           f"use one of: {names}; or {self.fix_hint()}")]
        except SpecError as exc:
            return None, [(f"{field}.type", exc.problems[0].message, "reinstall the package")]
        try:
            return cls.Config.model_validate(dict(value)), []
        except ValidationError as exc:
            return None, settings_problems(exc, cls, field, kind, value if references else None)

    def config(self, value: StyleConfig | Mapping[str, Any], field: str | None = None
               ) -> StyleConfig:
        """``value`` (resolved) validated by its style's model.

        Raises:
            SpecError: unknown type or invalid settings, each problem naming its field.
        """
        config, problems = self.check(value, field or self.field)
        if config is None:
            raise SpecError([SpecProblem(message, field=where, fix=fix)
                             for where, message, fix in problems])
        return config

    def create(self, value: StyleConfig | Mapping[str, Any]) -> S:
        """The style object for a settings block (validated first).

        Raises:
            SpecError: see :meth:`config`.
        """
        config = self.config(value)
        return self.style_class(config.type)(config)
