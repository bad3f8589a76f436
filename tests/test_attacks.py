"Tests of robust_labels.attacks: PGD/CW, presets, robust accuracy with resumption, AutoAttack and AutoAttack+."
import json
from dataclasses import replace
from functools import partial

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st
from pyautoattack import AutoAttack
from sklearn.datasets import load_digits

from robust_labels.attacks import (ATTACKS, AttackConfig, AutoAttackPlus, RealDecision, RealLogits, autoattack, check_logits,
                                   cw, cw_margin, decision_logits, eval_mode, get_attack, looks_like_probabilities, pgd,
                                   robust_accuracy, robust_accuracy_header)
from robust_labels.labels import soft_cross_entropy, vs_targets
from robust_labels.perturb import flat_norm

K, V = 10, 10


@pytest.fixture(scope='module', autouse=True)
def one_thread():
    "Tiny models run fastest on one thread; give the setting back afterwards."
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope='module')
def digits():
    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32)[:, None] / 16
    return x[:1500], torch.tensor(d.target[:1500]), x[1500:], torch.tensor(d.target[1500:])


def _cnn(outputs):
    return nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
                         nn.Flatten(), nn.Linear(32 * 16, outputs))


def _fit(net, x, y, targets, epochs=5):
    g = torch.Generator().manual_seed(0)
    opt = torch.optim.Adam(net.parameters(), 3e-3)
    for _ in range(epochs):
        for idx in torch.randperm(len(x), generator=g).split(64):
            loss = soft_cross_entropy(net(x[idx]), targets(y[idx]))
            opt.zero_grad(); loss.backward(); opt.step()
    net.zero_grad(set_to_none=True)
    return net.eval()


@pytest.fixture(scope='module')
def net(digits):
    torch.manual_seed(0)
    x, y, _, _ = digits
    return _fit(_cnn(K), x, y, lambda t: F.one_hot(t, K).float())


@pytest.fixture(scope='module')
def vs_net(digits):
    torch.manual_seed(1)
    x, y, _, _ = digits
    return _fit(_cnn(K + V), x, y, lambda t: vs_targets(t, K, V, 0.8))


def _acc(model, x, y, k=None):
    with torch.no_grad(): return (model(x)[:, :k].argmax(1) == y).float().mean().item()


# --- cross-check against a reference implementation ---------------------------------------------------------------

@pytest.mark.parametrize('norm,eps,step', [('linf', 0.1, 0.01), ('l2', 1.0, 0.1)])
@pytest.mark.parametrize('random_start', [False, True])
def test_pgd_agrees_with_torchattacks(net, digits, norm, eps, step, random_start):
    "Same model, data, radius, step and steps: robust accuracy of our PGD and torchattacks' PGD agree."
    torchattacks = pytest.importorskip('torchattacks')
    _, _, x, y = digits
    torch.manual_seed(0)
    ref = (torchattacks.PGD if norm == 'linf' else torchattacks.PGDL2)(net, eps=eps, alpha=step, steps=20, random_start=random_start)
    ours = pgd(net, x, y, norm, eps, step, 20, random_start=random_start, generator=torch.Generator().manual_seed(0))
    a_ref, a_ours = _acc(net, ref(x, y), y), _acc(net, ours, y)
    assert a_ref < _acc(net, x, y) - 0.2                       # the attack does something
    assert abs(a_ref - a_ours) <= (0.01 if not random_start else 0.03)


# --- invariants of every PGD run -----------------------------------------------------------------------------------

@settings(max_examples=25, deadline=None)
@given(norm=st.sampled_from(['linf', 'l2']), eps=st.floats(0, 1), step=st.floats(1e-3, 1),
       steps=st.integers(1, 4), targeted=st.booleans(), loss=st.sampled_from(['ce', 'cw']),
       random_start=st.booleans(), seed=st.integers(0, 2**16))
def test_pgd_stays_in_ball_and_domain(norm, eps, step, steps, targeted, loss, random_start, seed):
    g = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 5))
    torch.nn.init.normal_(model[1].weight, generator=g)
    x = torch.rand(6, 3, 2, 2, generator=g)
    y = torch.randint(0, 5, (6,), generator=g)
    x_adv = pgd(model, x, y, norm, eps, step, steps, random_start=random_start, targeted=targeted, loss=loss, generator=g)
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype and not x_adv.requires_grad
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    if norm == 'linf': assert (x_adv - x).abs().max() <= eps + 1e-6
    else: assert flat_norm(x_adv - x).max() <= eps + 1e-5


