"Every notebook under nbs/ (library chapters and experiments) runs as a test, as `nbdev-test` would run it."
import shutil
from pathlib import Path

import pytest
from nbdev.test import test_nb as run_nb

NBS = Path(__file__).resolve().parent.parent / 'nbs'
NOTEBOOKS = sorted(p for p in NBS.rglob('*.ipynb') if not any(part.startswith(('.', '_')) for part in p.relative_to(NBS).parts))


@pytest.mark.parametrize('path', NOTEBOOKS, ids=[str(p.relative_to(NBS)) for p in NOTEBOOKS])
def test_notebook_runs(path, monkeypatch, tmp_path):
    "The notebook executes without error (cells flagged `slow`/`cuda`/`notest` are skipped, as in nbdev-test)."
    if path.parent.name == 'experiments':       # experiments write result files relative to their folder:
        path = Path(shutil.copy(path, tmp_path))   # run a copy in a fresh folder, so no earlier results are reused
    monkeypatch.chdir(path.parent)
    monkeypatch.setenv('IN_TEST', '1')
    ok, seconds = run_nb(path, skip_flags=['notest', 'slow', 'cuda'], basepath=str(NBS.parent), do_print=False)
    assert ok, f"{path.name} failed"
