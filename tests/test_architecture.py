"""The package's layers and the import rules between them (docs/architecture.md).

Every module under netdsl/ is parsed with `ast`, and every import in it is checked, at any depth
(imports inside functions count: they run all the same, only later).  A rule that the code does
not meet yet is listed in PENDING with its reason; a second test fails once an entry is no longer
needed, so the list only shrinks, and is deleted when empty.
"""
from __future__ import annotations

import ast
from pathlib import Path

import netdsl

PACKAGE = Path(netdsl.__file__).resolve().parent
ARCHITECTURE = PACKAGE.parent / "docs" / "architecture.md"

# The package's folders, each one layer (docs/architecture.md, "Layers").
LAYERS = ("ir", "ops", "frontend", "layers", "passes", "backends", "runtime", "render",
          "commands", "fuzz")

# importer (a module prefix) -> what it must not import (module prefixes).
_PURE = ("netdsl.backends", "netdsl.passes", "netdsl.runtime", "netdsl.frontend", "numba")
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "netdsl.ops": _PURE,                        # ops are rules: no target, no pass, no Numba
    "netdsl.ir": _PURE,
    "netdsl.passes": ("netdsl.backends", "numba"),
    "netdsl.runtime": ("netdsl.frontend",),     # the runtime can train a graph from Python
    "netdsl.frontend": ("netdsl.backends",),    # `netdsl check` compiles nothing
    # Targets compile and run graphs; training loops and data are the runtime's, above them.
    "netdsl.backends": ("netdsl.runtime", "netdsl.frontend", "netdsl.commands"),
}
# Numba belongs to the Numba targets: the cpu target and the cuda target (numba-cuda), each a
# package of its own under backends/.
NUMBA_HOMES = ("netdsl.backends.numba_cpu", "netdsl.backends.numba_cuda")

# (importer, forbidden prefix) pairs not yet fixed, each with its reason.
PENDING: dict[tuple[str, str], str] = {
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """The absolute names of the modules `path` imports (relative imports resolved)."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.add(node.module or "")
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1])
            if node.module:
                names.add(f"{base}.{node.module}")
            else:                               # `from .. import backends`
                names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def violations() -> set[tuple[str, str]]:
    """(importer, forbidden prefix) for every import that breaks a rule."""
    found: set[tuple[str, str]] = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        module = _module_name(path)
        forbidden = [prefix for importer, prefixes in FORBIDDEN.items()
                     if _within(module, importer) for prefix in prefixes]
        if not any(_within(module, home) for home in NUMBA_HOMES):
            forbidden.append("numba")
        for name in _imports(path):
            found.update((module, prefix) for prefix in forbidden if _within(name, prefix))
    return found


def test_import_rules():
    broken = sorted(violations() - set(PENDING))
    assert not broken, "imports that break docs/architecture.md's rules:\n" + "\n".join(
        f"  {module} imports {prefix}" for module, prefix in broken)


def test_every_pending_entry_is_still_needed():
    fixed = sorted(set(PENDING) - violations())
    assert not fixed, "fixed, so delete from PENDING:\n" + "\n".join(
        f"  {module} -> {prefix}" for module, prefix in fixed)


def test_the_folders_are_the_documented_layers():
    folders = {path.parent.name for path in PACKAGE.glob("*/__init__.py")}
    assert folders == set(LAYERS)
    text = ARCHITECTURE.read_text()
    assert not [layer for layer in LAYERS if f"`{layer}/`" not in text]


def test_the_rules_are_documented():
    text = ARCHITECTURE.read_text()
    for importer in FORBIDDEN:
        assert f"`{importer.removeprefix('netdsl.')}/`" in text
    assert "numba_cpu/" in text and "PENDING" in text


def test_relative_imports_resolve():
    """The resolver itself: `from ..ir.graph import X` in passes/ is netdsl.ir.graph."""
    assert "netdsl.ir.graph" in _imports(PACKAGE / "passes" / "rewrite.py")
    assert "netdsl.runtime.train_config" in _imports(PACKAGE / "frontend" / "train_section.py")