def test_attack_lowers_accuracy_and_robust_accuracy_below_clean(net, digits):
    _, _, x, y = digits
    clean = _acc(net, x, y)
    for attack in ('vs-pgd20', 'vs-cw20', 'spider-linf-pgd7-cifar', partial(pgd, norm='l2', eps=1.0, step=0.2, steps=10)):
        ra = robust_accuracy(net, x, y, attack, batch_size=128)
        assert ra <= clean
    assert robust_accuracy(net, x, y, partial(pgd, norm='linf', eps=0.1, step=0.02, steps=10)) < clean - 0.2


def test_targeted_raises_target_probability(net, digits):
    _, _, x, y = digits
    t = (y + 1 + torch.randint(0, K - 1, y.shape, generator=torch.Generator().manual_seed(0))) % K
    x_t = get_attack('thickness-l2-pgd20')(net, x, t)
    with torch.no_grad():
        before, after = (net(v).softmax(1).gather(1, t[:, None]).squeeze(1) for v in (x, x_t))
    assert (after > before).all()
    assert flat_norm(x_t - x).max() <= 5.0 + 1e-4
    x_u = pgd(net, x, t, 'linf', 0.05, 0.01, 10, targeted=True, random_start=False)
    with torch.no_grad(): assert (net(x_u).softmax(1).gather(1, t[:, None]).squeeze(1) > before).all()


def test_mode_restored_and_no_parameter_grads(net, digits):
    _, _, x, y = digits
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Dropout(0.5), nn.Flatten(), nn.Linear(144, K))
    model.train(); model[2].eval()                            # mixed modes: a frozen dropout in a training model
    seen = []
    model.register_forward_pre_hook(lambda m, inp: seen.append([s.training for s in m.modules()]))
    before = [p.clone() for p in model.parameters()]
    pgd(model, x[:8], y[:8], 'linf', 0.1, 0.02, 3)
    assert all(not any(modes) for modes in seen)               # every forward ran in eval mode
    assert [s.training for s in model.modules()] == [True, True, True, False, True, True]
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert model[1].num_batches_tracked == 0                    # batch-norm statistics untouched


def test_eval_mode_restores_after_exception():
    m = nn.Sequential(nn.Linear(2, 2), nn.Dropout()).train()
    with pytest.raises(RuntimeError):
        with eval_mode(m): raise RuntimeError('boom')
    assert m.training and m[1].training


def test_pgd_under_no_grad_and_reproducible(net, digits):
    _, _, x, y = digits
    with torch.no_grad():
        a = pgd(net, x[:32], y[:32], 'l2', 1.0, 0.2, 5, generator=torch.Generator().manual_seed(7))
    b = pgd(net, x[:32], y[:32], 'l2', 1.0, 0.2, 5, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a, b)
    c = pgd(net, x[:32], y[:32], 'l2', 1.0, 0.2, 5, generator=torch.Generator().manual_seed(8))
    assert not torch.equal(a, c)


def test_zero_eps_returns_input(net, digits):
    _, _, x, y = digits
    for norm in ('linf', 'l2'):
        assert torch.equal(pgd(net, x[:8], y[:8], norm, 0.0, 0.1, 3), x[:8])


# --- VS models -----------------------------------------------------------------------------------------------------

def test_num_classes_puts_loss_on_real_logits(vs_net, digits):
    "With num_classes=K the gradient ignores the virtual outputs: a model whose virtual outputs change nothing gives the same attack."
    _, _, x, y = digits
    extra = nn.Linear(64, V)
    wrapped = lambda inp: torch.cat([vs_net(inp)[:, :K], extra(inp.flatten(1)) * 100], 1)
    a = pgd(vs_net, x[:64], y[:64], 'linf', 0.1, 0.02, 5, num_classes=K, random_start=False)
    b = pgd(wrapped, x[:64], y[:64], 'linf', 0.1, 0.02, 5, num_classes=K, random_start=False)
    assert torch.equal(a, b)
    assert _acc(vs_net, a, y[:64], K) < _acc(vs_net, x[:64], y[:64], K)


def test_soft_targets_and_custom_loss(vs_net, digits):
    _, _, x, y = digits
    t = vs_targets(y[:64], K, V, 0.8)
    x_soft = pgd(vs_net, x[:64], t, 'linf', 8/255, 2/255, 10)
    with torch.no_grad(): assert soft_cross_entropy(vs_net(x_soft), t) > soft_cross_entropy(vs_net(x[:64]), t)
    with torch.no_grad(): p = vs_net(x[:64]).softmax(1)
    kl = lambda logits, clean: F.kl_div(logits.log_softmax(1), clean, reduction='none').sum(1)
    x_kl = pgd(vs_net, x[:64], p, 'linf', 8/255, 2/255, 5, loss=kl, generator=torch.Generator().manual_seed(0))
    with torch.no_grad(): assert kl(vs_net(x_kl), p).mean() > kl(vs_net(x[:64]), p).mean()


