"""The package's house rules (docs/architecture.md): every module imports only modules of its own
layer or of the layers below it, and no import cycle exists between modules, counting the imports
inside functions too."""

from __future__ import annotations

import ast
from pathlib import Path

import anonface

PKG = Path(anonface.__file__).resolve().parent

#: Lowest first; a module may import from its own layer and from every layer before it.
LAYERS = [
    ("anonface.options", "anonface.boxes", "anonface._ext"),
    ("anonface.ops",),
    ("anonface.io",),
    ("anonface.detect",),
    ("anonface.track",),
    ("anonface.render",),
    ("anonface.models",),
    ("anonface.pipeline",),
    ("anonface.files",),
    ("anonface.data",),
    ("anonface.train",),
    ("anonface.eval",),
    ("anonface.cli", "anonface.batch", "anonface.__main__"),
]


def _modules() -> dict[str, Path]:
    out = {}
    for p in PKG.rglob("*.py"):
        parts = ("anonface", *p.relative_to(PKG).with_suffix("").parts)
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = p
    return out


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    pkg = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")[: len(pkg.split(".")) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            found.add(mod)
            found.update(f"{mod}.{a.name}" for a in node.names)
    # the package root is only a facade (anonface/__init__.py re-exports the public API)
    return {m for m in found if m in modules and m not in (name, "anonface")}


def _layer(name: str) -> int:
    for i, prefixes in enumerate(LAYERS):
        if any(name == p or name.startswith(p + ".") for p in prefixes):
            return i
    raise AssertionError(f"{name} is in no layer: add it to LAYERS and docs/architecture.md")


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {m: _imports(m, p, modules) for m, p in modules.items() if m != "anonface"}


def test_every_import_goes_down_the_layers() -> None:
    bad = [f"{m} (layer {_layer(m)}) imports {d} (layer {_layer(d)})"
           for m, deps in _graph().items() for d in sorted(deps) if _layer(d) > _layer(m)]
    assert not bad, "\n".join(bad)


def test_no_import_cycles() -> None:
    graph = _graph()
    # a package imports its own submodules (its __init__ re-exports them): not a cycle
    graph = {m: {d for d in deps if not d.startswith(m + ".")} for m, deps in graph.items()}
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for d in sorted(graph.get(m, ())):
            if state.get(d) == 1:
                cycles.append(path[path.index(d):] + [d] if d in path else [m, d])
            elif d not in state:
                visit(d, path + [d])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)
