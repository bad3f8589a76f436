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
    assert evaluate(m, test) > 85
    assert r.history[-1]['train_loss'] < r.history[0]['train_loss']
    assert r.best_val_acc == max(h['val_acc'] for h in r.history)
    assert r.best_epoch == 1 + [h['val_acc'] for h in r.history].index(r.best_val_acc)


def test_fit_vs_model_predicts_with_first_k(digits):
    train, val, test = digits
    m = _cnn(v=10)
    fit(m, train, val, get_recipe('smoke', epochs=4), labels=VirtualSmoothing(10, 10, 0.3), progress=False)
    acc = evaluate(m, test)
    assert acc > 85
    x, y = test.tensors
    with torch.no_grad(): assert (m(x)[:, :10].argmax(1) == y).float().mean().item() == pytest.approx(acc / 100)


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
    assert 0 <= evaluate(m, (x, y)) <= 100
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
        if r.warmup_epochs or r.cooldown_epochs or r.min_lr:       # timm's cosine with warmup and cooldown (T2T-ViT)
            from robust_labels.train import _warmup_cosine_lr
            assert lrs == pytest.approx([_warmup_cosine_lr(r, e) for e in range(r.epochs)], rel=1e-6), name
            continue
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
                          'best_val_acc', 'acc_unit', 'rng', 'recipe', 'model_config', 'regime', 'identity',
                          'transforms']
    assert sorted(last['rng']) == ['cuda', 'loader', 'torch'] and last['regime'] is None and last['epoch'] == 1
    assert last['transforms'] == dict(labels=None, augment=None)     # one-hot labels hold no state
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
    assert [keep_best(st, dict(epoch=e, val_acc=a)) for e, a in [(1, 50.0), (2, 50.0), (3, 70.0), (4, 60.0)]] \
        == [True, False, True, False]
    assert (st.result.best_epoch, st.result.best_val_acc, len(st.result.history)) == (3, 70.0, 4)
    st2 = fit_state(_cnn(), 'smoke', device='cpu')
    assert all(keep_best(st2, dict(epoch=e, val_acc=float('nan')), validated=False) for e in (1, 2))
    assert st2.result.best_epoch == 2


def test_train_step_and_epoch(digits):
    train, val, _ = digits
    st = fit_state(_cnn(), get_recipe('smoke', epochs=2), device='cpu')
    x, y = train.tensors[0][:16], train.tensors[1][:16]
    loss, n = train_step(st, x, y)
    assert n == 16 and loss.dim() == 0 and not loss.requires_grad
    bad = fit_state(_cnn(), 'smoke', loss_fn=lambda m, x, t: standard_loss(m, x, t) * float('inf'), device='cpu')
    with pytest.raises(FloatingPointError, match='loss became inf at epoch 3'):
        train_epoch(bad, [(x, y)], epoch=2)
    calls = []
    st.loss_fn = type('R', (), dict(__call__=lambda self, m, x, t: standard_loss(m, x, t),
                                     start_epoch=lambda self, e: calls.append(e)))()
    loader = make_loader(as_dataset((train.tensors[0][:64], train.tensors[1][:64])), 32, device='cpu')
    rec = train_epoch(st, loader, 1, val)
    assert calls == [1] and rec['epoch'] == 2 and rec['lr'] == 0.1 and 0 <= rec["val_acc"] <= 100
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


# --- issue 14: empty data, run identity, consistent best/last pair; issue 11 §3: no per-step host syncs ---

import json
from pathlib import Path

import robust_labels.train as train_mod


def test_empty_data_is_an_error(digits):
    "fit and evaluate on an empty dataset raise instead of reporting 0.0 accuracy."
    x, y = digits[0].tensors
    with pytest.raises(ValueError, match='train_data is empty'):
        fit(_cnn(), (x[:0], y[:0]), None, get_recipe('smoke', epochs=1), progress=False)
    with pytest.raises(ValueError, match='val_data is empty'):
        fit(_cnn(), (x, y), (x[:0], y[:0]), get_recipe('smoke', epochs=1), progress=False)
    with pytest.raises(ValueError, match='data is empty'):
        evaluate(_cnn(), (x[:0], y[:0]))


