"""The package's import graph: no circles, and the shipped code never imports dev-only code."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("sqs_tasks", "lambda_handler")
# Development-only: never shipped to Lambda, so nothing shipped may import them.
DEV_ONLY = ("sqs_tasks.testing", "sqs_tasks.local", "sqs_tasks.cli")
SHIPPED = ("sqs_tasks.worker", "sqs_tasks.aws", "lambda_handler")
CORE = (
    "sqs_tasks.backend",
    "sqs_tasks.bulk",
    "sqs_tasks.checks",
    "sqs_tasks.conf",
    "sqs_tasks.exceptions",
    "sqs_tasks.message",
    "sqs_tasks.producer",
    "sqs_tasks.results",
    "sqs_tasks.task",
    "sqs_tasks.backoff",
    "sqs_tasks.apps",
    "sqs_tasks.arguments",
    "sqs_tasks.ops",
    "sqs_tasks.management",
)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {
        _module_name(path): path
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
    }


def _imports(name: str, path: Path, known: set[str]) -> Iterator[str]:
    """Every module of the package that name imports, anywhere (functions, TYPE_CHECKING)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # `from . import x` imports the submodule x when there is one.
            targets = [f"{base}.{alias.name}" for alias in node.names]
            targets = [t if t in known else base for t in targets]
        else:
            continue
        for target in targets:
            # A dotted import loads each enclosing package first; the edge to the leaf suffices
            # for cycles through modules, and packages' own imports are edges of their own.
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                yield target


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: set(_imports(name, path, known)) for name, path in modules.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle, as a path that ends where it starts, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def test_the_graph_sees_every_kind_of_import() -> None:
    graph = _graph()

    assert "sqs_tasks.aws.store" in graph["sqs_tasks.backend"]  # from .aws.store import ...
    assert "sqs_tasks.backoff" in graph["sqs_tasks.worker.batch"]  # from .. import backoff
    assert "sqs_tasks.worker.handler" in graph["lambda_handler.handler"]  # absolute


def test_no_import_circles() -> None:
    # Package __init__ modules re-export lazily; a circle through them is still a circle.
    assert _cycle(_graph()) is None


@pytest.mark.parametrize("layer", [*SHIPPED, *CORE])
def test_shipped_code_never_imports_dev_only_code(layer: str) -> None:
    graph = _graph()
    offending = {
        (name, target)
        for name, targets in graph.items()
        if _within(name, (layer,))
        for target in targets
        if _within(target, DEV_ONLY)
    }
    assert offending == set()


def test_aws_layer_never_imports_the_worker() -> None:
    graph = _graph()
    offending = {
        (name, target)
        for name, targets in graph.items()
        if _within(name, ("sqs_tasks.aws",))
        for target in targets
        if _within(target, ("sqs_tasks.worker",))
    }
    assert offending == set()


def test_finds_a_circle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None
