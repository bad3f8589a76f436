"Tests of robust_labels.train: recipes, fit, evaluation, checkpoints and resume."
import pytest
import torch
from torch import nn

from robust_labels.core import CheckpointError
from robust_labels.data import get_dataset
from robust_labels.labels import SPIDER, VirtualSmoothing
from robust_labels.models import create_model
from robust_labels.train import RECIPES, Recipe, as_dataset, evaluate, fit, get_recipe, make_optimizer


@pytest.fixture(scope='module')
def digits():
    return tuple(get_dataset('digits', s) for s in ('train', 'val', 'test'))


def _cnn(seed=0, v=0):
    torch.manual_seed(seed)
    return create_model('cnn', 10, num_virtual=v, in_channels=1)


def test_fit_learns_digits(digits):
    train, val, test = digits
    m = _cnn()
    r = fit(m, train, val, get_recipe('smoke', epochs=4), progress=False)
    assert evaluate(m, test) > 0.85
    assert r.history[-1]['train_loss'] < r.history[0]['train_loss']
    assert r.best_val_acc == max(h['val_acc'] for h in r.history)
    assert r.best_epoch == 1 + [h['val_acc'] for h in r.history].index(r.best_val_acc)


def test_fit_vs_model_predicts_with_first_k(digits):
    train, val, test = digits
    m = _cnn(v=10)
    fit(m, train, val, get_recipe('smoke', epochs=4), labels=VirtualSmoothing(10, 10, 0.3), progress=False)
    acc = evaluate(m, test)
    assert acc > 0.85
    x, y = test.tensors
    with torch.no_grad(): assert (m(x)[:, :10].argmax(1) == y).float().mean().item() == pytest.approx(acc)


def test_same_seed_same_weights(digits):
    train, val, _ = digits
    ws = []
    for _ in range(2):
        m = _cnn(3)
        fit(m, train, val, get_recipe('smoke', epochs=2), labels=SPIDER(10, 1.0, 0.3), seed=7, progress=False)
        ws.append(m.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(ws[0].values(), ws[1].values()))


def test_restore_best_loads_best_epoch_weights(digits, tmp_path):
    train, val, _ = digits
    m = _cnn()
    r = fit(m, train, val, get_recipe('smoke', epochs=3), checkpoint_dir=tmp_path, progress=False)
    best = torch.load(tmp_path / 'best.pt', weights_only=True)
    assert best['epoch'] == r.best_epoch
    assert all(torch.equal(a, b) for a, b in zip(m.state_dict().values(), best['model'].values()))


def _interrupted(train, val, ckdir, stop_after=None, resume=False, labels=None):
    m = _cnn(1)
    def stop(rec):
        if stop_after and rec['epoch'] == stop_after: raise KeyboardInterrupt
    try:
        fit(m, train, val, get_recipe('smoke', epochs=4), labels=labels or SPIDER(10, 1.0, 0.3), checkpoint_dir=ckdir,
            resume=resume, seed=3, progress=False, callback=stop, restore_best=False)
    except KeyboardInterrupt:
        pass
    return m


def test_resume_reaches_same_weights(digits, tmp_path):
    "A run interrupted after epoch 2 and resumed ends with exactly the weights of an uninterrupted run (CPU)."
    train, val, _ = digits
    straight = _interrupted(train, val, tmp_path / 'a')
    _interrupted(train, val, tmp_path / 'b', stop_after=2)
    ck = torch.load(tmp_path / 'b' / 'last.pt', weights_only=True)
    assert ck['epoch'] == 2
    resumed = _interrupted(train, val, tmp_path / 'b', resume=True)
    assert all(torch.equal(a, b) for a, b in zip(straight.state_dict().values(), resumed.state_dict().values()))
    assert len(torch.load(tmp_path / 'b' / 'last.pt', weights_only=True)['history']) == 4


