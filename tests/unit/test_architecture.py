"""Architecture rules of nmt_cli, checked on the source text (ast): fast, and no torch import.

The rules (issue 17):
- no module over 400 lines, no function over 60 lines (from ``def`` to the end of its body;
  only ``beam_search`` is allowed more), no class over 250 lines;
- no import cycle between nmt_cli modules, counting imports at every level (module level and
  inside functions; only ``if TYPE_CHECKING:`` imports are left out);
- ``nmt_cli.model`` does not import ``nmt_cli.tokenizer``, even transitively;
- translation (``nmt_cli.translate`` and all it imports) never imports training code.

Run as a script to print every violation at once: ``python tests/unit/test_architecture.py``.
"""

from __future__ import annotations

import ast
import itertools
import sys
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "nmt_cli"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
MAX_CLASS_LINES = 250
# The only function allowed more than MAX_FUNCTION_LINES: the beam search loop (by name, so it
# stays allowed wherever a split of search.py puts it).
LONG_FUNCTIONS_ALLOWED = frozenset({"beam_search"})


@dataclass(frozen=True)
class Module:
    """One source file of the package."""

    name: str  # dotted, e.g. "nmt_cli.model.seq2seq" ("nmt_cli.model" for its __init__.py)
    path: Path
    rel: str  # the path from the repository root, e.g. "nmt_cli/model/seq2seq.py"
    tree: ast.Module
    n_lines: int

    @property
    def is_package(self) -> bool:
        return self.path.name == "__init__.py"


