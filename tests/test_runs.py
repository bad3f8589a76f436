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


def test_a_kill_during_evaluation_keeps_the_training_and_finished_evaluations(tmp_path, monkeypatch):
    "Hours of AutoAttack after 200 epochs: the model and each finished evaluation survive; a rerun does what is missing."
    from robust_labels import evals, runs
    cfg = RunConfig(labels='ls', alpha=0.2, epochs=1)
    def killed(m, c, d): raise KeyboardInterrupt
    monkeypatch.setitem(evals.EVALUATIONS, 'slow', killed)
    with pytest.raises(KeyboardInterrupt): train_run(cfg, tmp_path, evals=['accuracy', 'slow'])
    rec = json.loads(result_path(tmp_path, cfg).read_text())
    assert model_path(tmp_path, cfg).exists() and len(rec['history']) == 1
    assert rec['evals'] == ['accuracy'] and rec['pending'] == ['slow'] and 'accuracy' in rec['metrics']
    def no_fit(*a, **k): raise AssertionError('retrained')
    monkeypatch.setattr(runs, 'fit_config', no_fit)
    monkeypatch.setitem(evals.EVALUATIONS, 'slow', lambda m, c, d: dict(slow=1.0))
    done = train_run(cfg, tmp_path, evals=['accuracy', 'slow'])
    assert done['evals'] == ['accuracy', 'slow'] and done['metrics']['slow'] == 1.0 and 'pending' not in done
    assert done['metrics']['accuracy'] == rec['metrics']['accuracy'] and done['finished'] == rec['finished']
    assert json.loads(result_path(tmp_path, cfg).read_text()) == done


def test_an_untrainable_config_is_refused_before_training(tmp_path):
    with pytest.raises(ValueError, match="labels 'spider' needs tau > 0"):
        train_run(RunConfig(labels='spider', epochs=1), tmp_path)
    assert not (tmp_path / 'runs').exists()


def test_corrupt_result_file_is_a_clear_error(tmp_path):
    from robust_labels.runs import load_results
    cfg = RunConfig(epochs=1)
    path = result_path(tmp_path, cfg)
    path.parent.mkdir(parents=True)
    path.write_text('{"run_id": ')
    with pytest.raises(ValueError, match=f"result file {path} is not valid JSON.*delete it"): train_run(cfg, tmp_path)
    with pytest.raises(ValueError, match='delete it'): load_results(tmp_path)


def test_result_and_model_files_follow_the_umask(tmp_path):
    import os, stat
    old = os.umask(0o002)
    try: train_run(RunConfig(epochs=1), tmp_path)
    finally: os.umask(old)
    cfg = RunConfig(epochs=1)
    for p in (result_path(tmp_path, cfg), model_path(tmp_path, cfg)): assert stat.S_IMODE(p.stat().st_mode) == 0o664


_WORKER = '''
import json, sys
from pathlib import Path
from robust_labels import runs
from robust_labels.config import RunConfig
out = Path(sys.argv[1])
fit = runs.fit_config
def counted(cfg, *a, **k):
    with open(out / 'fits.log', 'a') as f: f.write(cfg.run_id + chr(10))
    return fit(cfg, *a, **k)
runs.fit_config = counted
(out / f'ready-{sys.argv[2]}').touch()
while not all((out / f'ready-{i}').exists() for i in (0, 1)): pass
grid = runs.label_grid(RunConfig(epochs=2), labels=('onehot', 'ls'), alphas=(0.3,))
recs = runs.run_grid(grid, out, evals=('accuracy', 'ece'), progress=False)
runs.records_frame(recs).sort_index(axis=1).to_csv(out / f'table-{sys.argv[2]}.csv', index=False)
(out / f'records-{sys.argv[2]}.json').write_text(json.dumps(recs, sort_keys=True))
'''


