"Tests of robust_labels.labels: the label maths and the batch transforms."
import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st

from robust_labels.labels import (SPIDER, Compose, LabelSmoothing, OneHot, VirtualSmoothing, accuracy, one_hot,
                                  real_logits, smooth_targets, soft_cross_entropy, spider_confidence, spider_lambda,
                                  spider_targets, vs_ood_targets, vs_targets)
from robust_labels.perturb import flat_norm

classes = st.integers(2, 200)


@settings(max_examples=100, deadline=None)
@given(c=classes, tau=st.floats(0.01, 50), frac=st.floats(0, 1), z=st.floats(0, 1))
def test_spider_confidence_exact_values(c, tau, frac, z):
    "s = 1 on [0, tau/4], s(tau) = 1/c + xi, decreasing, and never below 1/c + xi on [0, tau]."
    xi = frac * (1 - 1 / c)
    s = lambda d: spider_confidence(torch.tensor([d], dtype=torch.float64), tau, xi, c).item()
    assert s(0.0) == 1.0 and s(tau / 4) == 1.0 and s(z * tau / 4) == 1.0
    assert math.isclose(s(tau), 1 / c + xi, rel_tol=1e-5, abs_tol=1e-6)
    zs = torch.linspace(0, tau, 50, dtype=torch.float64)
    v = spider_confidence(zs, tau, xi, c)
    assert (v[1:] <= v[:-1] + 1e-12).all()
    assert (v >= 1 / c + xi - 1e-6).all() and (v <= 1).all()


def test_spider_confidence_paper_figure5_settings():
    "Appendix E.2.1: s(tau) = 0.5 with xi = 0.4 for c = 10 and xi = 0.49 for c = 100."
    for c, xi in ((10, 0.4), (100, 0.49)):
        assert math.isclose(spider_confidence(torch.tensor([7.0]), 7.0, xi, c).item(), 0.5, rel_tol=1e-6)


def test_spider_lambda_formula():
    assert math.isclose(spider_lambda(8.0, 0.0, 10), math.log(10) / 6.0)
    assert spider_lambda(8.0, 0.9, 10) == 0.0
    assert spider_lambda(0.0, 0.1, 10) == math.inf


def test_spider_confidence_floor_beyond_tau_and_tau_zero():
    assert spider_confidence(torch.tensor([1e6]), 1.0, 0.0, 10).item() == pytest.approx(0.1)
    v = spider_confidence(torch.tensor([0.0, 0.5]), 0.0, 0.2, 10)
    assert v.tolist() == pytest.approx([1.0, 0.1])


@pytest.mark.parametrize("kw,msg", [(dict(tau=-1.0, xi=0.0, num_classes=10), "tau must be in"),
                                    (dict(tau=1.0, xi=0.95, num_classes=10), r"xi must be in \[0, 0.9\]"),
                                    (dict(tau=1.0, xi=-0.1, num_classes=10), "xi must be in"),
                                    (dict(tau=1.0, xi=0.0, num_classes=1), "num_classes must be an integer in")])
def test_spider_bad_arguments(kw, msg):
    with pytest.raises(ValueError, match=msg):
        spider_confidence(torch.tensor([0.5]), **kw)


@settings(max_examples=60, deadline=None)
@given(c=classes, n=st.integers(1, 20), seed=st.integers(0, 10_000), alpha=st.floats(0, 1), v=st.integers(1, 50))
def test_targets_sum_to_one(c, n, seed, alpha, v):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, c, (n,), generator=g)
    dist = torch.rand(n, generator=g) * 3
    for t in (one_hot(y, c), smooth_targets(y, c, alpha), spider_targets(y, dist, 3.0, 0.0, c),
              vs_targets(y, c, v, alpha), vs_ood_targets(n, c, v, alpha, 1), vs_ood_targets(n, c, v, alpha, 2)):
        assert (t >= 0).all()
        assert torch.allclose(t.sum(1), torch.ones(n), atol=1e-5)


@settings(max_examples=60, deadline=None)
@given(c=classes, v=st.integers(1, 50), alpha=st.floats(0, 1), seed=st.integers(0, 10_000))
def test_vs_targets_structure(c, v, alpha, seed):
    y = torch.randint(0, c, (7,), generator=torch.Generator().manual_seed(seed))
    t = vs_targets(y, c, v, alpha)
    assert t.shape == (7, c + v)
    assert torch.allclose(t[torch.arange(7), y], torch.full((7,), 1 - alpha))
    real = t[:, :c].clone()
    real[torch.arange(7), y] = 0
    assert (real == 0).all()                                  # wrong real classes get nothing
    assert torch.allclose(t[:, c:], torch.full((7, v), alpha / v))