class _Counting:
    "A regime with state: counts its steps; the count must survive a resume."
    def __init__(self): self.steps, self.after = 0, 0
    def __call__(self, model, x, targets):
        self.steps += 1
        return nn.functional.cross_entropy(model(x), targets)
    def after_step(self, model): self.after += 1
    def state_dict(self): return dict(steps=self.steps, after=self.after)
    def load_state_dict(self, s): self.steps, self.after = s['steps'], s['after']


def test_regime_hooks_called_and_checkpointed(digits, tmp_path):
    train, val, _ = digits
    reg = _Counting()
    stop = lambda rec: (_ for _ in ()).throw(KeyboardInterrupt) if rec['epoch'] == 1 else None
    with pytest.raises(KeyboardInterrupt):
        fit(_cnn(), train, val, get_recipe('smoke', epochs=2), loss_fn=reg, checkpoint_dir=tmp_path, callback=stop,
            progress=False)
    per_epoch = reg.steps
    assert per_epoch == reg.after == -(-len(train) // 32)
    reg2 = _Counting()
    fit(_cnn(), train, val, get_recipe('smoke', epochs=2), loss_fn=reg2, checkpoint_dir=tmp_path, resume=True, progress=False)
    assert reg2.steps == reg2.after == 2 * per_epoch


def test_resume_refuses_other_model_recipe_and_corrupt_file(digits, tmp_path):
    train, val, _ = digits
    fit(_cnn(), train, val, get_recipe('smoke', epochs=1), checkpoint_dir=tmp_path, progress=False)
    with pytest.raises(ValueError, match='was written for model'):
        fit(_cnn(v=3), train, val, get_recipe('smoke', epochs=1), checkpoint_dir=tmp_path, resume=True, progress=False)
    with pytest.raises(ValueError, match='another recipe'):
        fit(_cnn(), train, val, get_recipe('smoke', epochs=1, lr=0.01), checkpoint_dir=tmp_path, resume=True,
            progress=False)
    (tmp_path / 'last.pt').write_bytes(b'\x00' * 10)
    with pytest.raises(CheckpointError, match='is corrupt'):
        fit(_cnn(), train, val, get_recipe('smoke', epochs=1), checkpoint_dir=tmp_path, resume=True, progress=False)


def test_tensor_pairs_and_bad_arguments(digits):
    x, y = digits[0].tensors
    m = _cnn()
    fit(m, (x, y), None, get_recipe('smoke', epochs=1), progress=False)
    assert 0 <= evaluate(m, (x, y)) <= 1
    with pytest.raises(TypeError, match='data must be a torch Dataset or an'):
        fit(m, [1, 2], None, 'smoke', progress=False)
    with pytest.raises(ValueError, match='amp=True needs a CUDA device'):
        fit(m, (x, y), None, 'smoke', amp=True, device='cpu', progress=False)
    with pytest.raises(ValueError, match='num_classes must be given'):
        fit(nn.Sequential(nn.Flatten(), nn.Linear(64, 10)), (x, y), None, 'smoke', progress=False)


@pytest.mark.parametrize('bad,msg', [(dict(epochs=0), 'epochs must be an integer'), (dict(lr=0), 'lr must be in'),
                                     (dict(schedule='step'), "schedule must be one of"),
                                     (dict(momentum=1.0), 'momentum must be in'),
                                     (dict(nesterov=True, momentum=0.0), 'nesterov=True needs momentum')])
def test_recipe_validation(bad, msg):
    with pytest.raises(ValueError, match=msg):
        Recipe(**bad)


def test_schedules():
    for name, r in RECIPES.items():
        opt, sched = make_optimizer(nn.Linear(2, 2), r)
        lrs = []
        for _ in range(r.epochs):
            lrs.append(opt.param_groups[0]['lr']); opt.step(); sched.step()
        assert lrs[0] == pytest.approx(r.lr), name
        if r.schedule == 'multistep':
            for m in r.milestones: assert lrs[m] == pytest.approx(lrs[m - 1] * r.gamma), name
        if r.schedule == 'cosine':
            import math
            want = [r.lr * (1 + math.cos(math.pi * e / r.epochs)) / 2 for e in range(r.epochs)]
            assert lrs == pytest.approx(want, rel=1e-6, abs=1e-12), name
