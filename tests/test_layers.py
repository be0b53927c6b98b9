"""The package's layers: arrows only point down (core <- redis, web <- top), read from the import graph."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "twisted_sse"
LAYERS = ("core", "redis", "web")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every module `path` imports, anywhere in it (functions and TYPE_CHECKING blocks too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import"
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)  # a submodule, if it is one
    return found


GRAPH = {_module_name(path): _imports(path) for path in PACKAGE.rglob("*.py")}


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else "top"


def _reachable(module: str) -> set[str]:
    """The modules `module` loads, following imports of twisted_sse's own modules (and their packages)."""
    seen, todo = set(), [module]
    while todo:
        current = todo.pop()
        for imported in GRAPH.get(current, ()):
            if imported in seen:
                continue
            seen.add(imported)
            if imported in GRAPH:
                todo.append(imported)
    return seen


def test_the_graph_was_read():
    """The check sees every layer's modules (a graph that is empty would pass anything)."""
    assert {_layer(module) for module in GRAPH} == {"core", "redis", "web", "top"}
    assert "twisted_sse.core._framing" in _reachable("twisted_sse.web._stream")


@pytest.mark.parametrize("module", sorted(m for m in GRAPH if _layer(m) == "core"))
def test_core_loads_neither_the_web_nor_redis_nor_anything_above_it(module):
    """No twisted.web, no txredisapi, no twisted_sse module outside core, however indirectly."""
    bad = {
        name
        for name in _reachable(module)
        if name.startswith(("twisted.web", "txredisapi"))
        or (name.startswith("twisted_sse") and not name.startswith("twisted_sse.core"))
    }
    assert not bad, f"{module} loads {sorted(bad)}"


@pytest.mark.parametrize("module", sorted(m for m in GRAPH if _layer(m) in ("redis", "web")))
def test_an_edge_uses_core_and_itself_only(module):
    """redis and web don't know each other nor the top (service, tap, publishing)."""
    own = _layer(module)
    bad = {
        name
        for name in _reachable(module)
        if name.startswith("twisted_sse") and _layer(name) not in ("core", own) or name == "twisted_sse"
    }
    assert not bad, f"{module} loads {sorted(bad)}"


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_another_layer_is_used_through_its_public_names_only(module):
    """Across layers only `twisted_sse.<layer>` is imported, never its private modules."""
    own = _layer(module)
    private = {
        name
        for name in GRAPH[module]
        if name.startswith("twisted_sse.") and "._" in name and _layer(name) != own and name in GRAPH
    }
    assert not private, f"{module} imports {sorted(private)}"


def test_the_web_edge_has_no_txredisapi_even_indirectly():
    """Twisted web code is free of txredisapi (importing it installs a reactor)."""
    assert not any(name.startswith("txredisapi") for m in GRAPH if _layer(m) == "web" for name in _reachable(m))


def test_loading_the_package_and_its_twistd_options_installs_no_reactor():
    """`import twisted_sse` and `twisted_sse.tap` (what twistd loads) leave the reactor to twistd."""
    code = (
        "import sys, twisted_sse, twisted_sse.tap\n"
        "print(sorted(m for m in ('twisted.internet.reactor', 'txredisapi') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=PACKAGE.parent).stdout  # fmt: skip
    assert out.strip() == "[]"


def test_the_public_api_is_importable_from_the_package():
    """What the README and applications import is at the top."""
    import twisted_sse

    for name in twisted_sse.__all__:
        assert getattr(twisted_sse, name) is not None
    assert {"SSEService", "Settings", "MemoryBroker", "Publisher", "parse_redis_url", "SSEResource"} <= set(
        twisted_sse.__all__
    )