def test_spider_targets_algorithm1():
    t = spider_targets(torch.tensor([2]), torch.tensor([6.0]), 6.0, 0.1, 5)
    assert t[0, 2].item() == pytest.approx(0.3)
    assert t[0, [0, 1, 3, 4]].tolist() == pytest.approx([0.175] * 4)


def test_spider_transform_labels_follow_applied_norm():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(256, 3, 8, 8, generator=g)
    x[:, :, :2] = 1.0                                         # many pixels at the bound: rescaling matters
    y = torch.randint(0, 10, (256,), generator=g)
    sp = SPIDER(10, tau=4.0, xi=0.3, generator=torch.Generator().manual_seed(1))
    xt, t = sp(x, y)
    assert xt.min() >= 0 and xt.max() <= 1
    dist = flat_norm(xt - x)
    assert dist.max() <= 4.0 + 1e-4
    assert torch.allclose(t[torch.arange(256), y], spider_confidence(dist, 4.0, 0.3, 10), atol=1e-6)
    assert torch.allclose(t.sum(1), torch.ones(256), atol=1e-6)


def test_spider_transform_reproducible_and_noise_options():
    x = torch.rand(16, 1, 8, 8)
    y = torch.arange(16) % 10
    a = SPIDER(10, 2.0, generator=torch.Generator().manual_seed(5))(x, y)
    b = SPIDER(10, 2.0, generator=torch.Generator().manual_seed(5))(x, y)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    for noise in ("gaussian", "ball", lambda x, g: torch.full_like(x, 0.01)):
        xt, t = SPIDER(10, 2.0, noise=noise)(x, y)
        assert xt.shape == x.shape and torch.allclose(t.sum(1), torch.ones(16), atol=1e-6)


def test_spider_no_ls_and_custom_smoothing():
    x, y = torch.rand(8, 4), torch.arange(8) % 3
    xt, t = SPIDER(3, 1.0, smoothing=False)(x, y)
    assert torch.equal(t, one_hot(y, 3)) and not torch.equal(xt, x)
    with pytest.raises(ValueError, match="smoothing must map dist to confidences in"):
        SPIDER(3, 1.0, smoothing=lambda d: torch.zeros_like(d))(x, y)
    with pytest.raises(ValueError, match=r"x must lie in \[0, 1\]"):
        SPIDER(3, 1.0)(x - 1, y)
    with pytest.raises(ValueError, match="y must hold classes"):
        SPIDER(3, 1.0)(x, y + 3)


def test_spider_on_soft_targets_after_mixup_like_transform():
    x = torch.rand(4, 6)
    soft = torch.tensor([[0.5, 0.5, 0.0]] * 4)
    _, t = SPIDER(3, 1.0, smoothing=lambda d: torch.full_like(d, 0.8))(x, soft)
    assert torch.allclose(t, torch.tensor([[0.5 * 0.8 + 0.5 * 0.2 / 2] * 2 + [0.2 / 2]] * 4), atol=1e-6)
    assert torch.allclose(t.sum(1), torch.ones(4))


def test_label_transforms_shapes_and_compose():
    x, y = torch.rand(5, 1, 8, 8), torch.tensor([0, 1, 2, 3, 4])
    assert OneHot(5)(x, y)[1].shape == (5, 5)
    assert LabelSmoothing(5, 0.1)(x, y)[1][0, 0].item() == pytest.approx(0.92)
    vs = VirtualSmoothing(5, 3, 0.3)
    assert vs.num_outputs == 8 and vs(x, y)[1].shape == (5, 8)
    pipe = Compose(lambda x, y: (x.flip(-1), y), vs)
    xo, t = pipe(x, y)
    assert torch.equal(xo, x.flip(-1)) and pipe.num_outputs == 8
    with pytest.raises(TypeError, match="transforms must be callables"):
        Compose(3)


def test_soft_cross_entropy_and_real_logits():
    g = torch.Generator().manual_seed(0)
    logits, y = torch.randn(6, 7, generator=g), torch.randint(0, 4, (6,), generator=g)
    t = vs_targets(y, 4, 3, 0.2)
    ref = -(t * logits.log_softmax(1)).sum(1).mean()
    assert torch.allclose(soft_cross_entropy(logits, t), ref)
    assert torch.allclose(soft_cross_entropy(logits[:, :4], one_hot(y, 4)), F.cross_entropy(logits[:, :4], y))
    assert real_logits(logits, 4).shape == (6, 4)
    assert accuracy(logits, y, 4) == (logits[:, :4].argmax(1) == y).float().mean().item()
    with pytest.raises(ValueError, match="targets must have the logits' shape"):
        soft_cross_entropy(logits, t[:, :4])
    with pytest.raises(ValueError, match="num_classes must be at most the number of logits 7"):
        real_logits(logits, 8)