def _stop_after(epoch):
    "A callback that interrupts the run after `epoch`."
    def stop(rec):
        if rec['epoch'] == epoch: raise KeyboardInterrupt
    return stop


def _first_epoch(model, train, val, ckdir, epochs=2, **kw):
    "Train the first of `epochs` smoke epochs into `ckdir`, then stop as if killed."
    with pytest.raises(KeyboardInterrupt):
        fit(model, train, val, get_recipe('smoke', epochs=epochs), checkpoint_dir=ckdir, callback=_stop_after(1),
            progress=False, **kw)


def test_identity_recorded_and_checked(digits, tmp_path):
    "The run's identity is stored in last.pt; resuming under another identity names the differing fields."
    train, val, _ = digits
    ident = dict(cfg=dict(labels='spider', seed=3, tau=1.0), data='abc123')
    _first_epoch(_cnn(), train, val, tmp_path, identity=ident)
    assert torch.load(tmp_path / 'last.pt', weights_only=True)['identity'] == ident
    other = dict(cfg=dict(labels='onehot', seed=3, tau=1.0), data='ffff')
    with pytest.raises(ValueError, match=r"another run.*'cfg\.labels': \('spider', 'onehot'\).*'data'"):
        fit(_cnn(), train, val, get_recipe('smoke', epochs=2), checkpoint_dir=tmp_path, identity=other, resume=True,
            progress=False)
    r = fit(_cnn(), train, val, get_recipe('smoke', epochs=2), checkpoint_dir=tmp_path, identity=json.loads(
        json.dumps(ident)), resume=True, progress=False)
    assert (r.resumed_from, len(r.history)) == (1, 2)
    with pytest.raises(TypeError, match='identity must be a JSON-able dict'):
        fit(_cnn(), train, val, get_recipe('smoke', epochs=1), identity=dict(f=object()), progress=False)
    with pytest.raises(TypeError, match='identity must be a JSON-able dict'):
        fit(_cnn(), train, val, get_recipe('smoke', epochs=1), identity=['a'], progress=False)


def test_checkpoint_without_identity_still_resumes(digits, tmp_path):
    "A last.pt written before identities existed (no 'identity' key) resumes under any identity."
    train, val, _ = digits
    _first_epoch(_cnn(), train, val, tmp_path)
    ck = torch.load(tmp_path / 'last.pt', weights_only=True)
    ck.pop('identity', None)
    torch.save(ck, tmp_path / 'last.pt')
    r = fit(_cnn(), train, val, get_recipe('smoke', epochs=2), checkpoint_dir=tmp_path, identity=dict(seed=1),
            resume=True, progress=False)
    assert (r.resumed_from, len(r.history)) == (1, 2)


def _kill_at_write(monkeypatch, n):
    "Make the n-th checkpoint write (1-based) raise KeyboardInterrupt; record a copy of every file written before."
    written, real = [], train_mod.atomic_save
    def save(obj, path):
        if len(written) + 1 == n: raise KeyboardInterrupt
        real(obj, path)
        written.append((Path(path).name, torch.load(path, weights_only=True)))
    monkeypatch.setattr(train_mod, 'atomic_save', save)
    return written


