"Tests of robust_labels.setup: what a run hands to fit, result files that cannot be read."
import dataclasses, json

import pytest
import torch
from torch.utils.data import TensorDataset

from robust_labels import setup
from robust_labels.config import RunConfig


def test_fit_config_passes_the_run_identity(monkeypatch):
    "fit records the configuration and the training data it saw, so a checkpoint of another run is refused."
    seen = {}
    def fake_fit(model, train, val, recipe, *, identity=None, **kw):
        seen['identity'] = identity
        raise KeyboardInterrupt
    monkeypatch.setattr(setup, 'fit', fake_fit)
    cfg = RunConfig(labels='ls', alpha=0.2, epochs=1)
    with pytest.raises(KeyboardInterrupt): setup.fit_config(cfg, device='cpu')
    ident = seen['identity']
    assert ident['config'] == dataclasses.asdict(cfg) and ident['run_id'] == cfg.run_id
    assert ident['data'] == setup.data_fingerprint(setup.get_dataset('digits', 'train'))


def test_data_fingerprint_sees_the_data():
    x, y = torch.rand(6, 1, 4, 4), torch.arange(6) % 3
    a = setup.data_fingerprint(TensorDataset(x, y))
    assert a == setup.data_fingerprint(TensorDataset(x.clone(), y.clone()))
    x2 = x.clone()
    x2[0, 0, 0, 0] += 0.5
    assert a != setup.data_fingerprint(TensorDataset(x2, y))
    assert a != setup.data_fingerprint(TensorDataset(x, (y + 1) % 3))
    assert a != setup.data_fingerprint(TensorDataset(x[:5], y[:5]))


@pytest.mark.parametrize('text', ['', '{"run_id": ', 'null'])
def test_unreadable_result_file_names_the_file(tmp_path, text):
    path = tmp_path / 'runs' / 'abc.json'
    path.parent.mkdir()
    path.write_text(text)
    with pytest.raises(ValueError, match=r"result file .*abc\.json .*delete it"): setup.read_result(path)
    with pytest.raises(ValueError, match=r"abc\.json"): setup.config_of('abc', tmp_path)


def test_validation_set_is_one_fixed_draw(monkeypatch):
    "The augmented validation set takes no seed: every run and every tuning study selects on the same images."
    import inspect
    assert list(inspect.signature(setup.validation_set).parameters) == ['cfg']
    g = torch.Generator().manual_seed(5)
    val = TensorDataset(torch.rand(6, 3, 8, 8, generator=g), torch.arange(6) % 3)
    monkeypatch.setattr(setup, 'get_dataset', lambda name, split: val)
    assert setup.validation_set(RunConfig()) is val
    xa, ya = setup.validation_set(RunConfig(val='augmented'))
    assert torch.equal(ya, val.tensors[1]) and not torch.equal(xa, val.tensors[0])
    assert torch.equal(setup.validation_set(RunConfig(val='augmented', seed=7))[0], xa)


def _trained(out, experiment, **config) -> RunConfig:
    "A run recorded as runs.train_run records it, with weights that differ from a fresh model's."
    from robust_labels.core import atomic_save, atomic_write_json
    cfg = RunConfig(**config)
    atomic_write_json(setup.result_path(out, cfg), dict(run_id=cfg.run_id, config=dataclasses.asdict(cfg),
                                                        metrics=dict(accuracy=90.0), experiment=experiment))
    w = {k: v + cfg.seed + 1 for k, v in setup.build_model(cfg).state_dict().items()}
    atomic_save(dict(model=w), setup.model_path(out, cfg))
    return cfg


def test_load_model_selects_a_run_by_experiment_and_fields(tmp_path):
    "load_model takes a configuration, a run_id, or a selection; none or several matches list the candidates."
    a = _trained(tmp_path, 'spider_table1', labels='spider', tau=1.0, xi=0.3)
    b = _trained(tmp_path, ['spider_table1', 'spider_table2'], labels='spider', tau=1.0, xi=0.3, seed=1)
    c = _trained(tmp_path, 'vs_table13', labels='vs', alpha=0.5)
    (tmp_path / 'runs' / 'old.json').write_text(json.dumps(dict(config=dict(labels='ls', alpha=0.1))))  # no new keys
    first = lambda m: next(iter(m.state_dict().values()))
    want = lambda cfg: next(iter(setup.build_model(cfg).state_dict().values())) + cfg.seed + 1
    assert torch.equal(first(setup.load_model(out_dir=tmp_path, experiment='spider_table2')), want(b))
    assert torch.equal(first(setup.load_model(out_dir=tmp_path, experiment='spider_table1', seed=0)), want(a))
    assert torch.equal(first(setup.load_model(out_dir=tmp_path, labels='vs', alpha=0.5)), want(c))
    assert torch.equal(first(setup.load_model(c.run_id, tmp_path)), want(c))
    assert torch.equal(first(setup.load_model(c, tmp_path)), want(c))
    assert [r['run_id'] for r in setup.find_runs(tmp_path, labels='ls')] == ['old']        # run_id from the file name
    assert [r['run_id'] for r in setup.find_runs(tmp_path, run_id=a.run_id)] == [a.run_id]
    with pytest.raises(ValueError, match='2 runs in .* match experiment=.spider_table1.; add fields') as e:
        setup.load_model(out_dir=tmp_path, experiment='spider_table1')
    assert f'{a.run_id}: seed=0' in str(e.value) and f'{b.run_id}: seed=1' in str(e.value)
    with pytest.raises(ValueError, match="no run in .* matches labels='onehot'; the runs there") as e:
        setup.load_model(out_dir=tmp_path, labels='onehot')
    assert all(r in str(e.value) for r in (a.run_id, b.run_id, c.run_id, 'old'))
    with pytest.raises(FileNotFoundError, match='no runs in'): setup.load_model(out_dir=tmp_path / 'empty')
    with pytest.raises(ValueError, match="no field 'taux'"): setup.find_runs(tmp_path, taux=1.0)
    with pytest.raises(ValueError, match='not both'): setup.load_model(a, tmp_path, seed=0)
    with pytest.raises(ValueError, match='needs out_dir'): setup.load_model(experiment='spider_table1')


def test_find_runs_skips_an_unreadable_record_with_a_warning(tmp_path):
    a = _trained(tmp_path, 'e', labels='ls', alpha=0.2)
    (tmp_path / 'runs' / 'broken.json').write_text('{')
    with pytest.warns(UserWarning, match=r'skipped: result file .*broken\.json is not valid JSON .*delete it'):
        assert [r['run_id'] for r in setup.find_runs(tmp_path)] == [a.run_id]
    with pytest.warns(UserWarning, match='broken'):
        assert setup.run_summary(setup.select_run(tmp_path, 'e'))['params'] == 'alpha=0.2'
