"Tests of robust_labels.metrics: ECE, boundary thickness, flatness, OOD scores and feature views."
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st
from torch import nn

from robust_labels import metrics
from robust_labels.core import make_generator
from robust_labels.metrics import (auroc, boundary_thickness, calibration_bins, expected_calibration_error, flatness,
                                   fpr_at_95_tpr, input_gradients, msp_score, penultimate_projection, real_probs,
                                   reject_score, segment_profile, segment_thickness, template_plane, virtual_mass_score)


class TinyNet(nn.Module):
    "Conv + BatchNorm + a linear head, with `features` and `head` like robust_labels.models."
    def __init__(self, outputs=4, channels=1):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(channels, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                                  nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(16, 8), nn.ReLU())
        self.head = nn.Linear(8, outputs)
    def features(self, x): return self.body(x)
    def forward(self, x): return self.head(self.features(x))


def tiny_net(outputs=4, seed=0, dtype=torch.float32):
    torch.manual_seed(seed)
    net = TinyNet(outputs).to(dtype)
    with torch.no_grad():  # non-trivial BN statistics
        net.body[1].running_mean.uniform_(-0.5, 0.5); net.body[1].running_var.uniform_(0.5, 2.0)
    return net.eval()


# ---------------------------------------------------------------- calibration

def test_ece_perfectly_calibrated_is_zero():
    probs = torch.tensor([[0.75, 0.25]] * 4 + [[0.2, 0.8]] * 5, dtype=torch.float64)
    y = torch.tensor([0, 0, 0, 1] + [1, 1, 1, 1, 0])
    assert expected_calibration_error(probs, y) == pytest.approx(0.0, abs=1e-12)


def test_ece_hand_computation():
    # bins of width 1/4: (.5,.75] holds {0.6 right, 0.7 wrong}, (.75,1] holds {0.9 right, 0.9 wrong, 1.0 right}
    probs = torch.tensor([[0.6, 0.4], [0.3, 0.7], [0.9, 0.1], [0.1, 0.9], [1.0, 0.0]], dtype=torch.float64)
    y = torch.tensor([0, 0, 0, 0, 0])
    assert expected_calibration_error(probs, y, n_bins=4) == pytest.approx(2 / 5 * 0.15 + 3 / 5 * (14 / 15 - 2 / 3))
    bins = calibration_bins(probs, y, n_bins=4)
    assert bins['count'].tolist() == [0, 0, 2, 3]
    assert bins['accuracy'][3] == pytest.approx(2 / 3) and bins['confidence'][2] == pytest.approx(0.65)


def test_ece_bins_closed_on_the_right():
    probs = torch.tensor([[0.5, 0.5], [0.75, 0.25]], dtype=torch.float64)
    bins = calibration_bins(probs, torch.tensor([0, 0]), n_bins=4)
    assert bins['count'].tolist() == [0, 1, 1, 0]  # 0.5 in (.25, .5], 0.75 in (.5, .75]


def test_ece_always_wrong_and_sure_is_one():
    assert expected_calibration_error(torch.tensor([[0.0, 1.0]] * 3), torch.tensor([0, 0, 0])) == pytest.approx(1.0)


def test_ece_equals_torchmetrics():
    tm = pytest.importorskip('torchmetrics.functional.classification')
    g = make_generator(0)
    for n_bins in (1, 5, 15, 40):
        probs = torch.softmax(torch.randn(300, 6, generator=g) * 2.5, 1)
        y = torch.randint(0, 6, (300,), generator=g)
        ours = expected_calibration_error(probs, y, n_bins=n_bins)
        theirs = tm.multiclass_calibration_error(probs, y, 6, n_bins=n_bins).item()
        assert ours == pytest.approx(theirs, abs=1e-6)


def test_ece_differs_from_torchmetrics_only_at_confidence_one():
    tm = pytest.importorskip('torchmetrics.functional.classification')
    probs, y = torch.tensor([[0.8, 0.2], [1.0, 0.0]]), torch.tensor([0, 1])
    assert expected_calibration_error(probs, y, n_bins=4) == pytest.approx(0.4)
    assert tm.multiclass_calibration_error(probs, y, 2, n_bins=4).item() == pytest.approx(0.6)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 60), st.integers(2, 6), st.integers(0, 10_000))