def test_kill_between_best_and_last_keeps_a_consistent_pair(digits, tmp_path, monkeypatch):
    "A kill between the two writes of epoch 2 never pairs last.pt with best weights of another epoch."
    train, val, _ = digits
    written = _kill_at_write(monkeypatch, 4)            # epoch 1 writes two files; the kill hits epoch 2's second
    with pytest.raises(KeyboardInterrupt):              # without validation, every epoch is the new best
        fit(_cnn(), train, None, get_recipe('smoke', epochs=3), checkpoint_dir=tmp_path, progress=False)
    monkeypatch.undo()
    st = fit_state(_cnn(5), get_recipe('smoke', epochs=3), device='cpu')
    done = load_checkpoint(st, tmp_path)
    weights = {(ck['epoch'], name): ck['model'] for name, ck in written}
    best = weights[(st.result.best_epoch, 'last.pt')]   # the weights at the end of the recorded best epoch
    assert all(torch.equal(a, b) for a, b in zip(st.best_state.values(), best.values()))
    on_disk = torch.load(tmp_path / 'best.pt', weights_only=True)
    assert on_disk['epoch'] == st.result.best_epoch <= done
    assert all(torch.equal(a, b) for a, b in zip(on_disk['model'].values(), best.values()))


def test_best_from_another_epoch_is_refused(digits, tmp_path):
    "A best.pt of another epoch than last.pt records as best (left by a kill under the old write order) is refused."
    train, val, _ = digits
    fit(_cnn(), train, None, get_recipe('smoke', epochs=3), checkpoint_dir=tmp_path / 'a', progress=False)
    with pytest.raises(KeyboardInterrupt):
        fit(_cnn(), train, None, get_recipe('smoke', epochs=3), checkpoint_dir=tmp_path / 'b', callback=_stop_after(2),
            progress=False)
    (tmp_path / 'a' / 'best.pt').replace(tmp_path / 'b' / 'best.pt')    # best.pt of epoch 3
    ck = torch.load(tmp_path / 'b' / 'last.pt', weights_only=True)
    ck['best_epoch'] = 1                                                # last.pt of epoch 2, best epoch 1
    torch.save(ck, tmp_path / 'b' / 'last.pt')
    with pytest.raises(CheckpointError, match='best.pt holds epoch 3 but .* records best epoch 1'):
        fit(_cnn(), train, None, get_recipe('smoke', epochs=3), checkpoint_dir=tmp_path / 'b', resume=True,
            progress=False)


def _count_syncs(monkeypatch):
    "Count host reads of tensor values (item, bool, float, tolist) made from now on."
    calls = []
    for name in ('item', '__bool__', '__float__', 'tolist'):
        real = getattr(torch.Tensor, name)
        def wrap(self, *a, _real=real, _name=name, **k):
            calls.append(_name)
            return _real(self, *a, **k)
        monkeypatch.setattr(torch.Tensor, name, wrap)
    return calls


def test_epoch_reads_the_device_once_not_per_step(digits, monkeypatch):
    "An epoch of many steps reads tensor values on the host a fixed number of times, not once per step."
    train, _, _ = digits
    plain_ce = lambda m, x, t: -(t * m(x).log_softmax(1)).sum(1).mean()   # the loop's syncs, not the loss's
    st = fit_state(_cnn(), get_recipe('smoke', epochs=1, batch_size=16), loss_fn=plain_ce, device='cpu')
    loader = make_loader(as_dataset(train), 16, shuffle=True, device='cpu', generator=st.loader_gen)
    calls = _count_syncs(monkeypatch)
    rec = train_epoch(st, loader, 0)                  # checks the loss every 50 steps and at the end
    monkeypatch.undo()
    assert len(loader) > 50 and len(calls) <= 2 + len(loader) // 50, calls
    assert rec['train_loss'] > 0 and isinstance(rec['train_loss'], float)


def test_non_finite_loss_checked_every_n_steps_and_at_epoch_end(digits):
    "A non-finite loss raises the usual error within `check_every` steps, or at the end of the epoch."
    train, _, _ = digits
    x, y = train.tensors[0][:320], train.tensors[1][:320]       # 10 steps of 32
    for check_every, want in ((2, 4), (3, 3), (50, 10)):
        calls = []
        def loss_fn(m, x, t):
            calls.append(1)
            loss = standard_loss(m, x, t)
            return loss * float('inf') if len(calls) == 3 else loss
        st = fit_state(_cnn(), get_recipe('smoke', epochs=1), loss_fn=loss_fn, device='cpu')
        loader = make_loader(as_dataset((x, y)), 32, device='cpu')
        with pytest.raises(FloatingPointError, match='loss became inf at epoch 2'):
            train_epoch(st, loader, 1, check_every=check_every)
        assert len(calls) == want, check_every
    nan_loss = lambda m, x, t: standard_loss(m, x, t) * float('nan')
    with pytest.raises(FloatingPointError, match='loss became nan at epoch 1'):
        fit(_cnn(), (x, y), None, get_recipe('smoke', epochs=1), loss_fn=nan_loss, progress=False, check_every=5)
    with pytest.raises(ValueError, match='check_every must be an integer'):
        fit(_cnn(), (x, y), None, get_recipe('smoke', epochs=1), progress=False, check_every=0)