def test_cw_is_pgd_on_margin(net, digits):
    _, _, x, y = digits
    a = cw(net, x[:32], y[:32], 'linf', 0.1, 0.02, 5, random_start=False)
    b = pgd(net, x[:32], y[:32], 'linf', 0.1, 0.02, 5, random_start=False, loss='cw')
    assert torch.equal(a, b)
    z = torch.tensor([[2., 5., 1.], [4., 0., 3.]])
    assert cw_margin(z, torch.tensor([0, 0])).tolist() == [3., -1.]


# --- bad input -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('kwargs,msg', [
    (dict(norm='l1'), "norm must be one of 'linf', 'l2'"),
    (dict(eps=-0.1), 'eps must be in [0, 1]'),
    (dict(eps=1.5), 'eps must be in [0, 1]'),
    (dict(step=0), 'step must be in (0, inf)'),
    (dict(step=float('nan')), 'step must be in (0, inf)'),
    (dict(steps=0), 'steps must be an integer in [1, inf)'),
    (dict(num_classes=11), 'num_classes must be at most the number of logits 10'),
    (dict(loss='kl'), "loss must be one of 'ce', 'cw'"),
    (dict(y=torch.tensor([0, 1, 2, 10])), 'y must hold classes in [0, 10)'),
    (dict(y=torch.tensor([0, 1, 2])), 'y must have one entry per sample of x (4)'),
    (dict(x=torch.rand(4, 1, 8, 8) * 2), 'x must lie in [0, 1]'),
    (dict(x=torch.rand(4)), 'x must have at least 2 dims'),
    (dict(y=torch.rand(4, 10), targeted=True), 'y must hold class indices'),
    (dict(y=torch.rand(4, 7)), 'soft targets y must have 10 columns'),
])
def test_pgd_bad_arguments(net, kwargs, msg):
    args = dict(x=torch.rand(4, 1, 8, 8), y=torch.tensor([0, 1, 2, 3]), norm='linf', eps=0.1, step=0.01, steps=2)
    args.update(kwargs)
    with pytest.raises(ValueError) as e:
        pgd(net, args.pop('x'), args.pop('y'), **args)
    assert msg in str(e.value)


def test_probabilities_are_refused(net, digits):
    _, _, x, y = digits
    soft = nn.Sequential(net, nn.Softmax(1))
    assert looks_like_probabilities(soft(x[:4])) and not looks_like_probabilities(net(x[:4]))
    for call in (lambda: pgd(soft, x[:4], y[:4], 'linf', 0.1, 0.01, 2),
                 lambda: cw(soft, x[:4], y[:4], 'l2', 0.5, 0.1, 2),
                 lambda: robust_accuracy(soft, x[:4], y[:4], 'vs-pgd20'),
                 lambda: autoattack(soft, x[:4], y[:4])):
        with pytest.raises(ValueError, match='model returns probabilities'): call()
    with pytest.raises(ValueError, match='logits of shape'): check_logits(torch.zeros(3))


def test_presets_match_the_papers():
    want = {'spider-l2-pgd20': ('l2', 0.5, 1/800, 20, 'ce', False),
            'spider-linf-pgd7-cifar': ('linf', 8/255, 2/255, 7, 'ce', False),
            'spider-linf-pgd3-tiny': ('linf', 3/255, 1/255, 3, 'ce', False),
            'spider-linf-pgd2-imagenet': ('linf', 1/255, 1/510, 2, 'ce', False),
            'vs-pgd20': ('linf', 8/255, 2/255, 20, 'ce', False),
            'vs-cw20': ('linf', 8/255, 2/255, 20, 'cw', False),
            'vs-at-pgd10': ('linf', 8/255, 2/255, 10, 'ce', False),
            'thickness-l2-pgd20': ('l2', 5.0, 1.0, 20, 'ce', True)}
    for name, w in want.items():
        c = get_attack(name)
        assert (c.norm, c.eps, c.step, c.steps, c.loss, c.targeted) == w and c.kind == 'pgd' and c.source
    assert (get_attack('vs-autoattack').n_target_classes, get_attack('vs-autoattack+').n_target_classes) == (9, None)
    assert set(ATTACKS) == set(want) | {'vs-autoattack', 'vs-autoattack+', 'vs-autoattack-official',
                                        'vs-autoattack+-official'}
    assert [get_attack(n).protocol for n in ('vs-autoattack', 'vs-autoattack-official')] == ['ours', 'vs-official']
    with pytest.raises(ValueError, match='name must be one of'): get_attack('pgd-20')
    with pytest.raises(ValueError, match='kind must be one of'): AttackConfig('x', 'linf', 0.1, 0.01, 1, kind='fgsm')
    with pytest.raises(ValueError, match='eps must be in'): AttackConfig('x', 'linf', 2.0, 0.01, 1)


