"""The package layout stays what docs/design.md says it is: no import cycles, no private names
reached into across packages, every module on the package map, no module too long to read.

The imports are read from the source (``ast``), not by importing lakekit, so optional
packages do not matter and every import counts: module level, inside functions and classes,
and ``importlib.import_module("lakekit.…")`` with a literal name.
"""

from __future__ import annotations

import ast
import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "lakekit"
DESIGN = ROOT / "docs" / "design.md"
MAX_LINES = 500
LONG_REASON = "Longer than 500 lines because"
# top-level helpers any package may use
SHARED_PRIVATE = {"lakekit._deps", "lakekit._html", "lakekit._svg"}


# -- reading the package --------------------------------------------------------------------

def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES: dict[str, Path] = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def package_of(name: str) -> str:
    """The package a module belongs to: itself for a package's ``__init__``, else its parent."""
    return name if is_package(name) else name.rsplit(".", 1)[0]


def parents(name: str) -> list[str]:
    """The packages above a module: ``a.b.c`` -> ``["a.b", "a"]``."""
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(len(parts) - 1, 0, -1)]


def is_private(part: str) -> bool:
    return part.startswith("_") and not (part.startswith("__") and part.endswith("__"))


@dataclass(frozen=True)
class Import:
    """One import in ``source`` of ``target`` (a lakekit module), with the names taken."""

    source: str
    target: str
    names: tuple[str, ...]
    line: int
    type_checking: bool  # under ``if TYPE_CHECKING:``

    def where(self) -> str:
        return f"{MODULES[self.source].relative_to(ROOT)}:{self.line}"


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _resolve(source: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = package_of(source).split(".")
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def imports_of(source: str) -> Iterator[Import]:
    """Every import of a lakekit module in ``source``, wherever it is in the file.

    ``from pkg import name`` counts as importing ``pkg.name`` when that is a module, else
    ``pkg`` itself."""
    tree = ast.parse(MODULES[source].read_text(), str(MODULES[source]))

    def visit(node: ast.AST, guarded: bool) -> Iterator[Import]:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                yield from visit(child, True)
            for child in node.orelse:
                yield from visit(child, guarded)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in MODULES:
                    yield Import(source, alias.name, (), node.lineno, guarded)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(source, node)
            if base == "lakekit" or base.startswith("lakekit."):
                taken: dict[str, list[str]] = {}
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    if sub in MODULES:
                        taken.setdefault(sub, [])
                    else:
                        taken.setdefault(base, []).append(alias.name)
                for target, names in taken.items():
                    yield Import(source, target, tuple(names), node.lineno, guarded)
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr == "import_module" and node.args
              and isinstance(node.args[0], ast.Constant) and node.args[0].value in MODULES):
            yield Import(source, node.args[0].value, (), node.lineno, guarded)
        for child in ast.iter_child_nodes(node):
            yield from visit(child, guarded)

    yield from visit(tree, False)


IMPORTS: list[Import] = [i for m in MODULES for i in imports_of(m)]


# -- 1. no import cycles --------------------------------------------------------------------

def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (as a closed path) per strongly connected component that has one."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def connect(v: str) -> None:  # Tarjan; the package is small enough to recurse
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1 or v in graph[v]:
                components.append(component)

    for v in sorted(graph):
        if v not in index:
            connect(v)

    cycles = []
    for component in components:
        start = min(component)
        # the shortest way back to start, staying inside the component
        paths = {start: [start]}
        frontier = [start]
        found: list[str] | None = None
        while frontier and found is None:
            nxt = []
            for v in frontier:
                for w in sorted(graph[v] & component):
                    if w == start:
                        found = [*paths[v], start]
                        break
                    if w not in paths:
                        paths[w] = [*paths[v], w]
                        nxt.append(w)
                if found:
                    break
            frontier = nxt
        assert found is not None
        cycles.append(found)
    return sorted(cycles)


def test_find_cycles_names_each_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"d"}, "e": {"a"}}
    assert find_cycles(graph) == [["a", "b", "c", "a"], ["d", "d"]]


def test_no_import_cycles() -> None:
    """No module reaches itself through imports, function-level ones included (a lazy import
    only hides a cycle). Importing ``a.b.c`` also runs ``a/b/__init__.py``, so it counts as
    importing the packages above it too (except those the importer is already inside).
    Imports under ``if TYPE_CHECKING:`` are left out: they never run."""
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    lines: dict[tuple[str, str], str] = {}
    for imp in IMPORTS:
        if imp.type_checking:
            continue
        for target in [imp.target, *parents(imp.target)]:
            if target != imp.source and target not in parents(imp.source):
                graph[imp.source].add(target)
                lines.setdefault((imp.source, target), imp.where())
    cycles = find_cycles(graph)
    described = [
        " -> ".join(c) + "\n    " + ", ".join(lines[a, b] for a, b in itertools.pairwise(c))
        for c in cycles
    ]
    assert not cycles, "import cycles:\n  " + "\n  ".join(described)