def test_optimizer_implementation(digits, monkeypatch):
    "SGD uses the foreach implementation on the CPU, with the same weights as the for-loop one."
    opt, _ = make_optimizer(nn.Linear(2, 2), get_recipe('spider-cifar'))
    assert (opt.param_groups[0]['foreach'], opt.param_groups[0]['fused']) == (True, False)
    with pytest.raises(ValueError, match='impl must be one of'):
        make_optimizer(nn.Linear(2, 2), get_recipe('smoke'), impl='fast')
    train, val, _ = digits
    ws = []
    for impl in ('for-loop', None):
        if impl: monkeypatch.setattr(train_mod, 'make_optimizer',
                                     lambda m, r, impl=impl, _mk=make_optimizer: _mk(m, r, impl=impl))
        m = _cnn(2)
        fit(m, train, val, get_recipe('spider-cifar', epochs=2, batch_size=64), labels=SPIDER(10, 1.0, 0.3),
            progress=False)
        ws.append(m.state_dict())
        monkeypatch.undo()
    assert all(torch.equal(a, b) for a, b in zip(ws[0].values(), ws[1].values()))


def test_resume_keeps_the_optimizer_implementation(digits, tmp_path):
    "A checkpoint written by the for-loop SGD (older versions) resumes with the foreach implementation."
    train, val, _ = digits
    fit(_cnn(), train, val, get_recipe('smoke', epochs=1), checkpoint_dir=tmp_path, progress=False)
    ck = torch.load(tmp_path / 'last.pt', weights_only=True)
    for g in ck['optimizer']['param_groups']: g['foreach'], g['fused'] = None, None
    torch.save(ck, tmp_path / 'last.pt')
    st = fit_state(_cnn(), get_recipe('smoke', epochs=1), device='cpu')
    load_checkpoint(st, tmp_path)
    assert (st.opt.param_groups[0]['foreach'], st.opt.param_groups[0]['fused']) == (True, False)


@pytest.mark.slow
def test_fit_compiled(digits):
    "fit(compile=True) trains a torch.compile'd model to about the weights of the eager one; checkpoints stay plain."
    train, val, _ = digits
    x, y = train.tensors[0][:256], train.tensors[1][:256]
    ms = []
    for compile in (False, True):
        m = _cnn(4)
        fit(m, (x, y), None, get_recipe('smoke', epochs=1), progress=False, compile=compile)
        ms.append(m)
    assert list(ms[0].state_dict()) == list(ms[1].state_dict())
    assert all(torch.allclose(a.float(), b.float(), atol=1e-3) for a, b in zip(ms[0].state_dict().values(),
                                                                                ms[1].state_dict().values()))


# --- transform generators in checkpoints, num_workers, TensorBoard ---

def _own_generators(train, val, ckdir, stop_after=None, resume=False):
    "Two smoke epochs with SPIDER and random crops that draw from their own generators."
    from robust_labels.data import RandomCropFlip
    m = _cnn(1)
    labels = SPIDER(10, 1.0, 0.3, generator=torch.Generator().manual_seed(9))
    augment = RandomCropFlip(1, generator=torch.Generator().manual_seed(8))
    try:
        fit(m, train, val, get_recipe('smoke', epochs=2), labels=labels, augment=augment, checkpoint_dir=ckdir,
            resume=resume, seed=3, progress=False, restore_best=False,
            callback=_stop_after(stop_after) if stop_after else None)
    except KeyboardInterrupt:
        pass
    return m, labels, augment


