"""The import rules of docs/design.md, checked on every module: layers, no cycles, small modules.

Imports are read from the source with `ast` (those inside functions too, since a lazy import is
still a dependency); only imports under `if TYPE_CHECKING:` are left out of the cycle check, as
they never run.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: Top-level packages, and the first-party packages each may import (besides itself).
ALLOWED: dict[str, set[str]] = {
    # The Python client, its own distribution (client/): a library of nothing of ours.
    "modelgate_client": set(),
    "kernel": set(),
    "runtime": {"kernel"},
    "registry": {"kernel", "runtime"},
    "jobs": {"kernel", "runtime", "registry"},
    "worker": {"kernel", "runtime", "registry", "jobs"},
    "gateway": {"kernel", "runtime", "registry", "jobs"},
    "cli": {"modelgate_client", "kernel", "runtime", "registry", "jobs", "gateway", "worker"},
    "devstack": {"kernel", "runtime", "registry", "jobs", "gateway", "worker", "cli"},
    "bench": {
        *("modelgate_client", "kernel", "runtime", "registry", "jobs", "gateway", "worker"),
        *("cli", "devstack"),
    },
}
PRODUCT = (
    *("modelgate_client", "kernel", "runtime", "registry", "jobs", "worker", "gateway", "cli"),
    "devstack",
)
#: Where a top-level package lives when not at the root (the client is its own distribution).
PACKAGE_DIRS = {"modelgate_client": Path("client/modelgate_client")}
#: Inside the gateway: what each subpackage may import of the gateway, besides itself and the
#: leaf modules `gateway.metrics` and `gateway.settings`.
GATEWAY_LAYERS: dict[str, set[str]] = {
    "http": set(),
    "guard": {"http"},
    "dataplane": {"http"},
    "jobdata": {"http"},
    "protocols": {"http", "guard", "dataplane", "<top>"},
    "routes": {"http", "guard", "dataplane", "jobdata", "<top>"},
}
GATEWAY_LEAVES = {"gateway.metrics", "gateway.settings"}
#: Lines a product module may have (docs/design.md: "no product module is over about 300").
MAX_LINES = 320


def module_name(path: Path) -> str:
    relative = path.relative_to(ROOT)
    for package, where in PACKAGE_DIRS.items():
        if relative.is_relative_to(where):
            relative = Path(package) / relative.relative_to(where)
    parts = list(relative.with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules(packages: tuple[str, ...]) -> Iterator[tuple[str, Path]]:
    for package in packages:
        for path in sorted((ROOT / PACKAGE_DIRS.get(package, Path(package))).rglob("*.py")):
            yield module_name(path), path


def imports(path: Path, *, runtime_only: bool = False) -> set[str]:
    """Every first-party module `path` imports (`runtime_only`: not under TYPE_CHECKING)."""
    tree = ast.parse(path.read_text(), str(path))
    skipped: set[int] = set()
    if runtime_only:
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                skipped.update(id(child) for child in ast.walk(node))
    found: set[str] = set()
    package = module_name(path).rsplit(".", 1)[0] if path.name != "__init__.py" else ""
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            found.add(base)
            # `from gateway.protocols import v1` imports the module gateway.protocols.v1.
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {name for name in found if name.split(".")[0] in ALLOWED or name.startswith("tests")}


def existing(name: str, known: set[str]) -> str | None:
    """The longest known module that `name` is or lies inside (names may end in an attribute)."""
    while name:
        if name in known:
            return name
        name = name.rpartition(".")[0]
    return None


ALL = dict(modules(tuple(ALLOWED)))


@pytest.mark.parametrize("name", sorted(ALL))
def test_a_module_imports_only_the_layers_below_it(name: str) -> None:
    top = name.split(".")[0]
    wrong = sorted(
        target
        for target in imports(ALL[name])
        if target.split(".")[0] != top and target.split(".")[0] not in ALLOWED[top]
    )
    assert not wrong, f"{name} imports {wrong}; docs/design.md allows {sorted(ALLOWED[top])}"


def gateway_layer(name: str) -> str:
    parts = name.split(".")
    return (
        parts[1] if len(parts) > 2 or name in {f"gateway.{p}" for p in GATEWAY_LAYERS} else "<top>"
    )


@pytest.mark.parametrize("name", sorted(n for n in ALL if n.startswith("gateway.")))
def test_gateway_subpackages_import_only_the_ones_below_them(name: str) -> None:
    layer = gateway_layer(name)
    if layer == "<top>":
        return  # app, server, state, deps, ...: the gateway's own top may import all of it
    allowed = GATEWAY_LAYERS[layer] | {layer}
    wrong = []
    for target in imports(ALL[name]):
        found = existing(target, set(ALL))
        if found is None or not found.startswith("gateway.") or found in GATEWAY_LEAVES:
            continue
        if gateway_layer(found) not in allowed:
            wrong.append(found)
    assert not wrong, f"{name} ({layer}) imports {sorted(set(wrong))}"


def test_no_import_cycles() -> None:
    known = set(ALL)
    graph = {
        name: {
            found
            for target in imports(path, runtime_only=True)
            if (found := existing(target, known)) is not None and found != name
        }
        for name, path in ALL.items()
    }
    # A package imports its own modules through __init__ only by name: drop edges from a
    # module to the packages that contain it (Python runs those first anyway).
    for name, targets in graph.items():
        targets.difference_update({t for t in targets if name.startswith(t + ".")})
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                cycle = stack[stack.index(target) :] + [target]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


def generated(path: Path) -> bool:
    """Code generated by `make proto` (the gRPC stubs), which says so on its first line: its
    size is protoc's; the import rules still apply to it."""
    return path.read_text().startswith("# Generated from proto/")


@pytest.mark.parametrize(
    "name", sorted(n for n in ALL if n.split(".")[0] in PRODUCT and not generated(ALL[n]))
)
def test_product_modules_stay_small(name: str) -> None:
    lines = len(ALL[name].read_text().splitlines())
    assert lines <= MAX_LINES, f"{name} has {lines} lines; split it (docs/design.md)"


def test_the_rules_see_the_imports_they_check() -> None:
    # The checks above are only as good as the import reader: it must see lazy and relative
    # imports, and `from package import module`.
    app = imports(ROOT / "gateway/app.py")  # `from gateway.protocols import legacy, v1, ...`
    assert {"gateway.protocols.v1", "gateway.protocols.legacy"} <= app
    assert "registry.aliases" in imports(ROOT / "cli/models.py")  # imported inside a command