# --- robust accuracy and resumption --------------------------------------------------------------------------------

class Counting:
    "An attack that counts its calls."
    def __init__(self, attack):
        self.attack, self.calls = attack, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.attack(*args, **kwargs)


def test_robust_accuracy_resumes(vs_net, digits):
    "Counts handed out by `on_batch` and given back as `done` skip those batches; the number stays the same."
    _, _, x, y = digits
    attack = partial(pgd, norm='linf', eps=0.1, step=0.02, steps=5)
    first, kept = Counting(attack), {}
    full = robust_accuracy(vs_net, x, y, first, num_classes=K, batch_size=64, on_batch=lambda i, c: kept.update({i: c}))
    assert first.calls == 5 and sorted(kept) == [0, 1, 2, 3, 4]
    assert sum(c['robust'] for c in kept.values()) / len(x) == full
    assert all(c['clean'] >= c['robust'] for c in kept.values()) and sum(c['n'] for c in kept.values()) == len(x)
    for drop in (0, 3): del kept[drop]
    rerun, seen = Counting(attack), []
    assert robust_accuracy(vs_net, x, y, rerun, num_classes=K, batch_size=64, done=kept,
                           on_batch=lambda i, c: seen.append(i)) == full
    assert rerun.calls == 2 and seen == [0, 3] and sorted(kept) == [1, 2, 4]   # `done` itself is not changed
    as_json = {str(i): c for i, c in json.loads(json.dumps(kept)).items()}    # keys as strings, as from a JSON file
    assert robust_accuracy(vs_net, x, y, rerun, num_classes=K, batch_size=64, done=as_json) == full
    skipped = Counting(attack)
    every = {**kept, 0: dict(n=64, clean=0, robust=0), 3: dict(n=64, clean=0, robust=0)}
    robust_accuracy(vs_net, x, y, skipped, num_classes=K, batch_size=64, done=every)
    assert skipped.calls == 0


@pytest.mark.parametrize('change', ['attack', 'batch_size', 'labels', 'seed', 'num_classes'])
def test_robust_accuracy_header_tells_evaluations_apart(digits, change):
    "A caller that saves per-batch counts can refuse to mix evaluations: their headers differ."
    _, _, x, y = digits
    x, y = x[:64], y[:64]
    args = dict(attack=partial(pgd, norm='linf', eps=0.1, step=0.02, steps=2), num_classes=K, batch_size=32, seed=0)
    header = robust_accuracy_header(x, y, **args)
    assert header == robust_accuracy_header(x, y.clone(), **args)
    json.dumps(header)   # plain data
    if change == 'attack': args['attack'] = partial(pgd, norm='linf', eps=0.2, step=0.02, steps=2)
    elif change == 'batch_size': args['batch_size'] = 16
    elif change == 'labels': y = y.flip(0)
    elif change == 'seed': args['seed'] = 1
    else: args['num_classes'] = K + 1
    assert robust_accuracy_header(x, y, **args) != header


def test_robust_accuracy_bad_arguments(net, digits):
    _, _, x, y = digits
    with pytest.raises(ValueError, match='one class per sample'):
        robust_accuracy(net, x[:8], y[:7], 'vs-pgd20')
    with pytest.raises(ValueError, match=r'y must hold classes in \[0, 10\)'):
        robust_accuracy(net, x[:8], y[:8] + 10, 'vs-pgd20')
    with pytest.raises(ValueError, match='batch_size must be an integer'):
        robust_accuracy(net, x[:8], y[:8], 'vs-pgd20', batch_size=0)
    with pytest.raises(TypeError, match='attack must be'):
        robust_accuracy(net, x[:8], y[:8], 3)


# --- AutoAttack+ ---------------------------------------------------------------------------------------------------

@settings(max_examples=50, deadline=None)
@given(st.integers(1, 5), st.integers(0, 5), st.integers(0, 2**16))
def test_decision_logits(k, v, seed):
    g = torch.Generator().manual_seed(seed)
    z = (torch.randn(7, k + v, generator=g) * 3).round().requires_grad_()    # rounding makes ties common
    d = decision_logits(z, k)
    assert torch.equal(d.argmax(1), z[:, :k].argmax(1))
    top = z[:, :k].argmax(1)
    changed = (d != z).detach()
    assert (changed.sum(1) <= 1).all() and (changed.nonzero()[:, 1] == top[changed.any(1)]).all()
    order = lambda t: [r[r != i].tolist() for r, i in zip(torch.sort(t.detach(), dim=1, descending=True, stable=True).indices, top)]
    assert order(d) == order(z)                                 # the other outputs keep their ranking
    w = torch.randn(7, k + v, generator=g)
    gd, = torch.autograd.grad((d * w).sum(), z)
    gz, = torch.autograd.grad((z * w).sum(), z)
    assert torch.equal(gd, gz)


