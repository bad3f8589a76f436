"Tests of robust_labels.runs and the CLI: result files, resume of grids, tables, registry, papermill."
import json

import pandas as pd
import pytest

from robust_labels.cli import main
from robust_labels.runs import (RunConfig, compare_best, label_grid, load_experiments, load_model,
                                load_results, model_path, paper_table, records_frame, repo_root, reproduce,
                                result_path, run_grid, summarize, to_markdown, train_run)


def test_train_run_writes_complete_record_and_is_reused(tmp_path):
    cfg = RunConfig(labels='ls', alpha=0.2, epochs=2)
    r = train_run(cfg, tmp_path)
    rec = json.loads(result_path(tmp_path, cfg).read_text())
    assert rec == r
    assert set(rec) >= {'config', 'metrics', 'history', 'environment', 'timings', 'run_id'}
    assert rec['config']['alpha'] == 0.2 and len(rec['history']) == 2
    assert rec['environment']['torch'] and rec['environment']['device'] == 'cpu'
    assert 0 <= rec['metrics']['accuracy'] <= 100
    assert not (tmp_path / 'checkpoints' / cfg.run_id).exists()   # checkpoints removed after success
    assert model_path(tmp_path, cfg).exists() and load_model(cfg, tmp_path).num_classes == 10
    assert train_run(cfg, tmp_path)['finished'] == rec['finished']  # reused, not retrained


def test_missing_evaluations_added_to_existing_record(tmp_path, monkeypatch):
    "A table asking for an evaluation the record lacks gets it computed on the kept weights, without retraining."
    from robust_labels import runs
    cfg = RunConfig(epochs=1)
    first = train_run(cfg, tmp_path)
    monkeypatch.setitem(runs.EVALUATIONS, 'double', lambda m, c, d: dict(double=2 * runs.eval_accuracy(m, c, d)['accuracy']))
    rec = train_run(cfg, tmp_path, evals=['accuracy', 'double'])
    assert rec['finished'] == first['finished'] and rec['evals'] == ['accuracy', 'double']
    assert rec['metrics']['double'] == pytest.approx(2 * first['metrics']['accuracy'])
    assert json.loads(result_path(tmp_path, cfg).read_text())['metrics']['double'] == rec['metrics']['double']


def test_same_seed_same_numbers(tmp_path):
    cfg = RunConfig(labels='vs', alpha=0.3, epochs=1, seed=4)
    a = train_run(cfg, tmp_path / 'a')['metrics']
    b = train_run(cfg, tmp_path / 'b')['metrics']
    assert a == b


def test_grid_shards_cover_grid_and_tables(tmp_path):
    grid = label_grid(RunConfig(epochs=1), labels=('onehot', 'vs'), alphas=(0.5,), seeds=(0, 1))
    assert len(grid) == 4 and len({c.run_id for c in grid}) == 4
    assert len(run_grid(grid, tmp_path, shard='0/2', progress=False)) == 2
    assert len(load_results(tmp_path)) == 2
    run_grid(grid, tmp_path, shard='1/2', progress=False)
    df = records_frame(run_grid(grid, tmp_path, progress=False))   # all done: nothing retrained
    assert len(df) == 4 and len(load_results(tmp_path)) == 4
    s = summarize(df, ['labels', 'alpha'], ['accuracy'])
    assert list(s['runs']) == [2, 2]
    md = to_markdown(s)
    assert md.count('\n') == 4 and md.startswith('| labels | alpha |')
    with pytest.raises(ValueError, match='shard must be'):
        run_grid(grid, tmp_path, shard='3/2')


def test_compare_best_directions():
    s = pd.DataFrame(dict(labels=['onehot', 'vs', 'ls'], alpha=[0.0, 0.4, 0.4], accuracy_mean=[90.0, 92.0, 89.0],
                          accuracy_std=[0.5, 0.5, 0.5]))
    c = compare_best(s, 'accuracy').set_index('labels')
    assert c.loc['vs', 'better'] and c.loc['vs', 'beyond_std'] and not c.loc['ls', 'better']
    with pytest.raises(ValueError, match="baseline 'oh' has no rows"):
        compare_best(s, 'accuracy', baseline='oh')


