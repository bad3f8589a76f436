"Tests of robust_labels.registry: entries checked against their notebooks, --set, outputs, pre-flight, papermill."
import json
from pathlib import Path

import pandas as pd
import pytest

import robust_labels
from robust_labels import registry
from robust_labels.registry import (MissingData, ReproduceError, estimate, load_experiments, output_dirs, parse_sets,
                                    plan, reproduce, run_batch, shipped)

TINY = 'setups = [["digits", "cnn"]]\nepochs = 1\nseeds = [0]\nalphas = [{alpha}]\n'


def entry(folder, name, smoke='', notebook='vs_table13.ipynb', order=0):
    (folder / f'{name}.toml').write_text(f'notebook = "{notebook}"\ntitle = "{name}"\norder = {order}\n'
                                         f'[presets.smoke]\n{smoke}[presets.paper]\n')
    return folder / f'{name}.toml'


def test_registry_entries(tmp_path):
    known = load_experiments()
    assert 'vs_table13' in known
    for e in known.values():
        assert (shipped('nbs', 'experiments') / e.notebook).exists()
        assert set(e.presets) == {'smoke', 'paper'}
    (tmp_path / 'bad.toml').write_text('notebook = "vs_table13.ipynb"\ntitle = "x"\n[presets.smoke]\nepochs = 1\n')
    with pytest.raises(ValueError, match="must define presets"):
        load_experiments(tmp_path)
    (tmp_path / 'bad.toml').write_text('notebook = "x.ipynb\n')
    with pytest.raises(ValueError, match="is not valid TOML"):
        load_experiments(tmp_path)


def test_misspelled_or_mistyped_preset_keys_are_errors_naming_file_and_parameters(tmp_path):
    "Issue 14: `epochz = 1` used to be ignored (the notebook's default ran); wrong types and stray notebooks too."
    p = entry(tmp_path, 'typo', 'epochz = 1\n')
    with pytest.raises(ValueError) as e:
        load_experiments(tmp_path)
    assert str(p) in str(e.value) and "['epochz']" in str(e.value) and "'epochs'" in str(e.value)
    entry(tmp_path, 'typo', 'epochs = "8"\n')
    with pytest.raises(TypeError, match=r"typo.toml, preset smoke: parameter epochs must be int"):
        load_experiments(tmp_path)
    entry(tmp_path, 'typo', 'seeds = 0\n')
    with pytest.raises(TypeError, match="seeds must be list"):
        load_experiments(tmp_path)
    for bad in ('../16_cli.ipynb', '/tmp/x.ipynb', 'missing.ipynb'):
        entry(tmp_path, 'typo', notebook=bad)
        with pytest.raises(ValueError, match=r"typo.toml: notebook"):
            load_experiments(tmp_path)
    (tmp_path / 'typo.toml').write_text('notebook = "vs_table13.ipynb"\ntitle = 3\n[presets.smoke]\n[presets.paper]\n')
    with pytest.raises(TypeError, match="typo.toml: title must be str"):
        load_experiments(tmp_path)
    entry(tmp_path, 'typo', 'epochs = 1\n')
    assert load_experiments(tmp_path)['typo'].presets['smoke'] == {'epochs': 1}


def test_set_overrides_any_parameter_checked_against_the_parameters_cell():
    sets = parse_sets(['epochs=1', 'seeds=[0]', 'recipe=smoke'])
    assert sets == dict(epochs=1, seeds=[0], recipe='smoke')
    p = plan('paper', ['vs_table13', 'spider_table1'], sets)
    assert p['vs_table13']['epochs'] == 1 and p['spider_table1']['seeds'] == [0]
    assert p['vs_table13']['setups'] == load_experiments()['vs_table13'].presets['paper']['setups']
    with pytest.raises(ValueError, match=r"--set \['epochz'\]: no selected experiment takes it"):
        plan('paper', ['vs_table13'], dict(epochz=1))
    with pytest.raises(TypeError, match="--set for vs_table13: parameter epochs must be int"):
        plan('paper', ['vs_table13'], dict(epochs='one'))
    for bad in (['epochs'], ['=1'], ['out_dir=x']):
        with pytest.raises(ValueError, match='--set'):
            parse_sets(bad)
    with pytest.raises(ValueError, match='give at least one name'):
        plan('smoke', [])