def test_ece_one_bin_is_gap_of_means(n, c, seed):
    g = make_generator(seed)
    probs = torch.softmax(torch.randn(n, c, generator=g, dtype=torch.float64) * 3, 1)
    y = torch.randint(0, c, (n,), generator=g)
    conf, pred = probs.max(1)
    expected = abs((pred == y).double().mean() - conf.mean()).item()
    assert expected_calibration_error(probs, y, n_bins=1) == pytest.approx(expected, abs=1e-12)
    assert 0.0 <= expected_calibration_error(probs, y, n_bins=15) <= 1.0


@pytest.mark.parametrize('probs, y, n_bins, message', [
    (torch.randn(4, 3), torch.zeros(4, dtype=torch.long), 15, 'probs must hold probabilities in [0, 1]'),
    (torch.full((4, 3), 0.5), torch.zeros(4, dtype=torch.long), 15, 'probs rows must sum to 1'),
    (torch.full((4, 2), 0.5), torch.zeros(4, dtype=torch.long), 0, 'n_bins must be an integer in [1, inf)'),
    (torch.full((4, 2), 0.5), torch.tensor([0, 1, 2, 0]), 15, 'y must hold classes in [0, 2)'),
    (torch.full((4, 2), 0.5), torch.zeros(3, dtype=torch.long), 15, 'y must hold one label per row'),
    (torch.full((4,), 0.25), torch.zeros(4, dtype=torch.long), 15, 'probs must be a 2-d tensor'),
])
def test_ece_bad_arguments(probs, y, n_bins, message):
    with pytest.raises(ValueError, match=message.replace('[', r'\[').replace(')', r'\)').replace('(', r'\(')):
        expected_calibration_error(probs, y, n_bins=n_bins)


def test_reliability_diagram_draws_one_bar_and_one_gap_per_bin():
    import matplotlib; matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    probs = torch.softmax(torch.randn(100, 4, generator=make_generator(0)), 1)
    y = torch.randint(0, 4, (100,), generator=make_generator(1))
    fig = metrics.reliability_diagram(probs, y, n_bins=10)
    full = (calibration_bins(probs, y, 10)['count'] > 0).sum()
    assert len(fig.axes[0].patches) == 2 * full
    assert f"{expected_calibration_error(probs, y, 10):.4f}" in fig.axes[0].get_title()
    plt.close(fig)


def test_real_probs_use_first_k_logits():
    logits = torch.tensor([[1.0, 2.0, 9.0, 9.0]])
    torch.testing.assert_close(real_probs(logits, 2), torch.softmax(logits[:, :2], 1))
    with pytest.raises(ValueError, match='num_classes must be at most'):
        real_probs(logits, 5)


# ---------------------------------------------------------------- boundary thickness

def _linear_case(n=8, seed=0):
    torch.manual_seed(seed)
    lin = nn.Linear(5, 2).double()
    xa, xb = torch.randn(n, 5, dtype=torch.float64), torch.randn(n, 5, dtype=torch.float64) * 3
    w, b = (lin.weight[0] - lin.weight[1]).detach(), (lin.bias[0] - lin.bias[1]).detach()
    return lin, xa, xb, xa @ w + b, (xb - xa) @ w


@pytest.mark.parametrize('alpha, beta', [(0.0, 0.75), (0.0, 1.0), (-0.5, 0.5), (-1.0, 1.0)])
def test_thickness_of_two_class_linear_model_is_exact(alpha, beta):
    # g_01 = p_0 - p_1 = tanh(z / 2) with z(t) = a + c t: alpha < g < beta  <=>  2 atanh(alpha) < z < 2 atanh(beta)
    lin, xa, xb, a, c = _linear_case()
    i, j = torch.zeros(len(xa), dtype=torch.long), torch.ones(len(xa), dtype=torch.long)
    lo = -math.inf if alpha == -1 else 2 * math.atanh(alpha)
    hi = math.inf if beta == 1 else 2 * math.atanh(beta)
    t = torch.linspace(0, 1, 128, dtype=torch.float64)
    z = a[:, None] + c[:, None] * t[None]
    expected = (xb - xa).norm(dim=1) * ((z > lo) & (z < hi)).double().mean(1)
    got = segment_thickness(lin, xa, xb, i, j, alpha, beta)
    torch.testing.assert_close(got, expected, atol=1e-12, rtol=0)


