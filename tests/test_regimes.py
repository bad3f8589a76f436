"Tests of robust_labels.regimes: AT, TRADES, AWP, RST, KD, ARD, OE and SSL as fit losses, with VS labels, resume and bad input."
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from robust_labels.attacks import pgd, robust_accuracy
from robust_labels.core import make_generator
from robust_labels.data import get_dataset
from robust_labels.labels import LabelSmoothing, OneHot, VirtualSmoothing, soft_cross_entropy
from robust_labels.models import create_model
from robust_labels.regimes import (ARD, AT, AWP, DIGITS_THREAT, KD, OE, RST, SSL, TRADES, Regime, _Pool,
                                   image_tensors, kl_rows, load_images, oe_targets, pseudo_label,
                                   shuffled_pixels, true_class)
from robust_labels.train import evaluate, fit, get_recipe

EPS = DIGITS_THREAT['eps']


@pytest.fixture(scope='module')
def digits():
    return tuple(get_dataset('digits', s) for s in ('train', 'val', 'test'))


@pytest.fixture(scope='module')
def outliers(digits):
    return shuffled_pixels(digits[0].tensors[0], make_generator(0))


def _cnn(seed=0, v=0, k=10):
    torch.manual_seed(seed)
    return create_model('cnn', k, num_virtual=v, in_channels=1)


@pytest.fixture(scope='module')
def teacher(digits):
    "A standard CNN (one-hot labels), used as the RST pseudo-labeller and a distillation teacher."
    m = _cnn(1)
    fit(m, digits[0], digits[1], get_recipe('smoke', epochs=4), progress=False)
    return m


@pytest.fixture(scope='module')
def vs_teacher(digits):
    m = _cnn(2, v=10)
    fit(m, digits[0], digits[1], get_recipe('smoke', epochs=5), labels=VirtualSmoothing(10, 10, 0.5), progress=False)
    return m


def _pgd10(model, x, y, num_classes=None, generator=None):
    return pgd(model, x, y, 'linf', EPS, EPS / 4, 10, num_classes=num_classes, generator=generator)


# ------------------------------------------------------------------ learning

def test_adversarial_training_raises_pgd_accuracy(digits):
    train, val, test = digits
    x, y = test.tensors
    std, at = _cnn(), _cnn()
    fit(std, train, val, get_recipe('smoke', epochs=4), progress=False)
    fit(at, train, val, get_recipe('smoke', epochs=4), loss_fn=AT(**DIGITS_THREAT), progress=False)
    rob_std = robust_accuracy(std, x, y, _pgd10, num_classes=10)
    rob_at = robust_accuracy(at, x, y, _pgd10, num_classes=10)
    assert evaluate(at, test) > 90
    assert rob_at > rob_std + 0.25, (rob_std, rob_at)


def _regime_cases():
    vs = VirtualSmoothing(10, 10, 0.3)
    return {
        'AT_VS': lambda o, t, tv, val: (10, vs, AT(**DIGITS_THREAT)),
        'AT_VS_hard': lambda o, t, tv, val: (10, vs, AT(attack_labels='hard', **DIGITS_THREAT)),
        'TRADES_VS': lambda o, t, tv, val: (10, vs, TRADES(beta=6.0, **DIGITS_THREAT)),
        'AWP_VS': lambda o, t, tv, val: (10, vs, AWP(TRADES(beta=6.0, **DIGITS_THREAT), gamma=0.01)),
        'RST_VS': lambda o, t, tv, val: (10, vs, RST(TRADES(**DIGITS_THREAT), val, labels=vs, teacher=t)),
        'KD': lambda o, t, tv, val: (0, None, KD(tv, temperature=4.0, gamma=0.5)),
        'ARD': lambda o, t, tv, val: (0, None, ARD(t, **DIGITS_THREAT)),
        'OE_VS2': lambda o, t, tv, val: (10, VirtualSmoothing(10, 10, 0.05), OE(o, 10, num_virtual=10, alpha=0.05, variant=2)),
        'OE_LS': lambda o, t, tv, val: (0, LabelSmoothing(10, 0.05), OE(o, 10)),
    }


@pytest.mark.parametrize('name', list(_regime_cases()))
def test_each_regime_learns_digits(name, digits, outliers, teacher, vs_teacher):
    train, val, test = digits
    v, labels, regime = _regime_cases()[name](outliers, teacher, vs_teacher, val)
    m = _cnn(3, v=v)
    r = fit(m, train, val, get_recipe('smoke', epochs=3), labels=labels, loss_fn=regime, progress=False)
    assert r.history[-1]['train_loss'] < r.history[0]['train_loss']
    assert evaluate(m, test) > 80          # chance is 10%