def test_resume_restores_transform_generators(digits, tmp_path):
    "Transforms with their own generators, killed after epoch 1 and resumed, end bitwise as an uninterrupted run."
    train, val, _ = digits
    straight, l1, a1 = _own_generators(train, val, tmp_path / 'a')
    _own_generators(train, val, tmp_path / 'b', stop_after=1)
    resumed, l2, a2 = _own_generators(train, val, tmp_path / 'b', resume=True)
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)
    assert torch.equal(l1.generator.get_state(), l2.generator.get_state())
    assert torch.equal(a1.generator.get_state(), a2.generator.get_state())


def test_old_checkpoint_without_transform_states_resumes(digits, tmp_path):
    "A last.pt written before transform states were kept still resumes."
    train, val, _ = digits
    _own_generators(train, val, tmp_path, stop_after=1)
    ck = torch.load(tmp_path / 'last.pt', weights_only=True)
    assert ck['transforms']['labels'] is not None and ck['transforms']['augment'] is not None
    del ck['transforms']
    torch.save(ck, tmp_path / 'last.pt')
    m, _, _ = _own_generators(train, val, tmp_path, resume=True)
    assert torch.load(tmp_path / 'last.pt', weights_only=True)['epoch'] == 2


class _CountingAugment:
    "An augmentation with a state_dict: counts its batches."
    def __init__(self): self.calls = 0
    def __call__(self, x, y):
        self.calls += 1
        return x, y
    def state_dict(self): return dict(calls=self.calls)
    def load_state_dict(self, d): self.calls = d['calls']


def test_transform_state_dict_and_compose_parts_are_kept(digits, tmp_path):
    "A transform's state_dict is saved and loaded; a Compose's parts are kept one by one."
    from robust_labels.labels import Compose
    from robust_labels.train import _set_transform_state, _transform_state
    train, val, _ = digits
    aug = _CountingAugment()
    with pytest.raises(KeyboardInterrupt):
        fit(_cnn(), train, val, get_recipe('smoke', epochs=2), augment=aug, checkpoint_dir=tmp_path,
            callback=_stop_after(1), progress=False)
    per_epoch = aug.calls
    again = _CountingAugment()
    fit(_cnn(), train, val, get_recipe('smoke', epochs=2), augment=again, checkpoint_dir=tmp_path, resume=True,
        progress=False)
    assert per_epoch > 0 and again.calls == 2 * per_epoch
    g = torch.Generator().manual_seed(0)
    c = Compose(SPIDER(10, 1.0, generator=g), _CountingAugment())
    saved = _transform_state(c)
    torch.rand(3, generator=g)
    c.transforms[1].calls = 5
    _set_transform_state(c, saved)
    assert torch.equal(g.get_state(), saved['parts'][0]['generator']) and c.transforms[1].calls == 0


def test_num_workers_defaults_to_the_datasets_own(digits, monkeypatch):
    "fit passes num_workers=None on to make_loader (the dataset's own); in-memory results are unchanged."
    import inspect
    import robust_labels.train as tr
    train, val, _ = digits
    assert inspect.signature(fit).parameters['num_workers'].default is None
    seen = []
    real = tr.make_loader
    def spy(*a, **k):
        if k.get('shuffle'): seen.append(k['num_workers'])     # the training loader (evaluate's does not shuffle)
        return real(*a, **k)
    monkeypatch.setattr(tr, 'make_loader', spy)
    m0, m1 = _cnn(), _cnn()
    fit(m0, train, val, get_recipe('smoke', epochs=1), num_workers=0, progress=False)
    fit(m1, train, val, get_recipe('smoke', epochs=1), progress=False)
    assert seen == [0, None]
    for a, b in zip(m0.state_dict().values(), m1.state_dict().values()):
        assert torch.equal(a, b)