def test_thickness_converges_to_the_integral():
    lin, xa, xb, a, c = _linear_case()
    i, j = torch.zeros(len(xa), dtype=torch.long), torch.ones(len(xa), dtype=torch.long)
    lo, hi = 0.0, 2 * math.atanh(0.75)
    # length of {t in [0, 1] : lo < a + c t < hi}
    t1, t2 = (lo - a) / c, (hi - a) / c
    length = (torch.minimum(torch.maximum(t1, t2), torch.ones(1)) - torch.maximum(torch.minimum(t1, t2), torch.zeros(1))).clamp_min(0)
    got = segment_thickness(lin, xa, xb, i, j, 0.0, 0.75, num_points=20001)
    torch.testing.assert_close(got.double(), (xb - xa).norm(dim=1) * length, atol=2e-4 * 20, rtol=0)


def test_thickness_of_vs_model_ignores_virtual_outputs():
    lin, xa, xb, _, _ = _linear_case()
    vs = nn.Linear(5, 5).double()
    with torch.no_grad(): vs.weight[:2], vs.bias[:2] = lin.weight, lin.bias  # 2 real + 3 arbitrary virtual outputs
    i, j = torch.zeros(len(xa), dtype=torch.long), torch.ones(len(xa), dtype=torch.long)
    torch.testing.assert_close(segment_thickness(vs, xa, xb, i, j, num_classes=2), segment_thickness(lin, xa, xb, i, j))


def _profile_loop(model, x_i, x_j, i, j, num_points, num_classes):
    "Reference: one forward pass per point."
    t = torch.linspace(0, 1, num_points, dtype=x_i.dtype)
    g = torch.empty(len(x_i), num_points, dtype=x_i.dtype)
    with torch.no_grad():
        for n in range(len(x_i)):
            for k in range(num_points):
                p = model(torch.lerp(x_i[n:n + 1], x_j[n:n + 1], t[k]))[:, :num_classes].softmax(1)[0]
                g[n, k] = p[i[n]] - p[j[n]]
    return g


def test_thickness_batched_equals_loop():
    net = tiny_net(outputs=6, dtype=torch.float64)
    g = make_generator(0)
    x_i = torch.rand(5, 1, 6, 6, generator=g, dtype=torch.float64)
    x_j = torch.rand(5, 1, 6, 6, generator=g, dtype=torch.float64) * 30  # long segments cross the boundary
    i, j = torch.tensor([0, 1, 2, 3, 1]), torch.tensor([1, 0, 3, 2, 3])
    ref = _profile_loop(net, x_i, x_j, i, j, 32, 4)
    torch.testing.assert_close(segment_profile(net, x_i, x_j, i, j, num_points=32, num_classes=4), ref)
    torch.testing.assert_close(segment_profile(net, x_i, x_j, i, j, num_points=32, num_classes=4, chunk_size=7), ref)
    inside = ((ref > 0) & (ref < 0.75)).double().mean(1)
    torch.testing.assert_close(segment_thickness(net, x_i, x_j, i, j, num_points=32, num_classes=4),
                               (x_j - x_i).flatten(1).norm(dim=1) * inside)


def test_segment_profile_ends_are_the_segment_ends():
    net = tiny_net()
    g = make_generator(1)
    x_i, x_j = torch.rand(3, 1, 6, 6, generator=g), torch.rand(3, 1, 6, 6, generator=g)
    i, j = torch.tensor([0, 1, 2]), torch.tensor([1, 2, 3])
    prof = segment_profile(net, x_i, x_j, i, j, num_points=5)
    with torch.no_grad(): pi, pj = net(x_i).softmax(1), net(x_j).softmax(1)
    torch.testing.assert_close(prof[:, 0], pi[range(3), i] - pi[range(3), j])
    torch.testing.assert_close(prof[:, -1], pj[range(3), i] - pj[range(3), j])