class Constant(nn.Module):
    "Input-independent logits (zero gradient): it can never be fooled, so every target gets tried."
    def __init__(self, logits):
        super().__init__(); self.register_buffer('logits', torch.tensor(logits))
    def forward(self, x): return x.flatten(1)[:, :1] * 0 + self.logits


def test_autoattack_plus_targets_and_scoring():
    "K=3 real + V=2 virtual outputs; a virtual output is the largest. Stock AutoAttack scores the point as wrong and never attacks it."
    model = Constant([1., -1., 0., 5., 4.])
    x, y = torch.rand(2, 1, 2, 2), torch.zeros(2, dtype=torch.long)
    stock = AutoAttack(model, eps=0.1, norm='Linf', version='standard', seed=0)
    stock.verbose = False
    assert stock.clean_accuracy(x, y) == 0.0
    aa = AutoAttackPlus(model, num_classes=3, eps=0.1, norm='Linf', version='custom', attacks=['apgd-t', 'fab-t'], seed=0)
    aa.verbose = False
    assert aa.clean_accuracy(x, y) == 1.0
    aa.apgd_targeted.n_iter = aa.fab.n_iter = 2
    targets, fab_targets = [], []
    run_apgd, run_fab = aa.apgd_targeted.attack_single_run, aa.fab.attack_single_run
    def spy_apgd(*a, **kw):
        targets.append(aa.apgd_targeted.y_target.tolist()); return run_apgd(*a, **kw)
    def spy_fab(x_, y_, use_rand_start=False, is_targeted=False):
        out = aa.fab._predict_fn(x_); fab_targets.append(out.sort(dim=-1)[1][:, -aa.fab.target_class].tolist())
        return run_fab(x_, y_, use_rand_start=use_rand_start, is_targeted=is_targeted)
    aa.apgd_targeted.attack_single_run, aa.fab.attack_single_run = spy_apgd, spy_fab
    x_adv, y_adv = aa.run_standard_evaluation(x, y, batch_size=2)
    assert aa.apgd_targeted.n_target_classes == aa.fab.n_target_classes == 3 + 2 - 1
    assert targets == fab_targets == [[3, 3], [4, 4], [2, 2], [1, 1]]   # every other output, ranked by logit
    assert y_adv.tolist() == [0, 0] and torch.equal(x_adv, x)
    nine = AutoAttackPlus(model, num_classes=3, n_target_classes=2, eps=0.1, norm='Linf', version='custom', attacks=[], seed=0)
    nine.run_standard_evaluation(x, y, batch_size=2)
    assert nine.apgd_targeted.n_target_classes == 2


def test_autoattack_plus_views(vs_net, digits):
    _, _, x, y = digits
    aa = AutoAttackPlus(vs_net, num_classes=K, eps=8/255, norm='Linf', version='standard', seed=0)
    assert isinstance(aa.apgd.model, RealLogits) and isinstance(aa.square.predict, RealLogits)
    assert isinstance(aa.apgd_targeted.model, RealDecision)
    assert (aa.fab.n_restarts, aa.apgd.n_restarts, aa.attacks_to_run) == (1, 1, ['apgd-ce', 'apgd-t', 'fab-t', 'square'])
    with torch.no_grad():
        z = vs_net(x)
        assert torch.equal(aa.get_logits(x).argmax(1), z[:, :K].argmax(1))
        assert torch.equal(aa.fab._get_predicted_label(x), z[:, :K].argmax(1))
        assert (z.argmax(1) >= K).any()                        # the case that stock AutoAttack gets wrong does occur


def test_autoattack_plus_is_autoattack_on_plain_models(net, digits):
    "Without virtual outputs both views are the model, so AutoAttackPlus returns what the official AutoAttack returns."
    _, _, x, y = digits
    x, y = x[:24], y[:24]
    kw = dict(eps=0.1, norm='Linf', version='custom', attacks=['apgd-ce', 'apgd-t'], seed=0)
    stock, plus = AutoAttack(net, **kw), AutoAttackPlus(net, num_classes=K, n_target_classes=9, **kw)
    for a in (stock, plus): a.apgd.n_iter = a.apgd_targeted.n_iter = 10; a.verbose = False
    stock.apgd_targeted.n_target_classes = 9
    a, _ = stock.run_standard_evaluation(x, y, batch_size=24)
    b, _ = plus.run_standard_evaluation(x, y, batch_size=24)
    assert torch.equal(a, b)