def test_registry_and_paper_numbers(tmp_path):
    known = load_experiments()
    assert 'vs_table13' in known
    for e in known.values():
        assert (repo_root() / 'nbs' / 'experiments' / e.notebook).exists()
        assert set(e.presets) == {'smoke', 'paper'}
        if e.reference: assert len(paper_table(e.reference)) > 0
    (tmp_path / 'bad.toml').write_text('notebook = "x.ipynb"\ntitle = "x"\n[presets.smoke]\na = 1\n')
    with pytest.raises(ValueError, match="must define presets"):
        load_experiments(tmp_path)
    (tmp_path / 'bad.toml').write_text('notebook = "x.ipynb\n')
    with pytest.raises(ValueError, match="is not valid TOML"):
        load_experiments(tmp_path)
    t13 = paper_table('vs_table13')
    assert t13.query("dataset == 'cifar10' and model == 'resnet18' and alpha == 0.5").accuracy.item() == 95.3


def test_reproduce_runs_notebook_with_papermill(tmp_path):
    "The smoke machinery end to end on a tiny grid: papermill executes the notebook, which writes table and figure."
    reg = tmp_path / 'registry'; reg.mkdir()
    (reg / 'vs_table13.toml').write_text("""notebook = "vs_table13.ipynb"
title = "tiny"
[presets.smoke]
setups = [["digits", "cnn"]]
epochs = 1
seeds = [0]
alphas = [0.5]
[presets.paper]
""")
    done = reproduce('smoke', ['vs_table13'], out_dir=tmp_path / 'res', fig_dir=tmp_path / 'fig', progress=False, registry=reg)
    assert done['vs_table13'].exists()
    table = pd.read_csv(tmp_path / 'res' / 'smoke' / 'tables' / 'vs_table13.csv')
    assert set(table['labels']) == {'onehot', 'ls', 'vs'}
    assert (tmp_path / 'fig' / 'smoke' / 'vs_table13.png').stat().st_size > 1000
    with pytest.raises(ValueError, match="preset must be one of 'smoke', 'paper'"):
        reproduce('tiny')
    with pytest.raises(ValueError, match="experiments must be one of 'vs_table13'"):
        reproduce('smoke', ['nope'], registry=reg)


def test_cli_train_and_errors(tmp_path, capsys):
    main(['train', '--labels', 'spider', '--tau', '1.0', '--xi', '0.3', '--epochs', '1', '--out', str(tmp_path), '--quiet'])
    out = capsys.readouterr().out
    assert json.loads(out.split('result:')[0])['accuracy'] >= 0
    assert len(list((tmp_path / 'runs').glob('*.json'))) == 1
    with pytest.raises(SystemExit) as e:
        main(['train', '--labels', 'spider', '--tau', '-1', '--out', str(tmp_path), '--quiet'])
    assert e.value.code == 2 and 'tau must be in [0, inf)' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(['train', '--labels', 'mixup'])


@pytest.mark.parametrize('labels, num_virtual, runs', [('onehot', 0, 1), ('vs', 10, 2)])
def test_autoattack_plus_shares_the_run_of_an_identical_attack(monkeypatch, labels, num_virtual, runs):
    "AutoAttack and AutoAttack+ are the same attack on a model without virtual classes: it runs once; on a VS model, twice."
    import robust_labels.runs as R
    from robust_labels.models import create_model
    calls = []
    monkeypatch.setattr(R, 'robust_accuracy', lambda model, x, y, a, **kw: calls.append(a.n_target_classes) or 0.25)
    monkeypatch.setitem(R.EVAL_LIMITS, 'digits', dict(R.EVAL_LIMITS['digits'], autoattack=4))
    cfg = RunConfig(labels=labels, alpha=0.5 if labels == 'vs' else 0.0)
    model = create_model('cnn', 10, num_virtual=num_virtual, in_channels=1).eval()
    aa, aa_plus = (R.EVALUATIONS[e](model, cfg, 'cpu') for e in ('autoattack', 'autoattack_plus'))
    assert aa['aa_accuracy'] == aa_plus['aa_plus_accuracy'] == 25.0 and aa['aa_samples'] == 4
    assert len(calls) == runs and calls[0] == 9