def test_boundary_thickness_calls_the_project_pgd(monkeypatch):
    net = tiny_net(outputs=6)
    x = torch.rand(10, 1, 6, 6, generator=make_generator(0)); y = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3, 0, 1])
    calls = []
    def fake_pgd(model, xb, yb, **kw):
        calls.append((len(xb), yb.clone(), kw))
        return 1 - xb  # a known end point for every segment
    monkeypatch.setattr(metrics.attacks, 'pgd', fake_pgd)
    th = boundary_thickness(net, x, y, num_classes=4, batch_size=4, generator=make_generator(2))
    assert [c[0] for c in calls] == [4, 4, 2]
    kw = calls[0][2]
    assert kw['norm'] == 'l2' and kw['targeted'] is True and kw['random_start'] is False
    assert (kw['eps'], kw['step'], kw['steps'], kw['num_classes']) == (5.0, 1.0, 20, 4)
    torch.testing.assert_close(torch.cat([c[1] for c in calls]), th.targets)  # attacked towards j
    assert ((th.targets != y) & (th.targets < 4)).all()
    torch.testing.assert_close(th.per_sample, segment_thickness(net, x, 1 - x, y, th.targets, num_classes=4))
    assert len(th.batch_means) == 3 and th.mean == pytest.approx(float(th.per_sample.mean()))
    assert th.std == pytest.approx(float(th.batch_means.std()))


def test_boundary_thickness_targets_are_uniform_over_other_classes(monkeypatch):
    monkeypatch.setattr(metrics.attacks, 'pgd', lambda model, xb, yb, **kw: xb.clone())
    net = tiny_net(outputs=4)
    x = torch.rand(4000, 1, 4, 4, generator=make_generator(0)); y = torch.full((4000,), 2)
    th = boundary_thickness(net, x, y, num_points=2, batch_size=4000, generator=make_generator(3))
    counts = torch.bincount(th.targets, minlength=4)
    assert counts[2] == 0 and (counts[[0, 1, 3]] - 4000 / 3).abs().max() < 150
    assert math.isnan(th.std) and (th.per_sample == 0).all()  # one batch; x_j = x_i gives zero length


def test_boundary_thickness_with_real_pgd():
    net = tiny_net(outputs=5)
    x = torch.rand(12, 1, 6, 6, generator=make_generator(0)); y = torch.arange(12) % 5
    th = boundary_thickness(net, x, y, eps=2.0, step=0.5, steps=5, num_points=16, batch_size=6, generator=make_generator(1))
    assert th.per_sample.shape == (12,) and (th.per_sample >= 0).all() and (th.per_sample <= 2.0 + 1e-4).all()
    again = boundary_thickness(net, x, y, eps=2.0, step=0.5, steps=5, num_points=16, batch_size=6, generator=make_generator(1))
    torch.testing.assert_close(again.per_sample, th.per_sample)
    assert not net.training


@pytest.mark.parametrize('kw, message', [
    (dict(alpha=0.5, beta=0.5), 'alpha must be smaller than beta'),
    (dict(alpha=0.8, beta=0.2), 'alpha must be smaller than beta'),
    (dict(alpha=-1.5), r'alpha must be in \[-1, 1\]'),
    (dict(beta=1.01), r'beta must be in \[-1, 1\]'),
    (dict(num_classes=7), 'num_classes must be at most'),
    (dict(eps=0.0), 'eps must be in'),
    (dict(steps=0), 'steps must be an integer'),
    (dict(num_points=1), 'num_points must be an integer'),
    (dict(batch_size=0), 'batch_size must be an integer'),
])
def test_boundary_thickness_bad_arguments(kw, message):
    net = tiny_net(outputs=4)
    x, y = torch.rand(3, 1, 4, 4), torch.tensor([0, 1, 2])
    with pytest.raises(ValueError, match=message):
        boundary_thickness(net, x, y, **kw)


def test_boundary_thickness_bad_labels():
    net = tiny_net(outputs=4)
    with pytest.raises(ValueError, match=r'y must hold classes in \[0, 3\)'):
        boundary_thickness(net, torch.rand(2, 1, 4, 4), torch.tensor([0, 3]), num_classes=3)
    with pytest.raises(ValueError, match='y must hold one label per sample'):
        boundary_thickness(net, torch.rand(2, 1, 4, 4), torch.tensor([0]))
    with pytest.raises(ValueError, match='x_j must have the shape of x_i'):
        segment_thickness(net, torch.rand(2, 1, 4, 4), torch.rand(2, 1, 4, 5), torch.tensor([0, 1]), torch.tensor([1, 0]))


# ---------------------------------------------------------------- flatness

def _fitted_logistic(seed=0):
    "A two-layer net fitted to separable data: a minimum whose loss rises when the weights move."
    g = make_generator(seed)
    x = torch.randn(200, 4, generator=g); y = (x[:, 0] + 0.5 * x[:, 1] > 0).long()
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    for _ in range(150):
        opt.zero_grad(); F.cross_entropy(net(x), y).backward(); opt.step()
    return net.eval(), x, y