def test_autoattack_function(vs_net, digits):
    _, _, x, y = digits
    x, y = x[:16], y[:16]
    vs_net.train()
    try:
        state = torch.get_rng_state()
        x_adv = autoattack(vs_net, x, y, 'linf', 0.1, num_classes=K, n_target_classes=None, attacks=['apgd-ce', 'apgd-t'])
        assert torch.equal(torch.get_rng_state(), state)       # AutoAttack's reseeding does not leak out
        assert vs_net.training
    finally: vs_net.eval()
    assert (x_adv - x).abs().max() <= 0.1 + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1
    assert _acc(vs_net, x_adv, y, K) < _acc(vs_net, x, y, K)
    again = autoattack(vs_net, x, y, 'linf', 0.1, num_classes=K, n_target_classes=None, attacks=['apgd-ce', 'apgd-t'])
    assert torch.equal(x_adv, again)
    for kwargs, msg in [(dict(norm='l1'), "norm must be one of 'linf', 'l2'"), (dict(eps=2.0), 'eps must be in [0, 1]'),
                        (dict(version='fast'), "version must be one of"), (dict(num_classes=21), 'num_classes must be at most'),
                        (dict(n_target_classes=0), 'n_target_classes must be an integer in [1, inf)')]:
        with pytest.raises(ValueError) as e: autoattack(vs_net, x, y, **kwargs)
        assert msg in str(e.value)
    with pytest.raises(ValueError, match=r'y must hold classes in \[0, 10\)'): autoattack(vs_net, x, y + K, num_classes=K)


def test_robust_accuracy_with_autoattack(vs_net, digits):
    "AutoAttack plugs into robust_accuracy as a preset or a partial; the per-batch generator fixes its seed."
    _, _, x, y = digits
    x, y = x[:16], y[:16]
    quick = partial(autoattack, norm='linf', eps=0.1, attacks=['apgd-ce'])
    a = robust_accuracy(vs_net, x, y, quick, num_classes=K, batch_size=8)
    assert a == robust_accuracy(vs_net, x, y, quick, num_classes=K, batch_size=8)
    assert a < _acc(vs_net, x, y, K)


@pytest.mark.slow
def test_autoattack_plus_standard_real_run(vs_net, digits):
    "The full standard AutoAttack+ on 16 digits; it is at least as strong as PGD-20 with the same radius, scored on the first K."
    _, _, x, y = digits
    x, y = x[:16], y[:16]
    x_aa = replace(get_attack('vs-autoattack+'), eps=0.1)(vs_net, x, y, num_classes=K)
    x_pgd = pgd(vs_net, x, y, 'linf', 0.1, 0.02, 20, num_classes=K, generator=torch.Generator().manual_seed(0))
    assert (x_aa - x).abs().max() <= 0.1 + 1e-6
    assert _acc(vs_net, x_aa, y, K) <= _acc(vs_net, x_pgd, y, K) + 1 / 16
    assert _acc(vs_net, x_aa, y, K) < _acc(vs_net, x, y, K)


def test_pgd_on_a_library_model(digits):
    "The attacks run on `robust_labels.models` classifiers with K + V outputs (skipped until that module exists)."
    models = pytest.importorskip('robust_labels.models')
    _, _, x, y = digits
    torch.manual_seed(0)
    model = models.create_model('cnn', K, num_virtual=V, in_channels=1).train()
    x_adv = pgd(model, x[:16], y[:16], 'l2', 0.5, 0.1, 3, num_classes=K, generator=torch.Generator().manual_seed(0))
    assert model.training and flat_norm(x_adv - x[:16]).max() <= 0.5 + 1e-5
    assert 0 <= robust_accuracy(model, x[:16], y[:16], 'vs-pgd20', num_classes=K) <= 1


# ---------------------------------------------------------------- issue 11 §3: the lean PGD gives the same numbers

def _reference_pgd(model, x, y, norm, eps, step, steps, generator, targeted=False, num_classes=None, loss='ce',
                   random_start=True):
    "PGD as the library wrote it before the speed work (out-of-place steps, per-sample loss then sum, sign factor)."
    from robust_labels.attacks import LOSSES, random_init
    from robust_labels.perturb import _per_sample
    x_adv = random_init(x, norm, eps, generator) if random_start else x.clone()
    lo, hi = (x - eps).clamp(min=0), (x + eps).clamp(max=1)
    sign = -1. if targeted else 1.
    with torch.enable_grad():
        for _ in range(steps):
            x_adv.requires_grad_(True)
            logits = model(x_adv)
            if num_classes is not None: logits = logits[:, :num_classes]
            grad, = torch.autograd.grad(sign * LOSSES[loss](logits, y).sum(), x_adv)
            with torch.no_grad():
                if norm == 'linf': x_adv = torch.clamp(x_adv + step * grad.sign(), lo, hi)
                else:
                    tiny = torch.finfo(x.dtype).tiny
                    delta = x_adv + step * grad / _per_sample(flat_norm(grad).clamp_min(tiny), x) - x
                    n = flat_norm(delta)
                    scale = torch.where(n > eps, eps / n.clamp_min(tiny), torch.ones_like(n))
                    x_adv = (x + delta * _per_sample(scale, x)).clamp(0, 1)
    return x_adv.detach()


