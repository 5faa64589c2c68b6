"""The layout's import rules (issue 8), read from the source so the layout cannot drift back.

tether.engine            the seam: imports nothing else of tether's but itself
tether.engines.<name>    one engine: the seam and itself, never the API, chat or config
tether.chat              messages in, prompt text out: no engine package, no API
llama_cpp                only inside tether.engines.llamacpp
and no import cycle anywhere in the package.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "tether"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path): path for path in sorted(ROOT.rglob("*.py"))}


def _imports(name: str) -> Iterator[str]:
    """Every module ``name`` imports, at any depth of its code (lazy imports count too)."""
    package = name if MODULES[name].name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(MODULES[name].read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            yield base
            # ``from tether.chat import messages`` imports the module tether.chat.messages.
            yield from (f"{base}.{alias.name}" for alias in node.names)


def tether_imports(name: str) -> set[str]:
    return {imported for imported in _imports(name) if imported in MODULES and imported != name}


def test_the_walk_sees_the_package() -> None:
    assert {"tether.engine.base", "tether.engines.llamacpp.core", "tether.chat.template"} <= set(
        MODULES
    )
    assert "tether.engine.request" in tether_imports("tether.engine.base")


@pytest.mark.parametrize("name", [n for n in MODULES if n.startswith("tether.engine.")])
def test_the_seam_imports_only_itself(name: str) -> None:
    outside = {i for i in tether_imports(name) if not i.startswith("tether.engine.")}
    assert not outside, f"{name} imports {outside}"


@pytest.mark.parametrize("name", [n for n in MODULES if n.startswith("tether.engines.")])
def test_an_engine_imports_the_seam_and_itself_only(name: str) -> None:
    engine = ".".join(name.split(".")[:3])  # tether.engines.<name>
    allowed = ("tether.engine.", f"{engine}.", engine)
    outside = {i for i in tether_imports(name) if not i.startswith(allowed)}
    assert not outside, f"{name} imports {outside}"


@pytest.mark.parametrize("name", [n for n in MODULES if n.startswith("tether.chat")])
def test_chat_imports_neither_engines_nor_the_api(name: str) -> None:
    outside = {i for i in tether_imports(name) if not i.startswith("tether.chat")}
    assert not outside, f"{name} imports {outside}"


def test_llama_cpp_is_imported_only_by_its_engine() -> None:
    importers = {
        name
        for name in MODULES
        if any(i == "llama_cpp" or i.startswith("llama_cpp.") for i in _imports(name))
    }
    outside = {n for n in importers if not n.startswith("tether.engines.llamacpp")}
    assert not outside, f"{sorted(outside)} import llama_cpp"


def test_there_is_no_import_cycle() -> None:
    graph = {name: tether_imports(name) for name in MODULES}
    state: dict[str, str] = {}

    def visit(name: str, path: list[str]) -> None:
        state[name] = "open"
        for imported in graph[name]:
            if state.get(imported) == "open":
                cycle = [*path[path.index(imported) :], imported]
                pytest.fail("import cycle: " + " → ".join(cycle))
            if imported not in state:
                visit(imported, [*path, imported])
        state[name] = "done"

    for name in MODULES:
        if name not in state:
            visit(name, [name])
