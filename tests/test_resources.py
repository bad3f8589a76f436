"Tests of robust_labels.resources: the shipped registry, paper numbers and experiment notebooks."
from pathlib import Path

import pytest

import robust_labels
from robust_labels import resources
from robust_labels.resources import SHIPPED, shipped

ROOT = Path(__file__).resolve().parents[1]


def test_checkout_paths():
    assert shipped('data', 'paper') == ROOT / 'data' / 'paper'
    assert shipped('data/experiments', 'vs_table13.toml') == ROOT / 'data' / 'experiments' / 'vs_table13.toml'
    assert shipped('nbs', 'experiments', 'vs_table13.ipynb').is_file()
    for folder in SHIPPED:
        assert shipped(folder).is_dir()


@pytest.mark.parametrize('parts', [(), ('data',), ('nbs', 'core.ipynb'), ('robust_labels', 'core.py'),
                                   ('data', 'paper', '..', '..', 'README.md'), ('tests', 'x')])
def test_bad_parts(parts):
    with pytest.raises(ValueError, match='parts must name'):
        shipped(*parts)


def _installed(monkeypatch, tmp_path, with_data=True):
    "Make robust_labels look installed outside a checkout, at tmp_path/site/robust_labels."
    pkg = tmp_path / 'site' / 'robust_labels'
    pkg.mkdir(parents=True)
    (pkg / '__init__.py').write_text('')
    if with_data:
        for folder in SHIPPED:
            (pkg / '_shipped' / folder).mkdir(parents=True)
        (pkg / '_shipped' / 'data' / 'paper' / 'x.csv').write_text('a\n1\n')
    monkeypatch.setattr(robust_labels, '__file__', str(pkg / '__init__.py'))
    return pkg


def test_installed_reads_the_copy_in_the_package(monkeypatch, tmp_path):
    pkg = _installed(monkeypatch, tmp_path)
    assert shipped('data', 'paper', 'x.csv') == pkg / '_shipped' / 'data' / 'paper' / 'x.csv'
    assert shipped('data', 'paper', 'x.csv').read_text() == 'a\n1\n'
    assert shipped('nbs', 'experiments') == pkg / '_shipped' / 'nbs' / 'experiments'


def test_installed_without_data_says_so(monkeypatch, tmp_path):
    _installed(monkeypatch, tmp_path, with_data=False)
    with pytest.raises(FileNotFoundError, match='built without its data'):
        shipped('data', 'paper')


def test_paper_table_reads_shipped(monkeypatch, tmp_path):
    from robust_labels.tables import paper_table
    _installed(monkeypatch, tmp_path)
    assert paper_table('x')['a'].tolist() == [1]
    with pytest.raises(ValueError, match=r"one of \['x'\]"):
        paper_table('missing')
    assert resources._source_root() is None