def _rgb_net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(8 * 16, 13)).eval()


@pytest.mark.parametrize('norm,eps,step', [('linf', 8/255, 2/255), ('l2', 0.5, 0.1), ('l2', 0.3, 1/800)])
@pytest.mark.parametrize('kw', [{}, dict(targeted=True), dict(num_classes=10), dict(loss='cw'), dict(random_start=False),
                                dict(num_classes=10, loss='cw', targeted=True)])
@pytest.mark.parametrize('channels_last', [False, True])
def test_pgd_numbers_identical_to_the_reference(norm, eps, step, kw, channels_last):
    "Bit for bit the plain PGD, run by the reference in the same memory layout (channels-last: on a channels-last x)."
    net = _rgb_net()
    x, y = torch.rand(16, 3, 8, 8), torch.randint(0, 10, (16,))
    ours = pgd(net, x, y, norm, eps, step, 6, generator=torch.Generator().manual_seed(1), channels_last=channels_last,
               **kw)
    x_ref = x.contiguous(memory_format=torch.channels_last) if channels_last else x
    ref = _reference_pgd(net, x_ref, y, norm, eps, step, 6, torch.Generator().manual_seed(1), **kw)
    assert torch.equal(ours, ref) and ours.is_contiguous()


def test_pgd_memory_layout():
    "A conv net on the CPU is attacked on channels-last iterates by default, other models not; the output keeps x's layout."
    net, lin = _rgb_net(), nn.Sequential(nn.Flatten(), nn.Linear(3 * 64, 13)).eval()
    seen = []
    hook = lambda m, inp: seen.append(inp[0].is_contiguous(memory_format=torch.channels_last) and not inp[0].is_contiguous())
    for m in (net, lin): m.register_forward_pre_hook(hook)
    x, y = torch.rand(16, 3, 8, 8), torch.randint(0, 10, (16,))
    run = lambda model, x, **kw: pgd(model, x, y, 'linf', 8/255, 2/255, 2, generator=torch.Generator().manual_seed(1), **kw)
    layouts = []
    for model, kw in ((net, {}), (net, dict(channels_last=False)), (lin, {}), (lin, dict(channels_last=True))):
        seen.clear()
        out = run(model, x, **kw)
        layouts.append(seen[0])
        assert len(set(seen)) == 1 and out.is_contiguous()
    assert layouts == [True, False, False, True]
    cl = x.contiguous(memory_format=torch.channels_last)
    assert not run(net, cl).is_contiguous() and torch.equal(run(net, cl), run(net, x))
    with pytest.raises(ValueError, match='channels_last must be True, False or None'): run(net, x, channels_last=1.0)


def test_pgd_layouts_agree():
    "Channels-last and standard layout give the same attack up to float rounding: the same predictions, pixels alike."
    net = _rgb_net()
    x, y = torch.rand(256, 3, 8, 8), torch.randint(0, 13, (256,))
    a, b = (pgd(net, x, y, norm, eps, step, 10, generator=torch.Generator().manual_seed(2), channels_last=cl)
            for norm, eps, step in [('l2', 0.5, 0.1)] for cl in (False, True))
    torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
    a, b = (pgd(net, x, y, 'linf', 8/255, 2/255, 10, generator=torch.Generator().manual_seed(2), channels_last=cl)
            for cl in (False, True))
    assert ((a - b).abs() > 1e-6).float().mean() < 1e-3          # sign steps: a component within rounding of 0 may flip
    with torch.no_grad(): assert (net(a).argmax(1) != net(b).argmax(1)).sum() <= 1


# ---------------------------------------------------------------- issue 10 §4: the papers' protocols, named

def test_l2_random_start_radius_or_ball():
    from robust_labels.attacks import random_init
    x = torch.full((4000, 3, 8, 8), 0.5)
    r_ball = flat_norm(random_init(x, 'l2', 0.4, torch.Generator().manual_seed(0)) - x)
    r_radius = flat_norm(random_init(x, 'l2', 0.4, torch.Generator().manual_seed(0), how='radius') - x)
    assert r_ball.min() > 0.35                                   # uniform in a 192-d ball: radius ~ eps
    assert abs(float(r_radius.mean()) - 0.2) < 0.01 and r_radius.max() <= 0.4 + 1e-6   # torchattacks: U[0, eps]
    assert abs(float((r_radius < 0.1).float().mean()) - 0.25) < 0.03
    net = nn.Sequential(nn.Flatten(), nn.Linear(192, 10)).eval()
    xs, ys = torch.rand(8, 3, 8, 8), torch.randint(0, 10, (8,))
    run = lambda start, norm='l2': pgd(net, xs, ys, norm, 0.5, 0.1, 1, random_start=start,
                                       generator=torch.Generator().manual_seed(3))
    assert torch.equal(run(True), run('ball')) and not torch.equal(run('ball'), run('radius'))
    assert torch.equal(run('ball', 'linf'), run('radius', 'linf'))   # Linf: both libraries start uniform in the cube
    with pytest.raises(ValueError, match="random_start must be one of 'ball', 'radius'"): run('sphere')
    with pytest.raises(ValueError, match="random_start must be one of"): AttackConfig('x', 'l2', 0.5, 0.1, 1,
                                                                                      random_start='gauss')


