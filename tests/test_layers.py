"The modules stand in layers (nbs/index.ipynb's chapter map): each imports only from modules below it."
import ast
from pathlib import Path

import pytest

LIB = Path(__file__).resolve().parent.parent / 'robust_labels'
# bottom to top, as in the chapter map; `theory` stands apart and needs only core
ORDER = ['core', 'resources', 'perturb', 'labels', 'data', 'models', 'corruptions', 'corruption_sets', 'cbar', 'catalog',
         'augmix', 'pixmix', 'deepaugment', 'augment', 'attacks', 'metrics', 'train', 'regimes', 'config', 'setup',
         'study', 'tune', 'evals', 'runs', 'executors', 'tables', 'figures', 'spider_claims', 'vs_claims', 'registry', 'report', 'cli']
THEORY = ['core', 'theory', 'theory_spider', 'theory_vs', 'theory_checks']
MODULES = sorted(p.stem for p in LIB.glob('*.py') if not p.stem.startswith('_'))


def imported_modules(name:str) -> set:
    "The robust_labels modules that module `name` imports (relative or absolute, at any depth)."
    out = set()
    for node in ast.walk(ast.parse((LIB / f'{name}.py').read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.level == 1: out.add(node.module.split('.')[0])
            elif node.module.startswith('robust_labels.'): out.add(node.module.split('.')[1])
        elif isinstance(node, ast.Import):
            out.update(a.name.split('.')[1] for a in node.names if a.name.startswith('robust_labels.'))
    return out


def test_every_module_has_a_layer():
    assert set(MODULES) == set(ORDER) | set(THEORY)


@pytest.mark.parametrize('name', MODULES)
def test_imports_only_from_lower_layers(name):
    order = THEORY if name.startswith('theory') else ORDER
    upward = {m for m in imported_modules(name) if m not in order or order.index(m) >= order.index(name)}
    assert not upward, f"{name} imports {sorted(upward)}, which are not below it"