def test_two_processes_on_one_output_folder_train_each_run_once(tmp_path):
    "Two `reproduce` on one folder: no crash, each run trained once, identical tables."
    import subprocess, sys
    script = tmp_path / 'worker.py'
    script.write_text(_WORKER)
    out = tmp_path / 'out'
    out.mkdir()
    procs = [subprocess.Popen([sys.executable, str(script), str(out), str(i)], stderr=subprocess.PIPE, text=True)
             for i in (0, 1)]
    errs = [p.communicate()[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errs
    fits = (out / 'fits.log').read_text().split()
    assert len(fits) == len(set(fits)) == 2
    assert (out / 'table-0.csv').read_text() == (out / 'table-1.csv').read_text()
    assert (out / 'records-0.json').read_text() == (out / 'records-1.json').read_text()
    assert len(list((out / 'runs').glob('*.json'))) == 2 and not list((out / 'checkpoints').glob('*/*'))


def test_records_name_their_experiments_and_a_shared_run_lists_all(tmp_path, monkeypatch):
    from robust_labels.runs import EXPERIMENT
    monkeypatch.setenv(EXPERIMENT, 'vs_table2')
    cfg = RunConfig(epochs=1)
    assert train_run(cfg, tmp_path)['experiment'] == 'vs_table2'
    rec = train_run(cfg, tmp_path, experiment='vs_table13')
    assert rec['experiment'] == ['vs_table2', 'vs_table13']
    assert json.loads(result_path(tmp_path, cfg).read_text())['experiment'] == ['vs_table2', 'vs_table13']
    monkeypatch.delenv(EXPERIMENT)
    assert 'experiment' not in train_run(RunConfig(epochs=1, seed=1), tmp_path)


def test_provenance_is_recorded_when_tuning_exports_exist(tmp_path, monkeypatch):
    from robust_labels import tune
    seen = []
    monkeypatch.setattr(tune, 'provenance', lambda out, cfg: seen.append(cfg.run_id) or dict(study='s1'),
                        raising=False)
    assert 'provenance' not in train_run(RunConfig(epochs=1), tmp_path)     # no <out>/tuned: not asked
    (tmp_path / 'tuned').mkdir()
    rec = train_run(RunConfig(epochs=1, seed=1), tmp_path)
    assert rec['provenance'] == dict(study='s1') and seen == [RunConfig(epochs=1, seed=1).run_id]
    monkeypatch.setattr(tune, 'provenance', lambda out, cfg: None)
    assert 'provenance' not in train_run(RunConfig(epochs=1, seed=2), tmp_path)


def test_callback_sees_each_epoch_while_training(tmp_path):
    seen = []
    train_run(RunConfig(epochs=3), tmp_path, callback=seen.append)
    assert len(seen) == 3 and all('epoch' in h for h in seen)


def test_plan_mode_collects_a_grid_without_training(tmp_path, monkeypatch):
    from robust_labels.runs import PLAN_FILE, PLAN_MISSING, PLAN_OUT, RunsPending, read_plan
    done = RunConfig(epochs=1)
    train_run(done, tmp_path / 'real')
    grid = label_grid(RunConfig(epochs=1), labels=('onehot', 'vs'), alphas=(0.5,), seeds=(0, 1))
    monkeypatch.setenv(PLAN_FILE, str(tmp_path / 'plan.jsonl'))
    monkeypatch.setenv(PLAN_OUT, str(tmp_path / 'real'))
    recs = run_grid(grid, tmp_path / 'scratch', evals=['accuracy'], progress=False)
    assert [r.get('planned', False) for r in recs] == [c.run_id != done.run_id for c in grid]
    assert list(read_plan(tmp_path / 'plan.jsonl')) == [c.run_id for c in grid]
    assert not (tmp_path / 'scratch' / 'runs').exists()                       # nothing trained
    groups = run_groups({'a': grid[:1], 'b': grid[1:2]}, tmp_path / 'scratch', progress=False)
    assert groups.method.tolist() == ['a', 'b']
    (tmp_path / 'plan.jsonl').unlink()
    monkeypatch.setenv(PLAN_MISSING, 'stop')
    monkeypatch.delenv(PLAN_OUT)
    with pytest.raises(RunsPending) as e:
        run_grid(grid, tmp_path / 'real', progress=False)
    assert e.value.run_ids == [c.run_id for c in grid if c.run_id != done.run_id]   # the whole grid's, at once
    assert set(read_plan(tmp_path / 'plan.jsonl')) == {c.run_id for c in grid}


def test_accuracy_is_percent_in_history_evaluate_and_record(tmp_path):
    "History, `evaluate`, `best_val_acc` and the run record share one unit, percent: the same numbers, no factor 100."
    from robust_labels.evals import eval_accuracy
    cfg = RunConfig(epochs=1)
    rec = train_run(cfg, tmp_path)
    assert rec['metrics']['val_accuracy'] == max(h['val_acc'] for h in rec['history'])
    assert 1 < rec['metrics']['val_accuracy'] <= 100 and 1 < rec['metrics']['accuracy'] <= 100
    acc = eval_accuracy(load_model(cfg, tmp_path), cfg, 'cpu')['accuracy']
    assert acc == pytest.approx(rec['metrics']['accuracy'])
