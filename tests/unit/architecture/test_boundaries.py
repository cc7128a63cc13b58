"""The package's boundaries hold: no import cycle, no private name used across modules, and
only ``nexus_dagster/dagster/`` imports Dagster (the run, the spec and the connectors work
without it)."""

from __future__ import annotations

from tests.unit.architecture.imports import PACKAGE, cycles, load_modules, private_reaches

#: the one package that may import Dagster
DAGSTER_PACKAGE = f"{PACKAGE}.dagster"


def test_the_package_has_no_import_cycle():
    found = cycles(load_modules())
    assert not found, "import cycles (every import counts, also lazy ones):\n" + "\n".join(
        " <-> ".join(group) for group in found
    )


def test_no_module_imports_a_private_name_of_another():
    modules = load_modules()
    found = [
        f"{m.name}:{line}: {name}"
        for m in modules.values()
        for line, name in m.private_imports + m.private_uses
    ]
    found += [f"{m.name}:{line}: ._{name.lstrip('_')} of another module's object"
              for m, line, name in private_reaches(modules)]
    assert not found, "private names used across modules (make them public):\n" + "\n".join(
        found
    )


def test_only_the_dagster_package_imports_dagster():
    modules = load_modules()
    found = [
        f"{m.name} (line {m.external['dagster']})"
        for m in modules.values()
        if "dagster" in m.external
        and m.name != DAGSTER_PACKAGE
        and not m.name.startswith(f"{DAGSTER_PACKAGE}.")
    ]
    assert not found, f"modules outside {DAGSTER_PACKAGE} importing dagster: {found}"


def test_the_checker_sees_cycles_and_private_imports(tmp_path, monkeypatch):
    """The checks above would fail on a package that breaks the rules."""
    from tests.unit.architecture import imports

    package = tmp_path / PACKAGE
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from nexus_dagster.b import _hidden\n")
    (package / "b.py").write_text(
        "def f(c):\n    from nexus_dagster import a\n    a._x()\n    c._probe()\n"
    )
    (package / "c.py").write_text("class C:\n    def _probe(self):\n        pass\n")
    monkeypatch.setattr(imports, "ROOT", package)
    modules = imports.load_modules()
    assert [(m.name, line, name) for m, line, name in imports.private_reaches(modules)] == [
        ("nexus_dagster.b", 4, "_probe")
    ]
    assert imports.cycles(modules) == [["nexus_dagster.a", "nexus_dagster.b"]]
    assert modules["nexus_dagster.a"].private_imports == [(1, "nexus_dagster.b._hidden")]
    assert modules["nexus_dagster.b"].private_uses == [(3, "nexus_dagster.a._x")]