def test_vs_ood_variants_and_errors():
    assert torch.allclose(vs_ood_targets(2, 4, 2, 0.2, 1)[0], torch.tensor([0.2, 0.2, 0.2, 0.2, 0.1, 0.1]))
    assert torch.allclose(vs_ood_targets(2, 4, 2, 0.2, 2)[0], torch.tensor([0, 0, 0, 0, 0.5, 0.5]))
    with pytest.raises(ValueError, match="variant must be one of 1, 2"):
        vs_ood_targets(2, 4, 2, 0.2, 3)
    with pytest.raises(ValueError, match="alpha must be in"):
        VirtualSmoothing(4, 2, 1.5)
    with pytest.raises(ValueError, match="num_virtual must be an integer in"):
        VirtualSmoothing(4, 0, 0.5)


# ------------------------------------------------------------------ bad inputs that used to give silent wrong results

def _transforms():
    return {'onehot': OneHot(3), 'ls': LabelSmoothing(3, 0.1), 'vs': VirtualSmoothing(3, 2, 0.2),
            'spider': SPIDER(3, 1.0, generator=torch.Generator().manual_seed(0)),
            'spider-nols': SPIDER(3, 1.0, smoothing=False, generator=torch.Generator().manual_seed(0))}


@pytest.mark.parametrize('bad', [float('nan'), float('inf'), -float('inf')])
def test_spider_refuses_images_that_are_not_finite(bad):
    "A NaN or inf pixel used to give all-NaN targets; now a ValueError naming x."
    x = torch.rand(4, 1, 8, 8)
    x[2, 0, 3, 3] = bad
    with pytest.raises(ValueError, match='^x must'):
        SPIDER(10, 1.0)(x, torch.tensor([0, 1, 2, 3]))


@pytest.mark.parametrize('name', list(_transforms()))
@pytest.mark.parametrize('nx, ny', [(1, 4), (4, 1), (4, 3)])
def test_label_transforms_refuse_batches_of_other_sizes(name, nx, ny):
    "x and y of batch sizes 1 and N used to broadcast; every label transform now refuses them, naming both sizes."
    x, y = torch.rand(nx, 1, 4, 4), torch.arange(ny) % 3
    with pytest.raises(ValueError, match=f'y must have one label or row per image of x .*{nx}.*{ny}'):
        _transforms()[name](x, y)
    with pytest.raises(ValueError, match='y must have one label or row per image of x'):
        _transforms()[name](x, one_hot(y, 3))


BAD_ROWS = {'negative': [[1.2, -0.2, 0.0]], 'sum 0.9': [[0.5, 0.4, 0.0]], 'sum 1.1': [[0.6, 0.5, 0.0]],
            'nan': [[float('nan'), 0.5, 0.5]]}


@pytest.mark.parametrize('name', list(_transforms()))
@pytest.mark.parametrize('rows', list(BAD_ROWS))
def test_label_transforms_refuse_soft_targets_that_are_not_distributions(name, rows):
    "Soft targets with negative entries or rows not summing to 1 used to pass; now a ValueError naming y."
    y = torch.tensor(BAD_ROWS[rows] * 2)
    with pytest.raises(ValueError, match='y must hold probability rows'):
        _transforms()[name](torch.rand(2, 1, 4, 4), y)


@pytest.mark.parametrize('rows', list(BAD_ROWS))
def test_soft_cross_entropy_refuses_targets_that_are_not_distributions(rows):
    with pytest.raises(ValueError, match='targets must hold probability rows'):
        soft_cross_entropy(torch.randn(2, 3), torch.tensor(BAD_ROWS[rows] * 2))


def test_valid_soft_targets_within_tolerance_pass_unchanged():
    "Rows off by float rounding (< 1e-4) still pass, and valid results are the same tensors as before."
    y = torch.tensor([[0.7, 0.3 + 5e-5, 0.0], [0.0, 0.0, 1.0]])
    _, t = OneHot(3)(torch.rand(2, 1, 4, 4), y)
    assert torch.equal(t, y)
    lg = torch.randn(2, 3)
    assert torch.equal(soft_cross_entropy(lg, y), F.cross_entropy(lg, y))
    x = torch.rand(5, 1, 8, 8)
    a = SPIDER(10, 1.0, 0.2, generator=torch.Generator().manual_seed(3))(x, torch.arange(5))
    g = torch.Generator().manual_seed(3)
    from robust_labels.perturb import clip_rescale, sphere_noise
    d = sphere_noise(x, 1.0, g)
    xt = clip_rescale(x, d, flat_norm(d))
    assert torch.equal(a[0], xt)
    assert torch.equal(a[1], spider_targets(torch.arange(5), flat_norm(xt - x), 1.0, 0.2, 10))