# -- 2. no private names across packages ----------------------------------------------------

def private_imports() -> list[str]:
    found = []
    for imp in IMPORTS:
        if imp.target in SHARED_PRIVATE or package_of(imp.source) == package_of_target(imp):
            continue
        private_module = [p for p in imp.target.split(".") if is_private(p)]
        private_names = [n for n in imp.names if is_private(n)]
        if private_module or private_names:
            what = (f"{', '.join(private_names)} from {imp.target}" if private_names
                    else f"the private module {imp.target}")
            found.append(f"{imp.where()}: {imp.source} imports {what}")
    return found


def package_of_target(imp: Import) -> str:
    """The package that owns what is imported: for a name, the package of the module that
    defines it; for a module, its parent package."""
    if imp.names:
        return package_of(imp.target)
    return imp.target.rsplit(".", 1)[0]


def test_no_private_names_imported_from_another_package() -> None:
    """A module imports a private name (``_x``) or a private module (``pkg/_x.py``) only from
    its own package (modules in the same folder; a package's ``__init__`` belongs to that
    package). ``lakekit._deps`` and ``lakekit._html`` are shared helpers, open to all."""
    found = private_imports()
    assert not found, "private imports across packages:\n  " + "\n  ".join(found)


# -- 3. every module is on the package map --------------------------------------------------

def package_map() -> set[str]:
    """The module paths in the package map of docs/design.md, relative to ``lakekit/``.

    The package map is the ```` ```text ```` code block whose first line is ``lakekit/``.
    In it, an entry is the first word of a line when that word ends in ``.py`` or ``/``; its
    indentation nests it under the nearest less-indented folder entry above it. Other lines
    (descriptions that wrap) are ignored. ``io/`` then ``jsonl/`` then ``reader.py`` is the
    path ``io/jsonl/reader.py``.
    """
    blocks = re.findall(r"```text\n(.*?)```", DESIGN.read_text(), re.S)
    block = next((b for b in blocks if b.startswith("lakekit/")), None)
    assert block is not None, "docs/design.md has no package map (a text block opening lakekit/)"
    listed = set()
    folders: list[tuple[int, str]] = []  # (indent, name/) of the folders we are inside
    for line in block.splitlines():
        if not line.strip():
            continue
        entry = line.split()[0]
        if not (entry.endswith(".py") or entry.endswith("/")):
            continue
        indent = len(line) - len(line.lstrip())
        while folders and folders[-1][0] >= indent:
            folders.pop()
        path = "".join(name for _, name in folders) + entry
        if entry.endswith("/"):
            folders.append((indent, entry))
            listed.add(path + "__init__.py")  # a package's heading stands for its __init__
        else:
            listed.add(path)
    return {p.removeprefix("lakekit/") for p in listed}


def test_package_map_reading() -> None:
    assert package_map() >= {"__init__.py", "errors.py"}


def test_every_module_is_on_the_package_map() -> None:
    """Each ``lakekit/**.py`` appears in the package map of docs/design.md at its path (a
    package's ``__init__.py`` is covered by its folder's entry); see :func:`package_map` for
    how the map is read. Entries for modules that no longer exist fail too."""
    listed = package_map()
    modules = {p.relative_to(PACKAGE).as_posix() for p in MODULES.values()}
    missing = sorted(modules - listed)
    stale = sorted(listed - modules)  # a folder entry of a package that is gone is stale too
    assert not missing and not stale, (
        f"not in docs/design.md's package map: {missing}; listed but absent: {stale}")


# -- 4. no module too long without a reason -------------------------------------------------

def test_no_module_over_500_lines_without_a_reason() -> None:
    """A module over 500 lines says why in its docstring, on a line starting with
    "Longer than 500 lines because"."""
    long = []
    for path in MODULES.values():
        text = path.read_text()
        n = len(text.splitlines())
        if n <= MAX_LINES:
            continue
        doc = ast.get_docstring(ast.parse(text)) or ""
        if not any(line.strip().startswith(LONG_REASON) for line in doc.splitlines()):
            long.append(f"{path.relative_to(ROOT)} ({n} lines)")
    assert not long, f"modules over {MAX_LINES} lines without '{LONG_REASON} ...': {long}"