def test_ssl_with_vs_learns_and_detects(digits, outliers):
    train, val, test = digits
    lab = VirtualSmoothing(20, 10, 0.05)          # K = 10 classes, R = 10 reject classes, V = 10 VS classes
    m = _cnn(4, k=20, v=10)
    r = fit(m, train, val, get_recipe('smoke', epochs=5), labels=lab, loss_fn=SSL(outliers, lab, num_classes=10),
            num_classes=10, progress=False)
    assert r.history[-1]['train_loss'] < r.history[0]['train_loss']
    assert evaluate(m, test, 10) > 80
    x = test.tensors[0]
    with torch.no_grad():
        out = shuffled_pixels(x, make_generator(5))
        real_in = F.softmax(m(x)[:, :20], 1)[:, :10].sum(1)
        real_out = F.softmax(m(out)[:, :20], 1)[:, :10].sum(1)
    assert real_in.mean() > 0.8 and real_out.mean() < 0.2


def test_kd_with_perfect_teacher_reproduces_its_predictions(digits, vs_teacher):
    train, val, test = digits
    x = test.tensors[0]
    student = _cnn(6)
    fit(student, train, val, get_recipe('smoke', epochs=6, lr=0.03), loss_fn=KD(vs_teacher, temperature=4.0, gamma=1.0),
        progress=False)
    with torch.no_grad():
        agree = (student(x).argmax(1) == vs_teacher(x)[:, :10].argmax(1)).float().mean().item()
    assert agree > 0.95


# ------------------------------------------------------------------ the losses themselves

def test_kd_loss_is_the_interpolation_on_first_k_logits(vs_teacher):
    torch.manual_seed(0)
    student, x = _cnn(7, v=3), torch.rand(8, 1, 8, 8)
    targets = VirtualSmoothing(10, 3, 0.2).targets(torch.arange(8))
    kd = KD(vs_teacher, temperature=3.0, gamma=0.25)
    s = student(x)
    with torch.no_grad(): t = vs_teacher(x)[:, :10]
    manual = (0.75 * soft_cross_entropy(s, targets)
              + 0.25 * 9 * (F.softmax(t / 3, 1) * (F.log_softmax(t / 3, 1) - F.log_softmax(s[:, :10] / 3, 1))).sum(1).mean())
    assert torch.allclose(kd(student, x, targets), manual, atol=1e-5)
    assert kd.teacher_logits(x).shape == (8, 10)


def test_trades_objective_and_attack():
    torch.manual_seed(0)
    m, x = _cnn(8, v=10), torch.rand(16, 1, 8, 8)
    targets = VirtualSmoothing(10, 10, 0.3).targets(torch.arange(16) % 10)
    reg = TRADES(beta=2.0, **DIGITS_THREAT)
    x_adv = reg.attack(m, x, targets)
    assert (x_adv - x).abs().max() <= EPS + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1
    logits = m(x)
    manual = soft_cross_entropy(logits, targets) + 2.0 * kl_rows(F.softmax(logits, 1), m(x_adv)).mean()
    assert torch.allclose(reg.objective(m, x, x_adv, targets), manual, atol=1e-6)
    # the attack increases the KL over all K + V outputs well beyond a random point of the ball
    with torch.no_grad():
        p = F.softmax(m(x), 1)
        rand = (x + (2 * torch.rand(x.shape, generator=make_generator(1)) - 1) * EPS).clamp(0, 1)
        assert kl_rows(p, m(x_adv)).mean() > 2 * kl_rows(p, m(rand)).mean()


def test_at_attack_maximises_cross_entropy_on_vs_rows(vs_teacher, digits):
    x, y = digits[2].tensors
    x, y = x[:64], y[:64]
    t = VirtualSmoothing(10, 10, 0.5).targets(y)
    for mode in ('soft', 'hard'):
        x_adv = AT(attack_labels=mode, **DIGITS_THREAT).attack(vs_teacher, x, t)
        assert x_adv.shape == x.shape and (x_adv - x).abs().max() <= EPS + 1e-6
        with torch.no_grad():
            assert soft_cross_entropy(vs_teacher(x_adv), t) > soft_cross_entropy(vs_teacher(x), t) + 0.5