def test_flatness_leaves_weights_and_buffers_bit_identical():
    net, x, y = _fitted_logistic()
    net.train()  # flatness must evaluate in eval mode and give the mode back
    before = {k: v.clone() for k, v in net.state_dict().items()}
    flatness(net, (x, y), [0.5, 3.0], draws=4, generator=make_generator(0))
    for k, v in net.state_dict().items(): assert torch.equal(v, before[k]), k
    assert net.training


def test_metrics_give_every_submodule_its_mode_back():
    net, x, y = _fitted_logistic()
    net.train(); net[1].eval()  # a frozen BatchNorm inside a training model
    modes = [m.training for m in net.modules()]
    flatness(net, (x, y), [1.0], draws=1)
    segment_profile(net, x[:2], x[2:4], torch.tensor([0, 1]), torch.tensor([1, 0]), num_points=3)
    input_gradients(net, x[:2], y[:2])
    assert [m.training for m in net.modules()] == modes


def test_flatness_loss_grows_with_radius_and_radius_zero_is_the_model():
    net, x, y = _fitted_logistic()
    losses, summary = flatness(net, (x, y), [0, 0.5, 2, 8], draws=20, generator=make_generator(1), batch_size=64)
    with torch.no_grad(): base = F.cross_entropy(net(x), y).item()  # eval mode: BN running statistics
    assert summary['mean'][0] == pytest.approx(base, rel=1e-5) and summary['std'][0] == 0
    assert summary['mean'].is_monotonic_increasing and summary['mean'].iloc[-1] > 2 * base
    assert list(losses.columns) == ['radius', 'draw', 'loss'] and len(losses) == 4 * 20
    assert sorted(losses['draw'].unique()) == list(range(20))