def test_outputs_resolve_against_the_cwd_not_the_notebooks_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert output_dirs('smoke') == (tmp_path / 'results' / 'smoke', tmp_path / 'results' / 'smoke' / 'figures')
    assert output_dirs('paper', 'r', 'f') == (tmp_path / 'r' / 'paper', tmp_path / 'f' / 'paper')
    (tmp_path / 'file').write_text('x')
    with pytest.raises(ValueError, match='out_dir .*file is a file, not a folder'):
        output_dirs('smoke', 'file')


def test_preflight_lists_missing_data_with_the_command_and_downloads(monkeypatch, tmp_path):
    from robust_labels import catalog
    calls = []
    monkeypatch.setattr(catalog, 'needed', lambda params: ['cifar10', 'imagenet'])
    monkeypatch.setattr(catalog, 'status', lambda names, root=None: pd.DataFrame(dict(
        name=names, kind='dataset', path='/data', present=False, size_mb=0.0,
        how=['robust-labels data download cifar10   (from https://x)', 'local copy only: get it from image-net.org'])))
    monkeypatch.setattr(catalog, 'download', lambda names, root=None, progress=True: calls.append(names))
    with pytest.raises(MissingData) as e:
        run_batch('paper', ['vs_table13'], out_dir=tmp_path, progress=False)
    msg = str(e.value)
    assert 'robust-labels data download cifar10' in msg and 'robust-labels data check imagenet --root PATH' in msg
    assert calls == [] and not (tmp_path / 'paper' / 'notebooks').exists()   # nothing ran
    with pytest.raises(MissingData):
        run_batch('paper', ['vs_table13'], out_dir=tmp_path, progress=False, download=True)
    assert calls == [['cifar10']]                                        # only what has a public source


def test_reproduce_streams_names_each_notebook_and_survives_a_failure(tmp_path, monkeypatch, capfd):
    "Relative outputs land under the cwd; [i/n] lines, estimates, one-line failures, --continue-on-error."
    reg = tmp_path / 'registry'
    reg.mkdir()
    entry(reg, 'a_bad', TINY.format(alpha=2.0), order=1)        # alpha outside [0, 1]: the notebook raises
    entry(reg, 'b_good', TINY.format(alpha=0.5), order=2)
    monkeypatch.chdir(tmp_path)
    res = run_batch('smoke', registry=reg, out_dir='res', fig_dir='fig', progress=True)
    assert [r['status'] for r in res] == ['failed']                # stops at the first failure
    out = tmp_path / 'res' / 'smoke'
    err = res[0]['error']
    assert err.startswith('a_bad failed in cell') and 'alpha' in err and str(out / 'notebooks') in err
    assert len(err.splitlines()) == 1 and Path(res[0]['notebook']).exists()
    with pytest.raises(ReproduceError, match='a_bad failed'):
        reproduce('smoke', registry=reg, out_dir='res', fig_dir='fig', progress=False)
    capfd.readouterr()
    res = run_batch('smoke', registry=reg, out_dir='res', fig_dir='fig', progress=True, continue_on_error=True)
    assert [r['status'] for r in res] == ['failed', 'ok']
    printed = capfd.readouterr()
    assert '[1/2] a_bad (vs_table13.ipynb): no estimate yet' in printed.out
    assert '[2/2] b_good (vs_table13.ipynb): no estimate yet' in printed.out
    assert 'without encryption' not in printed.err + printed.out and 'IProgress' not in printed.err
    assert 'runs: 100%' in printed.err                                   # per-run progress, streamed
    table = pd.read_csv(out / 'tables' / 'vs_table13.csv')
    assert set(table['labels']) == {'onehot', 'ls', 'vs'}
    assert (tmp_path / 'fig' / 'smoke' / 'vs_table13.png').stat().st_size > 1000
    assert not (shipped('nbs', 'experiments') / 'res').exists()
    assert estimate('b_good', out).endswith('(last run)') and estimate('a_bad', out) == 'no estimate yet'
    assert json.loads((out / 'notebooks' / 'durations.json').read_text())['b_good'] > 0
    assert registry.experiment_line(res[1], out).startswith('b_good: claims shown (vs_table13_claims)')
