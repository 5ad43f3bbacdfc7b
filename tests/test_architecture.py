"""The package's shape: no import cycle, and every import points the way DEVELOPERS.md says.

Imports are read from the source (``ast``), so imports inside functions count as well as those at
the top of a module: a lazy import is still a dependency.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "ncodec"

#: What each part of the package may import (besides itself). Lower layers know nothing of the
#: higher ones: entropy coding, quantizers, the container and the kernels know nothing of codecs;
#: networks know nothing of codecs or files; the zoo sits above the networks; codecs use the zoo;
#: the API uses codecs; the CLI is a shell over the API; no library code imports training code (training
#: validates through the real codecs, so it sits above them).
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "progress": set(),
    "entropy": {"errors"},
    "bitstream": {"errors"},
    "media": {"errors"},
    "transforms": {"errors"},
    "kernels": {"errors", "entropy"},
    "quantizers": {"errors", "entropy"},
    "models": {"errors", "progress", "entropy", "quantizers", "transforms"},
    "zoo": {"errors", "progress", "entropy", "models"},
    "codecs": {"errors", "progress", "entropy", "bitstream", "media", "transforms", "quantizers", "models", "zoo"},
    "api": {"errors", "progress", "bitstream", "media", "codecs", "zoo"},
    "tokenizers": {"errors", "progress", "media", "models", "zoo", "codecs"},
    "eval": {"ncodec", "errors", "progress", "media", "transforms", "api", "codecs"},
    "bench": {"errors", "progress", "entropy", "kernels", "media", "api", "codecs"},
    "train": {"errors", "progress", "entropy", "quantizers", "bitstream", "media", "transforms", "models", "zoo",
              "codecs", "eval"},
    "corpus": {"errors", "progress", "media", "api", "tokenizers"},
    "cli": {"errors", "progress", "media", "api", "tokenizers", "eval", "bench", "corpus"},
    "ncodec": {"errors", "media", "kernels", "codecs", "api"},  # the package's own __init__
    "__main__": {"cli"},
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    """Every module: the Python sources, and the C extensions (``_rans.c`` is ``ncodec.entropy._rans``)."""
    return {_module_name(p): p for p in sorted([*PACKAGE.rglob("*.py"), *PACKAGE.rglob("*.c")])}


def import_graph() -> dict[str, set[str]]:
    """Module -> the ncodec modules it imports (``from pkg import name`` counts as pkg.name when that
    is a module, else as pkg)."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        graph[name] = set()
        if path.suffix != ".py":
            continue
        is_package = path.name == "__init__.py"
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = name.split(".") if is_package else name.split(".")[:-1]
                    base = base[: len(base) - (node.level - 1)]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                if source.split(".")[0] != "ncodec":
                    continue
                for alias in node.names:
                    full = f"{source}.{alias.name}"
                    targets.add(full if full in modules else source)
            elif isinstance(node, ast.Import):
                targets |= {a.name for a in node.names if a.name.split(".")[0] == "ncodec"}
            elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                  and node.func.attr == "import_module" and node.args and isinstance(node.args[0], ast.Constant)
                  and str(node.args[0].value).startswith("ncodec")):
                targets.add(str(node.args[0].value))
        unknown = targets - set(modules)
        assert not unknown, f"{name} imports modules that do not exist: {sorted(unknown)}"
        graph[name] = targets - {name}
    return graph


def part(module: str) -> str:
    """The part of the package a module belongs to: ``ncodec.zoo.audio`` -> ``zoo``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "ncodec"


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_every_part_is_known() -> None:
    assert {part(m) for m in _modules()} == set(ALLOWED), "a new part of the package needs its place in ALLOWED"


def test_no_import_cycle() -> None:
    assert cycles(import_graph()) == []


def test_imports_point_the_way_the_layers_allow() -> None:
    wrong = sorted(f"{m} -> {t}" for m, ts in import_graph().items() for t in ts
                   if part(t) != part(m) and part(t) not in ALLOWED[part(m)])
    assert wrong == []


def test_networks_know_nothing_of_codecs_or_files() -> None:
    """Nothing under ncodec.models reads or writes files or streams (media I/O, the container, the zoo)."""
    wrong = sorted(f"{m} -> {t}" for m, ts in import_graph().items() if part(m) == "models"
                   for t in ts if part(t) in {"media", "bitstream", "zoo", "codecs"})
    assert wrong == []


def test_the_checks_catch_a_cycle_and_a_wrong_direction() -> None:
    """The checks themselves: a two-module cycle is found, and entropy -> codecs is refused."""
    assert cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]
    assert "codecs" not in ALLOWED["entropy"] and "zoo" not in ALLOWED["models"]
    assert "codecs" not in ALLOWED["zoo"] and "api" not in ALLOWED["codecs"] and "train" not in ALLOWED["codecs"]


@pytest.mark.parametrize("loose", sorted(p.stem for p in PACKAGE.glob("*.py")))
def test_few_loose_modules_at_the_top(loose: str) -> None:
    """The package top level holds the entry points and the few modules every layer shares."""
    assert loose in {"__init__", "__main__", "api", "cli", "errors", "progress", "bitstream"}