def test_flatness_perturbation_has_norm_gamma_and_spares_buffers():
    class Recorder(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(3, 2); self.bn = nn.BatchNorm1d(3); self.seen = []
        def forward(self, x):
            self.seen.append((torch.cat([self.lin.weight.flatten(), self.lin.bias, self.bn.weight, self.bn.bias]).clone(),
                              self.bn.running_mean.clone()))
            return self.lin(self.bn(x))
    m = Recorder()
    theta = torch.cat([m.lin.weight.flatten(), m.lin.bias, m.bn.weight, m.bn.bias]).detach().clone()
    flatness(m, (torch.randn(5, 3), torch.zeros(5, dtype=torch.long)), [0.7, 2.5], draws=3, generator=make_generator(0))
    assert len(m.seen) == 6
    norms = [float((w - theta).norm()) for w, _ in m.seen]
    assert norms == pytest.approx([0.7, 2.5] * 3, rel=1e-5)
    assert all(torch.equal(rm, torch.zeros(3)) for _, rm in m.seen)  # running statistics not perturbed
    # draw d uses one direction for all radii
    d0 = [(w - theta) / float((w - theta).norm()) for w, _ in m.seen[:2]]
    torch.testing.assert_close(d0[0], d0[1])


def test_flatness_is_reproducible_and_accepts_batches():
    net, x, y = _fitted_logistic()
    a, _ = flatness(net, (x, y), [1.0, 2.0], draws=3, generator=make_generator(5), batch_size=50)
    batches = [(x[s:s + 30], y[s:s + 30]) for s in range(0, 200, 30)]
    b, _ = flatness(net, batches, [1.0, 2.0], draws=3, generator=make_generator(5))
    np.testing.assert_allclose(a['loss'], b['loss'], rtol=1e-5)


def test_flatness_vs_model_uses_first_k_logits_by_default_or_a_given_loss():
    net, x, y = _fitted_logistic()
    vs = nn.Sequential(*net, nn.Linear(2, 5))  # K = 2 real outputs would be logits[:, :2]
    _, s1 = flatness(vs, (x, y), [0], draws=1, num_classes=2)
    with torch.no_grad(): expected = F.cross_entropy(vs(x)[:, :2], y).item()
    assert s1['mean'][0] == pytest.approx(expected, rel=1e-5)
    _, s2 = flatness(vs, (x, y), [0], draws=1, loss=lambda logits, yy: logits.square().mean())
    with torch.no_grad(): assert s2['mean'][0] == pytest.approx(vs(x).square().mean().item(), rel=1e-5)


@pytest.mark.parametrize('kw, exc, message', [
    (dict(radii=[-1.0]), ValueError, r'radii must be in \[0, inf\)'),
    (dict(radii=[]), ValueError, 'radii must hold at least one radius'),
    (dict(radii=[1.0], draws=0), ValueError, r'draws must be an integer in \[1, inf\)'),
    (dict(radii=[1.0], num_classes=3), ValueError, 'num_classes must be at most'),
])
def test_flatness_bad_arguments(kw, exc, message):
    net, x, y = _fitted_logistic()
    with pytest.raises(exc, match=message):
        flatness(net, (x, y), **kw)


def test_flatness_refuses_a_one_shot_iterator():
    net, x, y = _fitted_logistic()
    with pytest.raises(TypeError, match='not an iterator'):
        flatness(net, iter([(x, y)]), [1.0], draws=1)


# ---------------------------------------------------------------- OOD

def test_ood_scores():
    logits = torch.tensor([[3.0, 1.0, 0.0, 2.0]])  # K = 2 real, R = 1 reject, V = 1 virtual
    e = math.e
    torch.testing.assert_close(msp_score(logits, 2), torch.tensor([e**3 / (e**3 + e)]))
    torch.testing.assert_close(msp_score(logits), torch.tensor([e**3 / (e**3 + e + 1 + e**2)]))
    torch.testing.assert_close(reject_score(logits, 2, 1), torch.tensor([(e**3 + e) / (e**3 + e + 1)]))
    torch.testing.assert_close(virtual_mass_score(logits, 3), torch.tensor([(e**3 + e + 1) / (e**3 + e + 1 + e**2)]))
    with pytest.raises(ValueError, match='num_classes \\+ num_reject must be at most'):
        reject_score(logits, 3, 2)
    with pytest.raises(ValueError, match='num_classes must be smaller than the number of logits'):
        virtual_mass_score(logits, 4)


S_OUT = np.arange(20) / 100
S_IN = np.array([0.05, 0.17, 0.18, 0.3, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95])


def test_fpr95_vs_paper_reading_ood_positive():
    # flag 19 of 20 OOD inputs: "OOD if s <= 0.18"; ID inputs 0.05, 0.17, 0.18 are flagged too
    assert fpr_at_95_tpr(S_IN, S_OUT) == pytest.approx(0.3)
    assert fpr_at_95_tpr(S_IN, S_OUT, positive='ood') == pytest.approx(0.3)


def test_fpr95_common_convention_in_positive():
    # keep ceil(9.5) = 10 of 10 ID inputs: "ID if s >= 0.05" keeps 15 of 20 OOD
    assert fpr_at_95_tpr(S_IN, S_OUT, positive='in') == pytest.approx(0.75)


def test_auroc_hand_case_and_extremes():
    assert auroc(S_IN, S_OUT) == pytest.approx((5 + 17 + 18 + 140 + 1.5) / 200)
    assert auroc([1.0, 2.0], [0.0, 0.5]) == 1.0 and auroc([0.0], [1.0]) == 0.0 and auroc([1.0], [1.0]) == 0.5
    assert fpr_at_95_tpr([1.0, 2.0], [0.0, 0.5]) == 0.0 and fpr_at_95_tpr([0.0], [1.0]) == 1.0


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 20), min_size=1, max_size=40), st.lists(st.integers(0, 20), min_size=1, max_size=40),
       st.sampled_from([0.5, 0.9, 0.95, 1.0]))
def test_fpr_matches_sklearn_roc_and_conventions_are_mirror_images(s_in, s_out, tpr):
    from sklearn.metrics import roc_curve
    s_in, s_out = np.array(s_in, float), np.array(s_out, float)
    # OOD positive with detector score -s
    labels = np.r_[np.ones(len(s_out)), np.zeros(len(s_in))]
    fpr, tprs, _ = roc_curve(labels, np.r_[-s_out, -s_in], drop_intermediate=False)
    expected = fpr[np.searchsorted(tprs, tpr - 1e-12, side='left')]
    assert fpr_at_95_tpr(s_in, s_out, tpr=tpr) == pytest.approx(expected)
    assert fpr_at_95_tpr(s_in, s_out, 'in', tpr) == pytest.approx(fpr_at_95_tpr(-s_out, -s_in, 'ood', tpr))
    assert auroc(s_in, s_out) == pytest.approx(1 - auroc(s_out, s_in))
    pairs = (s_in[:, None] > s_out[None]).mean() + 0.5 * (s_in[:, None] == s_out[None]).mean()
    assert auroc(s_in, s_out) == pytest.approx(pairs)


