"""The CUDA-flagged tests: pytest tests skipped without CUDA, and notebooks with `#| cuda` cells (run by gpu_check.sh).

A pytest test counts as CUDA-flagged when it (or its class) carries a `pytest.mark.skipif(...)` that skips it without
CUDA: a condition `not ...cuda...` or a reason 'needs/requires CUDA/a GPU', e.g.
`@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')`; a notebook when
one of its code cells has the nbdev flag `#| cuda` (nbdev-test skips those cells unless run with `--flags cuda`).

Run:  python benchmarks/cuda_tests.py [--tests tests] [--nbs nbs] [--kind pytest|notebooks]   (one id or path per line)
"""
import argparse, ast, json, re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_GPU = re.compile(r'cuda|gpu', re.I)
_NEEDS = re.compile(r'\b(needs|requires)\b.*\b(cuda|gpu)', re.I)


def _flags_cuda(decorator:ast.expr, source:str) -> bool:
    "True when `decorator` is a `pytest.mark.skipif(...)` that skips without CUDA (`not ...cuda...`, or 'needs a GPU')."
    if not isinstance(decorator, ast.Call): return False
    if not (ast.get_source_segment(source, decorator.func) or '').endswith('mark.skipif'): return False
    text = lambda node: ast.get_source_segment(source, node) or ''
    condition = text(decorator.args[0]) if decorator.args else ''
    reason = ' '.join(text(k.value) for k in decorator.keywords if k.arg == 'reason')
    return bool((re.search(r'\bnot\b', condition) and _GPU.search(condition)) or _NEEDS.search(reason))


def pytest_ids(tests_dir=ROOT / 'tests') -> list:
    "Node ids `tests/test_x.py::[Class::]test_name` of the CUDA-flagged tests under `tests_dir`."
    tests_dir = Path(tests_dir)
    ids = []
    for path in sorted(tests_dir.rglob('test_*.py')):
        source = path.read_text()
        rel = path.relative_to(tests_dir.parent).as_posix()
        for node in ast.parse(source).body:
            if isinstance(node, ast.ClassDef) and node.name.startswith('Test'):
                flagged = any(_flags_cuda(d, source) for d in node.decorator_list)
                ids += [f"{rel}::{node.name}::{f.name}" for f in node.body
                        if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef)) and f.name.startswith('test')
                        and (flagged or any(_flags_cuda(d, source) for d in f.decorator_list))]
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith('test'):
                if any(_flags_cuda(d, source) for d in node.decorator_list): ids.append(f"{rel}::{node.name}")
    return ids


def cuda_notebooks(nbs_dir=ROOT / 'nbs') -> list:
    "Notebooks under `nbs_dir` with at least one code cell flagged `#| cuda`."
    out = []
    for path in sorted(Path(nbs_dir).rglob('*.ipynb')):
        if any(part.startswith(('.', '_')) for part in path.relative_to(nbs_dir).parts): continue
        cells = json.loads(path.read_text()).get('cells', [])
        src = lambda c: ''.join(c['source']) if isinstance(c['source'], list) else c['source']
        if any(c.get('cell_type') == 'code' and re.search(r'^#\|\s*cuda\b', src(c), re.M) for c in cells):
            out.append(path)
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--tests', default=str(ROOT / 'tests'))
    p.add_argument('--nbs', default=str(ROOT / 'nbs'))
    p.add_argument('--kind', default='pytest', choices=['pytest', 'notebooks'])
    args = p.parse_args(argv)
    items = pytest_ids(args.tests) if args.kind == 'pytest' else cuda_notebooks(args.nbs)
    for item in items: print(item)


if __name__ == '__main__':
    main()
