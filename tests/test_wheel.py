"A wheel of robust_labels carries its registry, paper numbers and experiment notebooks (issue 12, section 5)."
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SKIP = ('.venv', 'venv', '.git', 'build', 'dist', 'results', 'checkpoints', '_proc', '_docs', '.hypothesis',
        '.pytest_cache', '__pycache__', '*.egg-info', '.ipynb_checkpoints', 'figures', 'runs')


def run(cmd, cwd, **kw):
    "Run `cmd`; fail the test with its output when it fails."
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, **kw)
    assert r.returncode == 0, f"{cmd} failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r.stdout


@pytest.fixture(scope='module')
def installed(tmp_path_factory):
    "A fresh venv with the wheel built from a copy of this checkout (its dependencies from this venv)."
    if not (ROOT / 'setup.py').is_file():
        pytest.skip('setup.py (the build hook that copies the shipped data into the wheel) is not in this checkout')
    tmp = tmp_path_factory.mktemp('wheel')
    src = tmp / 'src'
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(*SKIP))
    run([sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation', '-q', '-w', str(tmp / 'dist'), '.'],
        src)
    wheel = next((tmp / 'dist').glob('robust_labels-*.whl'))
    venv = tmp / 'venv'
    run([sys.executable, '-m', 'venv', '--without-pip', str(venv)], tmp)
    py = venv / 'bin' / 'python'
    site = Path(run([str(py), '-c', 'import sysconfig; print(sysconfig.get_paths()["purelib"])'], tmp).strip())
    # this venv's packages (torch, pandas, ...) without the editable install's finder: a plain path line in a .pth
    (site / '_deps.pth').write_text(sysconfig.get_paths()['purelib'] + '\n')
    run([sys.executable, '-m', 'pip', '--python', str(py), 'install', '--no-deps', '-q', str(wheel)], tmp)
    away = tmp / 'elsewhere'
    away.mkdir()
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
    return dict(py=py, bin=venv / 'bin', site=site, cwd=away, env=env, wheel=wheel)


@pytest.mark.slow
def test_wheel_holds_the_shipped_folders(installed):
    import zipfile
    names = zipfile.ZipFile(installed['wheel']).namelist()
    for folder, suffix in [('data/experiments', '.toml'), ('data/paper', '.csv'), ('nbs/experiments', '.ipynb')]:
        ours = sorted(p.name for p in (ROOT / folder).glob(f'*{suffix}'))
        assert ours, folder
        shipped = sorted(n.rsplit('/', 1)[1] for n in names if n.startswith(f'robust_labels/_shipped/{folder}/'))
        assert shipped == ours, folder


@pytest.mark.slow
def test_installed_package_reads_its_own_copy(installed):
    code = ("import robust_labels\nfrom robust_labels.resources import shipped\nfrom robust_labels.tables import paper_table\n"
            "print(robust_labels.__file__)\nprint(shipped('data', 'paper'))\nprint(len(paper_table('vs_table13')))")
    out = run([str(installed['py']), '-c', code], installed['cwd'], env=installed['env']).splitlines()
    assert out[0].startswith(str(installed['site'])), out
    assert out[1] == str(installed['site'] / 'robust_labels' / '_shipped' / 'data' / 'paper'), out
    assert int(out[2]) > 0


@pytest.mark.slow
def test_installed_cli_lists_the_experiments(installed):
    out = run([str(installed['bin'] / 'robust-labels'), 'list'], installed['cwd'], env=installed['env'])
    for name in ['vs_table13', 'spider_table1', 'theory_checks']:
        assert name in out