def test_awp_perturbs_each_layer_by_gamma_and_restores():
    torch.manual_seed(0)
    m, x, y = _cnn(9), torch.rand(16, 1, 8, 8), torch.arange(16) % 10
    before = {k: v.clone() for k, v in m.state_dict().items()}
    awp = AWP(TRADES(**DIGITS_THREAT), gamma=0.02)
    awp(m, x, OneHot(10).targets(y))
    for n, p in m.named_parameters():
        if p.dim() > 1: assert ((p - before[n]).norm() / before[n].norm()).item() == pytest.approx(0.02, rel=1e-3)
        else: assert torch.equal(p, before[n])          # biases are not perturbed
    awp.after_step(m)
    assert all(torch.allclose(m.state_dict()[k], before[k], atol=1e-6) for k in before)
    assert awp.steps == 1
    restored = {k: v.clone() for k, v in m.state_dict().items()}
    warm = AWP(TRADES(**DIGITS_THREAT), gamma=0.02, warmup=1)     # no perturbation during the warm-up
    warm(m, x, OneHot(10).targets(y))
    assert all(torch.equal(m.state_dict()[k], restored[k]) for k in restored)


# ------------------------------------------------------------------ VS shapes

def test_vs_variants_make_the_right_target_shapes(outliers, digits):
    K, V, R = 10, 10, 10
    assert oe_targets(5, K).shape == (5, K) and torch.allclose(oe_targets(5, K), torch.full((5, K), 0.1))
    vs1, vs2 = oe_targets(5, K, V, 0.05, 1), oe_targets(5, K, V, 0.05, 2)
    assert vs1.shape == vs2.shape == (5, K + V)
    assert torch.allclose(vs1[0], torch.tensor([0.095] * K + [0.005] * V)) and torch.allclose(vs2[0], torch.tensor([0.] * K + [0.1] * V))
    # RST: labelled and pseudo-labelled rows, both K + V wide
    seen = []
    base = lambda m, x, t: seen.append((tuple(x.shape), tuple(t.shape), t[:, K:].sum(1))) or torch.zeros(())
    val = digits[1]
    rst = RST(base, val, labels=VirtualSmoothing(K, V, 0.4), pseudo_labels=val.tensors[1])
    x, y = digits[2].tensors
    rst(None, x[:20], VirtualSmoothing(K, V, 0.4).targets(y[:20]))
    assert seen[0][:2] == ((40, 1, 8, 8), (40, K + V)) and torch.allclose(seen[0][2], torch.full((40,), 0.4))
    # SSL: outlier rows over K real + R reject ordinary classes and V virtual ones, labelled in a reject class
    lab = VirtualSmoothing(K + R, V, 0.05)
    ssl = SSL(outliers, lab, num_classes=K)
    rows = lab.targets(ssl.reject_labels(torch.randn(6, K + R + V)))
    assert rows.shape == (6, K + R + V)
    assert (true_class(rows, K + R) >= K).all() and torch.allclose(rows[:, K + R:].sum(1), torch.full((6,), 0.05))
    # a model whose head does not fit the rows is refused with a clear message
    with pytest.raises(ValueError, match='outputs but the outlier rows have'):
        OE(outliers, K, num_virtual=V)(_cnn(), x[:4], OneHot(K).targets(y[:4]))


# ------------------------------------------------------------------ checkpoints and resume

def _resume_cases():
    vs = VirtualSmoothing(10, 10, 0.3)
    return {
        'AT': lambda o, t, val: (10, vs, AT(generator=make_generator(1), **DIGITS_THREAT)),
        'AWP_TRADES': lambda o, t, val: (10, vs, AWP(TRADES(generator=make_generator(2), **DIGITS_THREAT), gamma=0.01, warmup=4)),
        'RST': lambda o, t, val: (10, vs, RST(AT(**DIGITS_THREAT), val, labels=vs, teacher=t, seed=3)),
        'ARD': lambda o, t, val: (0, None, ARD(t, generator=make_generator(4), **DIGITS_THREAT)),
        'OE': lambda o, t, val: (10, vs, OE(o, 10, num_virtual=10, alpha=0.3, seed=5)),
        'SSL': lambda o, t, val: (10, VirtualSmoothing(20, 10, 0.05), SSL(o, VirtualSmoothing(20, 10, 0.05), num_classes=10, seed=6)),
    }


