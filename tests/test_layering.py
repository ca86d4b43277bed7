"""The package reads one way: data -> features -> graph -> nn -> models -> train
-> predict -> cli.
A module may import its own layer and the layers below it, never one above
(no import cycles between layers, and a lower layer never needs a higher one)."""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / 'graphmner'
# Top-level helper modules (version, io, metrics) sit below everything except data's labels.
LAYERS = {'version': 0, 'io': 0, 'data': 1, 'metrics': 2, 'features': 3, 'graph': 4, 'nn': 5, 'models': 6,
          'train': 7, 'predict': 8, 'render': 8, 'explain': 8, 'significance': 8, 'cli': 9, '__main__': 10}


def layer_of(module: str) -> str:
    """'graphmner.graph.builder' -> 'graph'; 'graphmner.metrics' -> 'metrics'."""
    return module.split('.')[1]


def imports_of(path: Path) -> list[str]:
    """Every graphmner module ``path`` imports, absolute or relative, at any depth."""
    package = ['graphmner', *path.relative_to(PACKAGE).with_suffix('').parts][:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.startswith('graphmner.')]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                name = '.'.join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ''
            # the root package holds only the version and a lazy attribute: any layer may read it
            if name.startswith('graphmner.'):
                found.append(name)
    return found


MODULES = sorted(p for p in PACKAGE.rglob('*.py') if p.parent != PACKAGE or p.stem != '__init__')


@pytest.mark.parametrize('path', MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_imports_a_higher_layer(path):
    own = layer_of('.'.join(['graphmner', *path.relative_to(PACKAGE).with_suffix('').parts]))
    upward = [name for name in imports_of(path)
              if name.count('.') >= 1 and LAYERS[layer_of(name)] > LAYERS[own]]
    assert not upward, f'{path.relative_to(PACKAGE)} (layer {own}) imports {upward}'


def test_the_check_sees_relative_imports():
    """A deliberately upward import in a lower layer is caught (guards the checker itself)."""
    assert 'graphmner.graph.schema' in imports_of(PACKAGE / 'models' / 'umgf.py')
    assert 'graphmner.data.labels' in imports_of(PACKAGE / 'metrics.py')
