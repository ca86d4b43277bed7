"""No import cycles between graphmner's modules, lazy imports included.

File level: every ``import`` and ``from ... import`` of each module, at module
level or inside a function (a lazy import still closes a cycle the moment it
runs), is an edge to the module file it names; ``from package import name``
is an edge to ``package/name.py`` where that file exists, else to the
package's ``__init__.py``. Imports under ``if TYPE_CHECKING:`` are left out: they
never run, so they cannot close a cycle. Every strongly connected component of
that graph with more than one module is reported, with one cycle through it.
"""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / 'graphmner'


def module_name(root: Path, path: Path) -> str:
    parts = [root.name, *path.relative_to(root).with_suffix('').parts]
    return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


def runtime_nodes(tree: ast.AST):
    """Every node of ``tree`` but those under ``if TYPE_CHECKING:`` (annotations only)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == 'TYPE_CHECKING':
            for other in node.orelse:
                yield other
                yield from runtime_nodes(other)
            continue
        yield node
        yield from runtime_nodes(node)


def import_graph(root: Path) -> dict[str, set[str]]:
    """``{module: modules it imports}`` over the package at ``root``."""
    files = {module_name(root, p): p for p in root.rglob('*.py')}
    graph: dict[str, set[str]] = {name: set() for name in files}
    for name, path in files.items():
        package = name if path.name == '__init__.py' else name.rpartition('.')[0]
        for node in runtime_nodes(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split('.')[:len(package.split('.')) - node.level + 1]
                    source = '.'.join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ''
                # ``from graph import schema`` names the module graph.schema where it exists.
                targets = [f'{source}.{a.name}' if f'{source}.{a.name}' in files else source
                           for a in node.names]
            else:
                continue
            graph[name].update(t for t in targets if t in files and t != name)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle through each strongly connected component of more than one
    module (Tarjan), as ``[a, b, ..., a]``, sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

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
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(component)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(shortest_cycle(graph, component) for component in components)


def shortest_cycle(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    """The shortest cycle from the component's first module back to it (breadth-first)."""
    start = min(component)
    parent: dict[str, str | None] = {start: None}
    queue = [start]
    while queue:
        v = queue.pop(0)
        for w in sorted(graph[v] & component):
            if w == start:
                path = [v]
                while parent[path[-1]] is not None:
                    path.append(parent[path[-1]])
                return path[::-1] + [start]
            if w not in parent:
                parent[w] = v
                queue.append(w)
    raise AssertionError(f'{sorted(component)} is strongly connected, so a cycle exists')


def show(found: list[list[str]]) -> str:
    return '; '.join(' -> '.join(c) for c in found)


def test_no_import_cycles():
    found = cycles(import_graph(PACKAGE))
    assert not found, f'import cycles: {show(found)}'


def test_the_check_sees_lazy_and_package_imports(tmp_path):
    """A cycle closed by an import inside a function, one through ``from . import name``
    and one through a package ``__init__`` are all found; an acyclic import is not, nor one
    that only an ``if TYPE_CHECKING:`` import closes (it never runs)."""
    root = tmp_path / 'pkg'
    (root / 'sub').mkdir(parents=True)
    files = {
        '__init__.py': '',
        'a.py': 'def f():\n    from .b import g\n',
        'b.py': 'from . import a\n',
        'c.py': 'import pkg.a\n',
        'sub/__init__.py': 'from .d import x\n',
        'sub/d.py': 'def h():\n    from pkg.sub import x\n',
        'e.py': 'from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .f import y\n',
        'f.py': 'from . import e\n',
    }
    for name, text in files.items():
        (root / name).write_text(text)
    assert cycles(import_graph(root)) == [['pkg.a', 'pkg.b', 'pkg.a'], ['pkg.sub', 'pkg.sub.d', 'pkg.sub']]
