"Every notebook under nbs/ (library chapters and experiments) runs as a test, as `nbdev-test` would run it."
import shutil
from pathlib import Path

import pytest
from nbdev.test import test_nb as run_nb

NBS = Path(__file__).resolve().parent.parent / 'nbs'
NOTEBOOKS = sorted(p for p in NBS.rglob('*.ipynb') if not any(part.startswith(('.', '_')) for part in p.relative_to(NBS).parts))
TUNING = NBS / 'experiments' / 'spider_tuning.ipynb'   # the stage `reproduce` runs first: SPIDER notebooks read its exports


def run_experiment(path, folder, monkeypatch):
    "Run a copy of experiment notebook `path` in `folder` (its results land in `folder/results/tiny`); whether it passed."
    path = Path(shutil.copy(path, folder))   # experiments write result files relative to their folder
    monkeypatch.chdir(folder)
    monkeypatch.setenv('IN_TEST', '1')
    ok, seconds = run_nb(path, skip_flags=['notest', 'slow', 'cuda'], basepath=str(NBS.parent), do_print=False)
    return ok


@pytest.fixture(scope='session')
def spider_tuned(tmp_path_factory):
    "The tuning stage at its default (tiny) parameters, run once: the folder of exports the SPIDER notebooks read."
    folder = tmp_path_factory.mktemp('spider_tuning')
    with pytest.MonkeyPatch.context() as mp:
        assert run_experiment(TUNING, folder, mp), "spider_tuning.ipynb failed"
    return folder / 'results' / 'tiny' / 'tuned'


@pytest.mark.parametrize('path', NOTEBOOKS, ids=[str(p.relative_to(NBS)) for p in NOTEBOOKS])
def test_notebook_runs(path, monkeypatch, tmp_path, request):
    "The notebook executes without error (cells flagged `slow`/`cuda`/`notest` are skipped, as in nbdev-test)."
    if path.parent.name == 'experiments':       # a copy in a fresh folder, so no earlier results are reused,
        if path.name.startswith('spider_') and path != TUNING:   # but with the tuning stage's exports, as reproduce has
            shutil.copytree(request.getfixturevalue('spider_tuned'), tmp_path / 'results' / 'tiny' / 'tuned')
        assert run_experiment(path, tmp_path, monkeypatch), f"{path.name} failed"
        return
    monkeypatch.chdir(path.parent)
    monkeypatch.setenv('IN_TEST', '1')
    ok, seconds = run_nb(path, skip_flags=['notest', 'slow', 'cuda'], basepath=str(NBS.parent), do_print=False)
    assert ok, f"{path.name} failed"