@pytest.mark.parametrize('name', list(_resume_cases()))
def test_regime_resumes_to_the_same_weights(name, digits, outliers, teacher, tmp_path):
    train, val, _ = digits
    part = (train.tensors[0][:256], train.tensors[1][:256])

    def run(ckdir, stop_after=None, resume=False):
        v, labels, regime = _resume_cases()[name](outliers, teacher, val)
        k = 20 if name == 'SSL' else 10
        model = _cnn(11, v=v, k=k)

        def stop(rec):
            if stop_after and rec['epoch'] == stop_after: raise KeyboardInterrupt
        try:
            fit(model, part, val, get_recipe('smoke', epochs=3), labels=labels, loss_fn=regime, num_classes=10,
                checkpoint_dir=ckdir, resume=resume, seed=2, progress=False, callback=stop, restore_best=False)
        except KeyboardInterrupt:
            pass
        return model

    straight = run(tmp_path / 'a')
    run(tmp_path / 'b', stop_after=1)
    resumed = run(tmp_path / 'b', resume=True)
    assert all(torch.equal(a, b) for a, b in zip(straight.state_dict().values(), resumed.state_dict().values()))


def test_states_load_with_weights_only_and_replay(outliers, tmp_path):
    oe = OE(outliers, 10, seed=1)
    oe.pool.indices(100)
    path = tmp_path / 'state.pt'
    torch.save(oe.state_dict(), path)
    state = torch.load(path, weights_only=True)
    ahead = oe.pool.indices(50)
    fresh = OE(outliers, 10, seed=1)
    fresh.load_state_dict(state)
    assert torch.equal(fresh.pool.indices(50), ahead)
    awp = AWP(TRADES(generator=make_generator(0)))
    torch.save(awp.state_dict(), path)
    AWP(TRADES(generator=make_generator(0))).load_state_dict(torch.load(path, weights_only=True))


def test_load_state_dict_refuses_another_regime_or_pool(outliers):
    with pytest.raises(ValueError, match="state of regime 'AT', not 'TRADES'"):
        TRADES().load_state_dict(AT().state_dict())
    with pytest.raises(ValueError, match='pool of 1151 images, this one has 10'):
        OE(outliers[:10], 10).load_state_dict(OE(outliers, 10).state_dict())
    with pytest.raises(ValueError, match='disagree on whether'):
        AT().load_state_dict(AT(generator=make_generator(0)).state_dict())


def test_rst_with_a_plain_loss_function_checkpoints(digits, outliers):
    from robust_labels.train import standard_loss
    rst = RST(standard_loss, outliers, OneHot(10), pseudo_labels=torch.zeros(len(outliers), dtype=torch.long), seed=1)
    state = rst.state_dict()
    assert set(state) == {'regime', 'own', 'pool'}
    rst.load_state_dict(state)
    x, y = digits[2].tensors
    assert rst(_cnn(), x[:8], OneHot(10).targets(y[:8])).ndim == 0


def test_pool_without_replacement_visits_every_image_once_per_pass():
    p = _Pool(torch.zeros(7, 1, 2, 2), seed=0, replacement=False)
    first, second = p.indices(7), p.indices(7)
    assert sorted(first.tolist()) == sorted(second.tolist()) == list(range(7))
    assert not torch.equal(first, second)


# ------------------------------------------------------------------ data helpers

def test_pseudo_label_is_the_teachers_argmax(teacher, digits):
    x = digits[1].tensors[0]
    with torch.no_grad(): want = teacher(x).argmax(1)
    assert torch.equal(pseudo_label(teacher, digits[1], batch_size=7), want)


def test_load_images_npy_and_npz(tmp_path):
    rng = np.random.default_rng(0)
    nhwc = rng.integers(0, 256, (5, 4, 4, 3), dtype=np.uint8)
    np.save(tmp_path / 'a.npy', nhwc)
    x, y = load_images(tmp_path / 'a.npy')
    assert x.shape == (5, 3, 4, 4) and x.dtype == torch.uint8 and y is None
    assert torch.equal(x.permute(0, 2, 3, 1), torch.from_numpy(nhwc))
    np.savez(tmp_path / 'b.npz', data=nhwc, extrapolated_targets=np.arange(5))
    x, y = load_images(tmp_path / 'b.npz')
    assert x.shape == (5, 3, 4, 4) and torch.equal(y, torch.arange(5))
    with pytest.raises(ValueError, match='pickles are not loaded'):
        load_images(tmp_path / 'c.pickle')
    with pytest.raises(FileNotFoundError):
        load_images(tmp_path / 'missing.npy')
    xo, _ = image_tensors(tmp_path / 'a.npy', 'outliers')
    assert xo.shape == (5, 3, 4, 4)


