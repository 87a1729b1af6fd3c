"""The package layout holds: every module of ops/ imports on its own, and imports point one way.

surfaces -> engine -> domain -> lattice (DESIGN.md, section 1): the pure core
(``ops/domain``) imports no other layer of ``ops`` and none of asyncio, aiohttp
or time; the engine knows no surface; the model adapters know neither the engine
nor a surface; ``lattice`` knows nothing of ``ops``; and only the CLI imports the
application module (``ops.surfaces.app``), every other surface its parts.

Imports are read with :mod:`ast`, so an import inside a function counts like
one at the top of the module.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: (modules the rule applies to, imported names it forbids) by rule name
RULES: dict[str, tuple[str, tuple[str, ...]]] = {
    "the domain is pure": ("ops.domain", ("ops.engine", "ops.surfaces", "ops.llm", "asyncio", "aiohttp", "time")),
    "the engine knows no surface": ("ops.engine", ("ops.surfaces",)),
    "the model adapters know neither the engine nor a surface": ("ops.llm", ("ops.engine", "ops.surfaces")),
    "lattice knows nothing of ops": ("lattice", ("ops",)),
}


def module_name(path: Path) -> str:
    """``ops/surfaces/app.py`` -> ``ops.surfaces.app`` (``__init__.py``: the package)."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules(package: str) -> dict[str, Path]:
    """``{module name: file}`` for every module under ``package`` (namespace packages included)."""
    return {module_name(p): p for p in sorted((ROOT / package).rglob("*.py"))}


OPS = modules("ops")


def imports(name: str, path: Path) -> list[tuple[int, str]]:
    """``(line, module name)`` for every import in a module, relative ones resolved.

    ``from a.b import c`` yields both ``a.b`` and ``a.b.c`` (``c`` may be a module).
    """
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.append((node.lineno, mod))
            out += [(node.lineno, f"{mod}.{a.name}") for a in node.names if a.name != "*"]
    return out


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def test_the_walk_finds_every_layer() -> None:
    assert {"ops.domain.contracts", "ops.engine.runtime", "ops.llm", "ops.surfaces.app", "ops.surfaces.sse"} <= set(OPS)
    assert modules("lattice")


@pytest.fixture(scope="module")
def fresh_imports() -> dict[str, subprocess.CompletedProcess]:
    """Each module of ops/ imported in an interpreter of its own (several at a time)."""
    def run(name: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", "import importlib, sys; importlib.import_module(sys.argv[1])", name],
                              cwd=ROOT, capture_output=True, text=True, timeout=120)
    with ThreadPoolExecutor(max_workers=8) as pool:
        return dict(zip(OPS, pool.map(run, OPS)))


@pytest.mark.parametrize("name", list(OPS))
def test_module_imports_on_its_own(fresh_imports, name: str) -> None:
    p = fresh_imports[name]
    assert p.returncode == 0, f"python -c 'import {name}' failed:\n{p.stderr[-3000:]}"


@pytest.mark.parametrize("rule", list(RULES))
def test_imports_point_one_way(rule: str) -> None:
    layer, forbidden = RULES[rule]
    found = [f"{path.relative_to(ROOT)}:{line} imports {target}"
             for name, path in modules(layer.split(".")[0]).items() if _within(name, layer)
             for line, target in imports(name, path) if any(_within(target, f) for f in forbidden)]
    assert not found, f"{rule}:\n" + "\n".join(found)


def test_only_the_cli_imports_the_application_module() -> None:
    found = [f"{path.relative_to(ROOT)}:{line}" for name, path in OPS.items() if name != "ops.surfaces.cli"
             for line, target in imports(name, path) if _within(target, "ops.surfaces.app")]
    assert not found, "ops.surfaces.app is imported by " + ", ".join(found)


def test_imports_resolve_relative_names() -> None:
    names = {t for _, t in imports("ops.surfaces.sse", OPS["ops.surfaces.sse"])}
    assert {"ops.domain.refs", "ops.surfaces.common", "lattice.commits"} <= names
    assert {t for _, t in imports("ops.llm", OPS["ops.llm"])} >= {"ops.llm.base", "ops.domain.models"}


@pytest.mark.parametrize("name", [n for n in OPS if _within(n, "ops.surfaces")])
def test_surface_modules_are_small_and_declare_their_names(name: str) -> None:
    text = OPS[name].read_text()
    assert len(text.splitlines()) <= 500, f"{name}: {len(text.splitlines())} lines"
    assert any(isinstance(n, ast.Assign) and any(getattr(t, "id", None) == "__all__" for t in n.targets)
               for n in ast.parse(text).body), f"{name} has no __all__"


LATTICE = modules("lattice")
#: longest module in ops/ and lattice/ (a longer one is a room with two families in it)
MAX_LINES = 600
#: longest runtime facade: it wires the engine's parts, the parts do the work
MAX_FACADE_LINES = 300


@pytest.mark.parametrize("name", sorted({**OPS, **LATTICE}))
def test_every_module_is_small_and_declares_its_names(name: str) -> None:
    path = {**OPS, **LATTICE}[name]
    text = path.read_text()
    assert len(text.splitlines()) <= MAX_LINES, f"{name}: {len(text.splitlines())} lines"
    if path.name != "__init__.py" or "import" in text:
        assert any(isinstance(n, (ast.Assign, ast.AnnAssign)) and any(
            getattr(t, "id", None) == "__all__" for t in (n.targets if isinstance(n, ast.Assign) else [n.target]))
            for n in ast.parse(text).body), f"{name} has no __all__"


def test_the_runtime_is_a_small_facade() -> None:
    n = len(OPS["ops.engine.runtime"].read_text().splitlines())
    assert n < MAX_FACADE_LINES, f"ops/engine/runtime.py: {n} lines"


def test_every_operation_has_one_handler() -> None:
    from ops.domain.contracts import REGISTRY
    from ops.engine.handlers import HANDLERS
    assert set(HANDLERS) == set(REGISTRY)