def load_modules(root: Path = ROOT) -> dict[str, Module]:
    """Every .py file under nmt_cli/, parsed, by dotted module name."""
    modules = {}
    for path in sorted((root / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        text = path.read_text(encoding="utf-8")
        name = ".".join(parts)
        rel = path.relative_to(root).as_posix()
        tree = ast.parse(text, str(path))
        modules[name] = Module(name, path, rel, tree, len(text.splitlines()))
    return modules


# ---- sizes ------------------------------------------------------------------------------


Definition = ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef


def definitions(tree: ast.AST, prefix: str = "") -> Iterator[tuple[str, Definition]]:
    """(qualified name, node) of every function and class in `tree`, nested ones included."""
    for node in ast.iter_child_nodes(tree):
        name = prefix
        if isinstance(node, Definition):
            name = f"{prefix}{node.name}"
            yield name, node
            name += "."
        yield from definitions(node, name)


def span(node: Definition) -> int:
    """Lines from the `def`/`class` line (decorators not counted) to the end of the body."""
    assert node.end_lineno is not None
    return node.end_lineno - node.lineno + 1


def long_functions(module: Module) -> list[str]:
    return [
        f"{module.rel}:{node.lineno} {name}() is {span(node)} lines (max {MAX_FUNCTION_LINES})"
        for name, node in definitions(module.tree)
        if not isinstance(node, ast.ClassDef)
        and span(node) > MAX_FUNCTION_LINES
        and node.name not in LONG_FUNCTIONS_ALLOWED
    ]


def long_classes(module: Module) -> list[str]:
    return [
        f"{module.rel}:{node.lineno} class {name} is {span(node)} lines (max {MAX_CLASS_LINES})"
        for name, node in definitions(module.tree)
        if isinstance(node, ast.ClassDef) and span(node) > MAX_CLASS_LINES
    ]


def long_module(module: Module) -> list[str]:
    if module.n_lines <= MAX_MODULE_LINES:
        return []
    return [f"{module.rel} is {module.n_lines} lines (max {MAX_MODULE_LINES})"]


# ---- imports ----------------------------------------------------------------------------


def is_type_checking(test: ast.expr) -> bool:
    """`TYPE_CHECKING` or `typing.TYPE_CHECKING`."""
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imported_names(module: Module) -> Iterator[tuple[int, str]]:
    """(line, dotted name) of everything `module` imports, at any level, except in
    `if TYPE_CHECKING:` blocks; `from a import b` gives both "a" and "a.b"."""
    stack: list[ast.AST] = [module.tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolved against this module's package
                package = module.name if module.is_package else module.name.rpartition(".")[0]
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            yield node.lineno, base
            yield from ((node.lineno, f"{base}.{alias.name}") for alias in node.names)
        stack.extend(ast.iter_child_nodes(node))


def import_graph(modules: dict[str, Module]) -> dict[str, dict[str, str]]:
    """module -> {imported nmt_cli module: "file:line" of its first import}.

    Importing a.b.c also runs the __init__ of packages a.b and a, unless they are packages of
    the importer itself (already being imported when it runs).
    """
    graph: dict[str, dict[str, str]] = {name: {} for name in modules}
    for name, module in modules.items():
        own = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 2)}
        for line, target in sorted(imported_names(module)):
            parts = target.split(".")
            for i in range(len(parts), 0, -1):
                dep = ".".join(parts[:i])
                if dep in modules and dep not in own and dep != name:
                    graph[name].setdefault(dep, f"{module.rel}:{line}")
    return graph


def cycles(graph: dict[str, dict[str, str]]) -> list[list[str]]:
    """One shortest cycle per strongly connected component of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan; the package has few dozen modules: recursion is fine
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for dep in graph[node]:
            if dep not in index:
                visit(dep)
                low[node] = min(low[node], low[dep])
            elif dep in on_stack:
                low[node] = min(low[node], index[dep])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    found = []
    for component in components:
        start = component[0]
        path = shortest_path(graph, start, {start}, within=set(component), first_step=True)
        assert path is not None
        found.append(path)
    return sorted(found)


def shortest_path(
    graph: dict[str, dict[str, str]],
    start: str,
    goals: set[str],
    within: set[str] | None = None,
    first_step: bool = False,
) -> list[str] | None:
    """Breadth-first import path from `start` to any of `goals` (at least one edge if
    `first_step`), or None."""
    parents: dict[str, str | None] = {} if first_step else {start: None}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for dep in sorted(graph[node]):
            if within is not None and dep not in within:
                continue
            if dep in goals:
                path, back = [dep, node], parents.get(node)
                while back is not None:
                    path.append(back)
                    back = parents.get(back)
                if path[-1] != start:
                    path.append(start)
                return path[::-1]
            if dep not in parents:
                parents[dep] = node
                queue.append(dep)
    return None


def format_path(graph: dict[str, dict[str, str]], path: list[str]) -> str:
    """a -> b (a.py:12) -> c (b.py:3): every edge with the place of its import."""
    return " -> ".join([path[0], *(f"{b} ({graph[a][b]})" for a, b in itertools.pairwise(path))])


def forbidden_imports(
    graph: dict[str, dict[str, str]], roots: list[str], forbidden: set[str]
) -> list[str]:
    """An import path from each root that reaches a forbidden module, leaving out the paths
    that merely lead through another root's."""
    paths = [p for p in (shortest_path(graph, root, forbidden) for root in roots) if p]
    starts = {p[0] for p in paths}
    return [format_path(graph, p) for p in paths if not starts & set(p[1:])]


def is_training(name: str) -> bool:
    """nmt_cli.train, or anything in a training package (nmt_cli.train*, nmt_cli.training.*)."""
    parts = name.split(".")
    return len(parts) > 1 and parts[1].startswith("train")


def in_package(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def model_imports_tokenizer(modules: dict[str, Module]) -> list[str]:
    graph = import_graph(modules)
    roots = [m for m in modules if in_package(m, f"{PACKAGE}.model")]
    forbidden = {m for m in modules if in_package(m, f"{PACKAGE}.tokenizer")}
    return forbidden_imports(graph, roots, forbidden)


def translation_imports_training(modules: dict[str, Module]) -> list[str]:
    graph = import_graph(modules)
    roots = [m for m in modules if in_package(m, f"{PACKAGE}.translate")]
    assert roots, "no nmt_cli.translate module found"
    return forbidden_imports(graph, roots, {m for m in modules if is_training(m)})


def import_cycles(modules: dict[str, Module]) -> list[str]:
    graph = import_graph(modules)
    return [f"import cycle: {format_path(graph, cycle)}" for cycle in cycles(graph)]


# ---- the tests --------------------------------------------------------------------------

MODULES = load_modules()
FILES = sorted(MODULES.values(), key=lambda m: m.rel)


def test_the_package_is_found() -> None:
    assert f"{PACKAGE}.model" in MODULES and f"{PACKAGE}.cli" in MODULES


@pytest.mark.parametrize("module", FILES, ids=[m.rel for m in FILES])
def test_module_size(module: Module) -> None:
    assert not (bad := long_module(module)), bad[0]


@pytest.mark.parametrize("module", FILES, ids=[m.rel for m in FILES])
def test_function_sizes(module: Module) -> None:
    assert not (bad := long_functions(module)), "\n".join(bad)


@pytest.mark.parametrize("module", FILES, ids=[m.rel for m in FILES])
def test_class_sizes(module: Module) -> None:
    assert not (bad := long_classes(module)), "\n".join(bad)


def test_no_import_cycles() -> None:
    assert not (bad := import_cycles(MODULES)), "\n".join(bad)


def test_the_model_does_not_import_the_tokenizer() -> None:
    assert not (bad := model_imports_tokenizer(MODULES)), "\n".join(bad)


def test_translation_does_not_import_training_code() -> None:
    assert not (bad := translation_imports_training(MODULES)), "\n".join(bad)


# ---- the checker itself, on a made-up package -------------------------------------------


def write_package(root: Path, files: dict[str, str]) -> dict[str, Module]:
    for rel, text in files.items():
        path = root / PACKAGE / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return load_modules(root)


def test_cycles_count_function_level_imports_but_not_type_checking_ones(tmp_path: Path) -> None:
    modules = write_package(
        tmp_path,
        {
            "__init__.py": "",
            "a.py": "def f():\n    from nmt_cli import b\n",
            "b.py": "import nmt_cli.a\n",
            "c.py": "import typing\nif typing.TYPE_CHECKING:\n    from nmt_cli import a\n",
            "d.py": "from . import c\n",
            "model/__init__.py": "from nmt_cli.model.x import X\n",
            "model/x.py": "from nmt_cli.model.y import Y\nX = 1\n",
            "model/y.py": "from nmt_cli.e import E\nY = 2\n",
            "e.py": "def g():\n    import nmt_cli.model.x\n",
        },
    )
    graph = import_graph(modules)
    assert graph["nmt_cli.c"] == {} and graph["nmt_cli.d"] == {"nmt_cli.c": "nmt_cli/d.py:1"}
    assert list(graph["nmt_cli.model.x"]) == ["nmt_cli.model.y"]  # its own package: no edge
    assert sorted(graph["nmt_cli.e"]) == ["nmt_cli.model", "nmt_cli.model.x"]  # parent runs too
    assert cycles(graph) == [
        ["nmt_cli.a", "nmt_cli.b", "nmt_cli.a"],
        ["nmt_cli.e", "nmt_cli.model.x", "nmt_cli.model.y", "nmt_cli.e"],
    ]


def test_forbidden_imports_are_found_through_other_modules(tmp_path: Path) -> None:
    modules = write_package(
        tmp_path,
        {
            "__init__.py": "",
            "translate.py": "from nmt_cli.search import s\n",
            "search.py": "def s():\n    from nmt_cli.training.loop import run\n",
            "training/__init__.py": "",
            "training/loop.py": "",
            "model/__init__.py": "from nmt_cli.model import seq2seq\n",
            "model/seq2seq.py": "import nmt_cli.ids\n",
            "ids.py": "from nmt_cli.tokenizer import PAD_ID\n",
            "tokenizer.py": "",
        },
    )
    assert translation_imports_training(modules) == [
        "nmt_cli.translate -> nmt_cli.search (nmt_cli/translate.py:1)"
        " -> nmt_cli.training (nmt_cli/search.py:2)"
    ]
    assert model_imports_tokenizer(modules) == [
        "nmt_cli.model.seq2seq -> nmt_cli.ids (nmt_cli/model/seq2seq.py:1)"
        " -> nmt_cli.tokenizer (nmt_cli/ids.py:1)"
    ]


def test_sizes_count_from_def_to_the_end_of_the_body(tmp_path: Path) -> None:
    body = "".join(f"    x{i} = {i}\n" for i in range(MAX_FUNCTION_LINES - 1))  # + def = max
    method = body.replace("    ", "        ") + "        return 1\n"  # one line too many
    modules = write_package(
        tmp_path,
        {
            "__init__.py": "",
            "f.py": f"@decorator\ndef fits():\n{body}\n\nclass C:\n    def long(self):\n"
            f"{method}\n\ndef beam_search():\n{body * 2}",
        },
    )
    module = modules["nmt_cli.f"]
    assert [line.split()[1] for line in long_functions(module)] == ["C.long()"]


def violations() -> list[str]:
    """Every rule broken by the package, one line each."""
    found = []
    for module in FILES:
        found += long_module(module) + long_classes(module) + long_functions(module)
    found += import_cycles(MODULES)
    found += [f"the model imports the tokenizer: {p}" for p in model_imports_tokenizer(MODULES)]
    found += [f"translation imports training: {p}" for p in translation_imports_training(MODULES)]
    return found


if __name__ == "__main__":
    broken = violations()
    print("\n".join(broken) if broken else "no architecture rule is broken")
    sys.exit(1 if broken else 0)