def test_pgd_in_an_unbounded_space():
    net = nn.Sequential(nn.Flatten(), nn.Linear(12, 3)).eval()
    z = 3 * torch.randn(4, 3, 2, 2)                             # e.g. standardised inputs, outside [0, 1]
    y = torch.zeros(4, dtype=torch.long)
    with pytest.raises(ValueError, match='x must lie in'): pgd(net, z, y, 'l2', 1.0, 0.5, 3)
    out = pgd(net, z, y, 'l2', 1.0, 0.5, 3, bounds=None)
    assert (flat_norm(out - z) <= 1.0 + 1e-5).all() and (out < 0).any()
    with pytest.raises(ValueError, match='x must lie in bounds'): pgd(net, z, y, 'linf', 2.0, 0.5, 3, bounds=(-1., 1.))
    box = pgd(net, z.clamp(-1, 1), y, 'linf', 2.0, 0.5, 3, bounds=(-1., 1.))   # an Linf eps above 1 is fine there
    assert box.min() >= -1 and box.max() <= 1
    with pytest.raises(ValueError, match='bounds must have lo < hi'): pgd(net, z, y, 'l2', 1.0, 0.5, 3, bounds=(1, -1))


class _VirtualWins(nn.Module):
    "K = 3 real outputs and one virtual output that beats them exactly where the model predicts class 0."
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.lin = nn.Linear(12, 3)
        with torch.no_grad(): self.lin.bias[0] += 0.3
    def forward(self, x):
        z = self.lin(x.flatten(1))
        return torch.cat([z, z.amax(1, keepdim=True) + 10 * (z[:, :1] - z[:, 1:].amax(1, keepdim=True))], 1)


def test_autoattack_vs_official_protocol_leaves_virtual_wins_unattacked():
    m = _VirtualWins().eval()
    x = torch.rand(48, 3, 2, 2, generator=torch.Generator().manual_seed(0))
    with torch.no_grad(): y = m(x)[:, :3].argmax(1)
    zero = y == 0
    assert zero.sum() >= 5                                       # clean: all correct on the first K; class 0 via virtual
    run = partial(autoattack, m, x, y, 'linf', 0.3, num_classes=3, attacks=['apgd-ce'])
    ours, official = run(), run(protocol='vs-official')
    with torch.no_grad(): ok_ours, ok_vs = m(ours)[:, :3].argmax(1) == y, m(official)[:, :3].argmax(1) == y
    # the VS code's APGD-CE sees all K + V outputs: a point whose virtual output wins counts as already fooled, so it is
    # never attacked, yet the final check on the first K calls it correct; ours attacks it
    assert torch.equal(official[zero], x[zero]) and ok_vs[zero].all()
    assert not ok_ours[zero].all()
    assert ok_vs.float().mean() > ok_ours.float().mean()        # here the VS protocol reports the higher accuracy
    assert torch.equal(run(), run(protocol='ours'))            # the default is ours, unchanged
    with pytest.raises(ValueError, match="protocol must be one of 'ours', 'vs-official'"): run(protocol='vs')


def test_vs_official_wiring_and_unchanged_headers():
    from robust_labels.attacks import _describe
    m = _VirtualWins().eval()
    aa = AutoAttackPlus(m, num_classes=3, eps=0.1, norm='Linf', version='standard', seed=0, protocol='vs-official')
    assert aa.apgd.model is m and aa.square.predict is m and aa.apgd_targeted.model is m   # raw K + V outputs
    assert aa.apgd.n_restarts == 5 and aa.apgd_targeted.n_target_classes == 9               # APGD-CE keeps 5 restarts
    ours = AutoAttackPlus(m, num_classes=3, eps=0.1, norm='Linf', version='standard', seed=0)
    assert isinstance(ours.apgd.model, RealLogits) and ours.apgd.n_restarts == 1
    assert 'protocol' not in json.loads(_describe(get_attack('vs-autoattack')))              # saved headers stay valid
    assert json.loads(_describe(get_attack('vs-autoattack-official')))['protocol'] == 'vs-official'
