"Tests of robust_labels.runs: result files, evaluations added later, resume of grids, groups of runs."
import json

import pytest

from robust_labels.config import RunConfig
from robust_labels.runs import label_grid, run_grid, run_groups, train_run
from robust_labels.setup import load_model, model_path, result_path


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
    from robust_labels import evals
    cfg = RunConfig(epochs=1)
    first = train_run(cfg, tmp_path)
    monkeypatch.setitem(evals.EVALUATIONS, 'double',
                        lambda m, c, d: dict(double=2 * evals.eval_accuracy(m, c, d)['accuracy']))
    rec = train_run(cfg, tmp_path, evals=['accuracy', 'double'])
    assert rec['finished'] == first['finished'] and rec['evals'] == ['accuracy', 'double']
    assert rec['metrics']['double'] == pytest.approx(2 * first['metrics']['accuracy'])
    assert json.loads(result_path(tmp_path, cfg).read_text())['metrics']['double'] == rec['metrics']['double']


def test_same_seed_same_numbers(tmp_path):
    cfg = RunConfig(labels='vs', alpha=0.3, epochs=1, seed=4)
    a = train_run(cfg, tmp_path / 'a')['metrics']
    b = train_run(cfg, tmp_path / 'b')['metrics']
    assert a == b


def test_run_records_what_fit_config_trains(tmp_path):
    "One wiring: a run's history is that of `setup.fit_config` on its configuration (clean validation, seed 0 draw)."
    from robust_labels.setup import fit_config
    cfg = RunConfig(labels='spider', tau=1.0, xi=0.3, val='augmented', epochs=2, seed=1)
    rec = train_run(cfg, tmp_path)
    _, res = fit_config(cfg, tmp_path, device='cpu')
    assert [h['val_acc'] for h in rec['history']] == [h['val_acc'] for h in res.history]
    assert [h['train_loss'] for h in rec['history']] == [h['train_loss'] for h in res.history]


def test_grid_shards_cover_grid(tmp_path):
    grid = label_grid(RunConfig(epochs=1), labels=('onehot', 'vs'), alphas=(0.5,), seeds=(0, 1))
    assert len(grid) == 4 and len({c.run_id for c in grid}) == 4
    assert len(run_grid(grid, tmp_path, shard='0/2', progress=False)) == 2
    assert len(list((tmp_path / 'runs').glob('*.json'))) == 2
    run_grid(grid, tmp_path, shard='1/2', progress=False)
    recs = run_grid(grid, tmp_path, progress=False)             # all done: nothing retrained
    assert len(recs) == 4 and len(list((tmp_path / 'runs').glob('*.json'))) == 4
    with pytest.raises(ValueError, match='shard must be'):
        run_grid(grid, tmp_path, shard='3/2')


def test_run_groups_tags_rows(tmp_path):
    a, b = RunConfig(epochs=1), RunConfig(labels='ls', alpha=0.2, epochs=1)
    df = run_groups({('base', 'x'): [a], ('ls', 'y'): [b]}, tmp_path, names=('method', 'tag'), progress=False)
    assert df[['method', 'tag', 'labels']].values.tolist() == [['base', 'x', 'onehot'], ['ls', 'y', 'ls']]
    assert {'accuracy', 'val_accuracy', 'alpha'} <= set(df.columns)
    with pytest.raises(ValueError, match='names must have one entry'):
        run_groups({'base': [a]}, tmp_path, names=('method', 'tag'))