def test_ood_bad_arguments():
    with pytest.raises(ValueError, match="positive must be one of 'ood', 'in'"):
        fpr_at_95_tpr(S_IN, S_OUT, positive='id')
    with pytest.raises(ValueError, match='scores_in must be a non-empty 1-d'):
        auroc([], S_OUT)
    with pytest.raises(ValueError, match='scores_out must hold finite numbers'):
        fpr_at_95_tpr(S_IN, [0.1, float('nan')])
    with pytest.raises(ValueError, match='tpr must be in'):
        fpr_at_95_tpr(S_IN, S_OUT, tpr=0.0)


# ---------------------------------------------------------------- feature views

def _template_net(templates):
    net = tiny_net(outputs=len(templates))
    with torch.no_grad(): net.head.weight.copy_(templates)
    return net


def test_template_plane_is_orthonormal_and_holds_the_templates():
    w = torch.randn(3, 8, generator=make_generator(0), dtype=torch.float64)
    origin, basis = template_plane(w)
    torch.testing.assert_close(basis.T @ basis, torch.eye(2, dtype=torch.float64))
    coords = (w - origin) @ basis
    torch.testing.assert_close(origin + coords @ basis.T, w)  # the templates lie in the plane
    torch.testing.assert_close(torch.cdist(coords, coords), torch.cdist(w, w))
    torch.testing.assert_close(origin, w.mean(0))
    with pytest.raises(ValueError, match='must not be collinear'):
        template_plane(torch.tensor([[0.0, 0, 0], [1, 1, 1], [3, 3, 3]]))


def test_projection_of_unit_templates():
    # templates e_0, e_1, e_2 in R^8: an equilateral triangle of side sqrt(2) around (1/3, 1/3, 1/3, 0, ...)
    w = torch.zeros(4, 8); w[0, 0] = w[1, 1] = w[2, 2] = 1; w[3, 3] = 1
    net = _template_net(w)
    x = torch.rand(12, 1, 4, 4, generator=make_generator(0)); y = torch.tensor([0, 1, 2, 3] * 3)
    proj = penultimate_projection(net, x, y, classes=(0, 1, 2))
    side = torch.cdist(proj.templates, proj.templates)
    torch.testing.assert_close(side[~torch.eye(3, dtype=bool)], torch.full((6,), math.sqrt(2)))
    torch.testing.assert_close(proj.templates.norm(dim=1), torch.full((3,), math.sqrt(2 / 3)))  # centroid at 0
    assert proj.labels.tolist() == [0, 1, 2] * 3
    with torch.no_grad(): feats = net.features(x[y != 3])
    # the coordinates are the orthogonal projection: the residual is orthogonal to the plane
    resid = feats - proj.origin - proj.coords @ proj.basis.T
    torch.testing.assert_close(resid @ proj.basis, torch.zeros(9, 2), atol=1e-5, rtol=0)


def test_projection_bad_arguments():
    net = tiny_net(outputs=6)
    x, y = torch.rand(4, 1, 4, 4), torch.tensor([0, 1, 2, 3])
    with pytest.raises(ValueError, match='classes must be three distinct'):
        penultimate_projection(net, x, y, classes=(0, 1, 1))
    with pytest.raises(ValueError, match=r'classes must be an integer in \[0, 3\]'):
        penultimate_projection(net, x, y, classes=(0, 1, 4), num_classes=4)
    with pytest.raises(ValueError, match='num_classes must be at most'):
        penultimate_projection(net, x, y, num_classes=7)
    with pytest.raises(TypeError, match='features'):
        penultimate_projection(nn.Linear(16, 4), x, y)