def test_shuffled_pixels_keeps_each_images_values():
    x = torch.rand(6, 3, 5, 5)
    s = shuffled_pixels(x, make_generator(0))
    assert torch.equal(s.flatten(2).sort(2).values, x.flatten(2).sort(2).values)
    assert torch.equal(s, shuffled_pixels(x, make_generator(0))) and not torch.equal(s, x)
    # one permutation per image, shared by its channels
    x2 = torch.cat([x[:, :1], x[:, :1] / 2], 1)
    s2 = shuffled_pixels(x2, make_generator(1))
    assert torch.equal(s2[:, 1], s2[:, 0] / 2)


# ------------------------------------------------------------------ bad input

@pytest.mark.parametrize('make, match', [
    (lambda t, o: TRADES(beta=-1.0), 'beta must be in'),
    (lambda t, o: AT(eps=-0.1), 'eps must be in'),
    (lambda t, o: TRADES(eps=-8 / 255), 'eps must be in'),
    (lambda t, o: ARD(t, eps=-0.03), 'eps must be in'),
    (lambda t, o: AT(step=0), 'step must be in'),
    (lambda t, o: AT(attack_labels='vs'), "attack_labels must be one of 'soft', 'hard'"),
    (lambda t, o: KD(t, temperature=0), 'temperature must be in'),
    (lambda t, o: KD(t, temperature=-2.0), 'temperature must be in'),
    (lambda t, o: ARD(t, temperature=0.0), 'temperature must be in'),
    (lambda t, o: KD(t, gamma=-0.1), 'gamma must be in'),
    (lambda t, o: KD(t, num_classes=100), 'the teacher has 10 real classes but num_classes is 100'),
    (lambda t, o: KD(torch.nn.Linear(2, 2)), 'num_classes must be given'),
    (lambda t, o: AWP(TRADES(), gamma=-1), 'gamma must be in'),
    (lambda t, o: OE(torch.zeros(0, 1, 8, 8), 10), 'outliers must hold at least one image'),
    (lambda t, o: SSL(torch.zeros(0, 1, 8, 8), OneHot(20), 10), 'outliers must hold at least one image'),
    (lambda t, o: OE(o, 10, lam=-0.5), 'lam must be in'),
    (lambda t, o: OE(o, 10, num_virtual=10, alpha=0.1, variant=3), 'variant must be one of 1, 2'),
    (lambda t, o: SSL(o, OneHot(10), 10), 'at least one reject class'),
    (lambda t, o: RST(TRADES(), o, OneHot(10)), 'needs a teacher'),
    (lambda t, o: RST(TRADES(), o, OneHot(10), teacher=t, unsup_fraction=1.0), 'unsup_fraction must be in'),
    (lambda t, o: RST(TRADES(), o, OneHot(10), pseudo_labels=torch.zeros(3, dtype=torch.long)), 'one label per unlabelled image'),
    (lambda t, o: RST(TRADES(), o, OneHot(10), pseudo_labels=torch.full((len(o),), 10)), 'pseudo_labels must hold classes'),
])
def test_bad_arguments_raise_value_error_naming_them(make, match, teacher, outliers):
    with pytest.raises(ValueError, match=match):
        make(teacher, outliers)


def test_student_with_other_number_of_classes_is_refused(teacher):
    with pytest.raises(ValueError, match='the teacher has 10 real classes but the student has 5'):
        KD(teacher, 4.0, 1.0)(_cnn(k=5), torch.rand(4, 1, 8, 8), torch.eye(5)[:4])
    with pytest.raises(ValueError, match='but the student has 5'):
        ARD(teacher, **DIGITS_THREAT)(_cnn(k=5), torch.rand(4, 1, 8, 8), torch.eye(5)[:4])


def test_regime_recipes():
    from robust_labels.train import RECIPES, get_recipe
    assert RECIPES['vs-ard-mobilenetv2'].weight_decay == 2e-4
    assert RECIPES['vs-ard'].milestones == (150, 180) and RECIPES['vs-ard'].epochs == 200
    assert RECIPES['oe-tune'].lr == 0.001 and RECIPES['oe-tune'].nesterov
    assert get_recipe('vs-at').milestones == (150, 155)
    assert get_recipe('vs-rst', epochs=2).epochs == 2
    with pytest.raises(ValueError, match='recipe must be one of'):
        get_recipe('nope')
    assert isinstance(AT(), Regime) and 'AT(' in repr(AT())
