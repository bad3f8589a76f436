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


# --- the steps of fit: fit_state, train_step, train_epoch, keep_best, save_checkpoint, load_checkpoint ---

from robust_labels.data import make_loader
from robust_labels.train import (FitResult, FitState, as_dataset, fit_state, keep_best, load_checkpoint,
                                 save_checkpoint, standard_loss, train_epoch, train_step)
from robust_labels.core import seed_everything


def test_fit_is_its_steps(digits, tmp_path):
    "fit with a checkpoint dir gives the same weights, history and files as the steps composed by hand."
    train, val, _ = digits
    m1 = _cnn(2)
    r = fit(m1, train, val, get_recipe('smoke', epochs=3), labels=SPIDER(10, 1.0, 0.3), seed=4,
            checkpoint_dir=tmp_path / 'a', progress=False, restore_best=False)
    m2 = _cnn(2)
    seed_everything(4)
    st = fit_state(m2, get_recipe('smoke', epochs=3), labels=SPIDER(10, 1.0, 0.3), device='cpu', seed=4)
    loader = make_loader(as_dataset(train), 32, shuffle=True, device='cpu', generator=st.loader_gen)
    (tmp_path / 'b').mkdir()
    for epoch in range(3):
        rec = train_epoch(st, loader, epoch, val)
        save_checkpoint(st, tmp_path / 'b', epoch + 1, keep_best(st, rec))
    assert all(torch.equal(a, b) for a, b in zip(m1.state_dict().values(), m2.state_dict().values()))
    strip = lambda h: [{k: v for k, v in e.items() if k != 'seconds'} for e in h]
    assert strip(r.history) == strip(st.result.history)
    assert (r.best_epoch, r.best_val_acc) == (st.result.best_epoch, st.result.best_val_acc)
    for f in ('last.pt', 'best.pt'):
        a, b = (torch.load(tmp_path / d / f, weights_only=True) for d in 'ab')
        assert list(a) == list(b)


def test_checkpoint_file_format(digits, tmp_path):
    "last.pt and best.pt keep their keys (and order), so checkpoints written before still resume."
    train, val, _ = digits
    fit(_cnn(), train, val, get_recipe('smoke', epochs=1), checkpoint_dir=tmp_path, progress=False)
    last = torch.load(tmp_path / 'last.pt', weights_only=True)
    assert list(last) == ['model', 'optimizer', 'scheduler', 'scaler', 'epoch', 'history', 'best_epoch',
                          'best_val_acc', 'rng', 'recipe', 'model_config', 'regime']
    assert sorted(last['rng']) == ['cuda', 'loader', 'torch'] and last['regime'] is None and last['epoch'] == 1
    assert list(torch.load(tmp_path / 'best.pt', weights_only=True)) == ['model', 'epoch', 'val_acc', 'model_config']


def test_load_checkpoint_restores_every_part(digits, tmp_path):
    train, val, _ = digits
    reg = _Counting()
    fit(_cnn(), train, val, get_recipe('smoke', epochs=2), loss_fn=reg, checkpoint_dir=tmp_path, seed=5,
        progress=False, restore_best=False)
    st = fit_state(_cnn(9), get_recipe('smoke', epochs=2), loss_fn=_Counting(), device='cpu', seed=0)
    assert load_checkpoint(st, tmp_path) == 2
    ck = torch.load(tmp_path / 'last.pt', weights_only=True)
    assert all(torch.equal(a, b) for a, b in zip(st.model.state_dict().values(), ck['model'].values()))
    assert torch.equal(st.loader_gen.get_state(), ck['rng']['loader'])
    assert st.sched.state_dict() == ck['scheduler'] and st.loss_fn.steps == reg.steps
    assert (st.result.resumed_from, len(st.result.history), st.result.best_epoch) == (2, 2, ck['best_epoch'])
    best = torch.load(tmp_path / 'best.pt', weights_only=True)['model']
    assert all(torch.equal(a, b) for a, b in zip(st.best_state.values(), best.values()))
    assert load_checkpoint(fit_state(_cnn(), 'smoke', device='cpu'), tmp_path / 'none') == 0


def test_keep_best_ties_nan_and_no_validation():
    st = fit_state(_cnn(), 'smoke', device='cpu')
    assert [keep_best(st, dict(epoch=e, val_acc=a)) for e, a in [(1, 0.5), (2, 0.5), (3, 0.7), (4, 0.6)]] \
        == [True, False, True, False]
    assert (st.result.best_epoch, st.result.best_val_acc, len(st.result.history)) == (3, 0.7, 4)
    st2 = fit_state(_cnn(), 'smoke', device='cpu')
    assert all(keep_best(st2, dict(epoch=e, val_acc=float('nan')), validated=False) for e in (1, 2))
    assert st2.result.best_epoch == 2


def test_train_step_and_epoch(digits):
    train, val, _ = digits
    st = fit_state(_cnn(), get_recipe('smoke', epochs=2), device='cpu')
    x, y = train.tensors[0][:16], train.tensors[1][:16]
    loss, n = train_step(st, x, y)
    assert n == 16 and loss.dim() == 0 and not loss.requires_grad
    bad = FitState(**{**vars(st), 'loss_fn': lambda m, x, t: torch.tensor(float('inf'))})
    with pytest.raises(FloatingPointError, match='loss became inf at epoch 3'):
        train_step(bad, x, y, epoch=2)
    calls = []
    st.loss_fn = type('R', (), dict(__call__=lambda self, m, x, t: standard_loss(m, x, t),
                                     start_epoch=lambda self, e: calls.append(e)))()
    loader = make_loader(as_dataset((train.tensors[0][:64], train.tensors[1][:64])), 32, device='cpu')
    rec = train_epoch(st, loader, 1, val)
    assert calls == [1] and rec['epoch'] == 2 and rec['lr'] == 0.1 and 0 <= rec['val_acc'] <= 1
    assert st.opt.param_groups[0]['lr'] == pytest.approx(0.05)


def test_resume_after_kill_mid_epoch(digits, tmp_path):
    "A run killed inside its third epoch resumes from the end of the second and ends like an uninterrupted run."
    train, val, _ = digits
    straight = _interrupted(train, val, tmp_path / 'a')
    class Kill(SPIDER):
        steps = 0
        def __call__(self, x, y):
            Kill.steps += 1
            if Kill.steps == 2 * -(-len(train) // 32) + 3: raise KeyboardInterrupt
            return super().__call__(x, y)
    _interrupted(train, val, tmp_path / 'b', labels=Kill(10, 1.0, 0.3))
    assert torch.load(tmp_path / 'b' / 'last.pt', weights_only=True)['epoch'] == 2
    resumed = _interrupted(train, val, tmp_path / 'b', resume=True)
    assert all(torch.equal(a, b) for a, b in zip(straight.state_dict().values(), resumed.state_dict().values()))