class _Writer:
    "Stands in for torch.utils.tensorboard.SummaryWriter."
    def __init__(self, logdir): self.logdir, self.scalars, self.closed = logdir, [], False
    def add_scalar(self, tag, value, step): self.scalars.append((tag, value, step))
    def flush(self): pass
    def close(self): self.closed = True


def test_tensorboard_logger_writes_each_epoch(digits, tmp_path, monkeypatch):
    "tensorboard_logger writes each epoch's numbers, step = epoch; without tensorboard it says how to install it."
    import sys
    import types
    from robust_labels.train import tensorboard_logger
    train, val, _ = digits
    monkeypatch.setitem(sys.modules, 'torch.utils.tensorboard', types.SimpleNamespace(SummaryWriter=_Writer))
    tb = tensorboard_logger(tmp_path / 'tb')
    r = fit(_cnn(), train, val, get_recipe('smoke', epochs=2), callback=tb, progress=False)
    tb.close()
    assert tb.writer.logdir == str(tmp_path / 'tb') and tb.writer.closed and tb.epochs == 2
    got = {(t, s): v for t, v, s in tb.writer.scalars}
    assert set(got) == {(k, e) for e in (1, 2) for k in ('train_loss', 'val_acc', 'lr', 'seconds')}
    assert got[('val_acc', 2)] == r.history[1]['val_acc']
    monkeypatch.setitem(sys.modules, 'torch.utils.tensorboard', None)
    with pytest.raises(ImportError, match='pip install tensorboard'):
        tensorboard_logger(tmp_path / 'tb2')


def test_train_step_scale_weights_the_gradient(digits):
    "`scale` (a rank's weight for an uneven last batch under torchrun) multiplies the loss the optimiser steps on."
    train, _, _ = digits
    x, y = train.tensors[0][:8], train.tensors[1][:8]
    moved = []
    for scale in (1.0, 2.0):
        torch.manual_seed(0)
        st = fit_state(_cnn(), get_recipe('smoke', momentum=0.0, weight_decay=0.0, schedule='constant'), device='cpu')
        before = [p.detach().clone() for p in st.model.parameters()]
        loss, _ = train_step(st, x, y, scale=scale)
        moved.append([p.detach() - b for p, b in zip(st.model.parameters(), before)])
        assert loss.item() > 0                          # the loss returned is the unscaled one
    for a, b in zip(*moved): assert torch.allclose(b, 2 * a, atol=1e-6)


def test_single_process_fit_has_no_ddp_and_loader_is_unsharded(digits):
    train, _, _ = digits
    st = fit_state(_cnn(), 'smoke', device='cpu')
    assert st.ddp is None
    from robust_labels.data import TensorLoader
    whole = make_loader(as_dataset(train), 32, device='cpu', shard=(0, 1))
    assert isinstance(whole, TensorLoader) and whole.shard is None and len(whole) == 36


def test_resume_converts_fraction_checkpoint_to_percent(digits, tmp_path):
    "A checkpoint written before accuracies were percent (no `acc_unit`) resumes with its accuracies times 100."
    train, val, _ = digits
    r = fit(_cnn(), train, val, get_recipe('smoke', epochs=1), checkpoint_dir=tmp_path, progress=False)
    assert 1 < r.best_val_acc <= 100
    ck = torch.load(tmp_path / 'last.pt', weights_only=True)
    old = {k: v for k, v in ck.items() if k != 'acc_unit'}
    old['best_val_acc'] = ck['best_val_acc'] / 100
    old['history'] = [{**h, 'val_acc': h['val_acc'] / 100} for h in ck['history']]
    torch.save(old, tmp_path / 'last.pt')
    r2 = fit(_cnn(), train, val, get_recipe('smoke', epochs=1), checkpoint_dir=tmp_path, resume=True, progress=False)
    assert r2.resumed_from == 1 and r2.history[0]['val_acc'] == pytest.approx(r.history[0]['val_acc'])
    assert r2.best_val_acc == pytest.approx(r.best_val_acc)
