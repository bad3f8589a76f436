"Tests of robust_labels.setup: what a run hands to fit, result files that cannot be read."
import dataclasses

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