def test_input_gradients_shapes_sum_and_values():
    net = tiny_net(outputs=7)  # K = 4 real + V = 3 virtual
    x = torch.rand(5, 1, 6, 6, generator=make_generator(0)); y = torch.tensor([0, 1, 2, 3, 0])
    g = input_gradients(net, x, y, num_classes=4)
    for m in g: assert m.shape == x.shape
    torch.testing.assert_close(g.correct + g.virtual + g.incorrect, torch.zeros_like(x), atol=1e-6, rtol=0)
    # sample 2 alone, by autograd on its own probability (softmax over all K + V outputs)
    x2 = x[2:3].clone().requires_grad_(True)
    p = net(x2).softmax(1)
    torch.testing.assert_close(g.correct[2:3], torch.autograd.grad(p[0, 2], x2, retain_graph=True)[0])
    torch.testing.assert_close(g.virtual[2:3], torch.autograd.grad(p[0, 4:].sum(), x2)[0])
    assert all(prm.grad is None for prm in net.parameters())


def test_input_gradients_without_virtual_outputs():
    net = tiny_net(outputs=4)
    x = torch.rand(3, 1, 6, 6); y = torch.tensor([0, 1, 2])
    g = input_gradients(net, x, y)
    assert g.virtual is None
    torch.testing.assert_close(g.incorrect, -g.correct)
    with pytest.raises(ValueError, match=r'y must hold classes in \[0, 4\)'):
        input_gradients(net, x, torch.tensor([0, 1, 4]))
    with pytest.raises(ValueError, match='num_classes must be at most'):
        input_gradients(net, x, y, num_classes=5)


# ---------------------------------------------------------------- Yang et al.'s protocol (issue 10 §4)

def test_boundary_thickness_yang_protocol_measures_in_the_normalised_space(monkeypatch):
    from robust_labels.models import create_model
    torch.manual_seed(0)
    net = create_model('cnn', 4, in_channels=1, normalize=((0.5,), (0.25,))).eval()
    x = torch.rand(10, 1, 6, 6, generator=make_generator(0)); y = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3, 0, 1])
    with torch.no_grad(): pred = net(x).argmax(1)
    calls = []
    def fake_pgd(model, xb, yb, **kw):
        calls.append((xb.clone(), yb.clone(), kw))
        return xb + 0.1                                          # a known end point: length 0.1 * 6 in that space
    monkeypatch.setattr(metrics.attacks, 'pgd', fake_pgd)
    ours = boundary_thickness(net, x, y, generator=make_generator(2), beta=1.0, alpha=-1.0)
    yang = boundary_thickness(net, x, y, generator=make_generator(2), beta=1.0, alpha=-1.0, protocol='yang')
    z = net.normalize(x)
    torch.testing.assert_close(calls[1][0], z)                   # attacked in the normalised space
    assert calls[1][2]['bounds'] == (float(z.min()), float(z.max())) and calls[0][2]['bounds'] == (0., 1.)
    torch.testing.assert_close(yang.targets, ours.targets)       # j drawn from the labels in both
    # same end-point offset, same length; the profile differs: i = prediction, and points z + 0.1 in normalised units
    g = segment_profile(metrics._without_normalize(net), z, z + 0.1, pred, yang.targets)
    torch.testing.assert_close(yang.per_sample, 0.6 * ((g > -1) & (g < 1)).float().mean(1))
    g_ours = segment_profile(net, x, x + 0.1, y, ours.targets)
    torch.testing.assert_close(ours.per_sample, 0.6 * ((g_ours > -1) & (g_ours < 1)).float().mean(1))


def test_boundary_thickness_yang_protocol_with_real_pgd():
    from robust_labels.models import create_model
    torch.manual_seed(0)
    net = create_model('cnn', 5, in_channels=1, normalize=((0.5,), (0.2,))).eval()
    x = torch.rand(12, 1, 6, 6, generator=make_generator(0)); y = torch.arange(12) % 5
    kw = dict(eps=2.0, step=0.5, steps=5, num_points=16, batch_size=6, generator=make_generator(1))
    ours, yang = boundary_thickness(net, x, y, **kw), boundary_thickness(net, x, y, protocol='yang', **kw)
    assert (yang.per_sample <= 2.0 + 1e-4).all() and not torch.allclose(ours.per_sample, yang.per_sample)
    with pytest.raises(ValueError, match="protocol must be one of 'ours', 'yang'"):
        boundary_thickness(net, x, y, protocol='paper')
    with pytest.raises(ValueError, match="protocol='yang' measures in the model's normalised input space"):
        boundary_thickness(nn.Sequential(nn.Flatten(), nn.Linear(36, 5)), x, y, protocol='yang')
