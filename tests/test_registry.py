"Tests of robust_labels.registry: entries, presets, papermill."
import pandas as pd
import pytest

from robust_labels.core import repo_root
from robust_labels.registry import load_experiments, reproduce


def test_registry_entries(tmp_path):
    known = load_experiments()
    assert 'vs_table13' in known
    for e in known.values():
        assert (repo_root() / 'nbs' / 'experiments' / e.notebook).exists()
        assert set(e.presets) == {'smoke', 'paper'}
    (tmp_path / 'bad.toml').write_text('notebook = "x.ipynb"\ntitle = "x"\n[presets.smoke]\na = 1\n')
    with pytest.raises(ValueError, match="must define presets"):
        load_experiments(tmp_path)
    (tmp_path / 'bad.toml').write_text('notebook = "x.ipynb\n')
    with pytest.raises(ValueError, match="is not valid TOML"):
        load_experiments(tmp_path)


def test_reproduce_runs_notebook_with_papermill(tmp_path):
    "The smoke machinery end to end on a tiny grid: papermill executes the notebook, which writes table and figure."
    reg = tmp_path / 'registry'
    reg.mkdir()
    (reg / 'vs_table13.toml').write_text("""notebook = "vs_table13.ipynb"
title = "tiny"
[presets.smoke]
setups = [["digits", "cnn"]]
epochs = 1
seeds = [0]
alphas = [0.5]
[presets.paper]
""")
    done = reproduce('smoke', ['vs_table13'], out_dir=tmp_path / 'res', fig_dir=tmp_path / 'fig', progress=False,
                     registry=reg)
    assert done['vs_table13'].exists()
    table = pd.read_csv(tmp_path / 'res' / 'smoke' / 'tables' / 'vs_table13.csv')
    assert set(table['labels']) == {'onehot', 'ls', 'vs'}
    assert (tmp_path / 'fig' / 'smoke' / 'vs_table13.png').stat().st_size > 1000
    with pytest.raises(ValueError, match="preset must be one of 'smoke', 'paper'"):
        reproduce('tiny')
    with pytest.raises(ValueError, match="experiments must be one of 'vs_table13'"):
        reproduce('smoke', ['nope'], registry=reg)
