"Tests for robust_labels.theory_spider: every SPIDER check's verdict is asserted; the machinery under them on its own."
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

import robust_labels.theory_spider as T
from robust_labels.theory import softmax_np
from robust_labels.theory_spider import (Segment, check_appendix_c_axes, check_appendix_d_image, check_corollary1,
                                         check_corollary1_trained, check_lemma1, check_lemma2, check_lemma2_bound,
                                         check_lemma2_example, check_lemma3, check_lemma3_reverse, check_proposition1,
                                         check_segment_density, check_softmax_injective, check_theorem1,
                                         check_theorem1_cifar_dimension, check_theorem1_gaussian,
                                         check_theorem1_standard_ls, check_theorem1_vanishing, check_theorem2,
                                         check_theorem3, check_theorem4, check_toy_thickness, constant_smoothing,
                                         exponential_radius, gaussian_radius, half_normal_radius,
                                         lemma2_log10_violation, level_set_measure, linear_radius, linear_smoothing,
                                         optimal_thickness, spider_smoothing, step_smoothing, theorem1_segments,
                                         uniform_radius)

RADIALS = [uniform_radius(1.0), linear_radius(1.0), half_normal_radius(0.5), exponential_radius(1/3)]


@pytest.fixture(scope='module')
def hyp_segments():
    return [s for s in theorem1_segments() if s.in_hypothesis]


def _segments():
    "Hypothesis strategy: a segment inside Theorem 1's assumptions (d < tau for the bounded radius densities)."
    smooth = st.sampled_from([lambda: ('spider', lambda z: spider_smoothing(z, 1.0, 0.4, 10)), lambda: ('linear', linear_smoothing()),
                              lambda: ('step', step_smoothing()), lambda: ('constant', constant_smoothing(0.8))])
    return st.builds(lambda r, s, n, d: Segment(r, s()[1], n, d, 10, s()[0]), st.sampled_from(RADIALS), smooth,
                     st.integers(1, 4000), st.floats(0.05, 0.99))


# --- SPIDER, Theorem 1 and its lemmas ---------------------------------------------------------------------------

def test_spider_smoothing_closed_form():
    z = np.array([0.0, 0.1, 0.25, 0.6, 1.0])
    s = spider_smoothing(z, 1.0, 0.4, 10)
    np.testing.assert_allclose(s[:3], 1.0)
    np.testing.assert_allclose(s[-1], 0.1 + 0.4)                  # s(tau) = 1/c + xi
    assert (np.diff(s) <= 0).all()
    assert torch.allclose(spider_smoothing(torch.tensor(z), 1.0, 0.4, 10), torch.tensor(s))
    with pytest.raises(ValueError, match='xi must be in'):
        spider_smoothing(z, 1.0, 0.95, 10)
    with pytest.raises(ValueError, match='tau must be in'):
        spider_smoothing(z, 0.0, 0.1, 10)


def test_spider_smoothing_matches_labels():
    labels = pytest.importorskip('robust_labels.labels')
    if not hasattr(labels, 'spider_confidence'): pytest.skip('robust_labels.labels.spider_confidence not written yet')
    for tau, xi, c in [(1.0, 0.4, 10), (2.0, 0.49, 100), (0.5, 0.0, 2), (8/255, 0.05, 10)]:
        z = torch.linspace(0, tau, 101, dtype=torch.float64)           # the range SPIDER evaluates s on
        ours = spider_smoothing(z, tau, xi, c)
        theirs = labels.spider_confidence(z, tau, xi, c).double()
        torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-7)


def test_segment_density_derivation():
    v = check_segment_density()
    assert v.holds and v.instance['tube_error'] < 0.05 and v.instance['cone_reading_error'] > 1


@settings(max_examples=40, deadline=None)
@given(_segments(), st.floats(1e-6, 0.5))
def test_segment_point_symmetry_and_exact_one_minus(seg, a):
    left, right = seg.margins(np.array([a]), np.array([1 - a])), seg.margins(np.array([1 - a]), np.array([a]))
    assert abs(left[0][0] + right[0][0]) < 1e-15 and abs(left[2][0] + right[2][0]) < 1e-15
    assert abs(left[1][0] - (1 - left[0][0])) < 1e-12 and abs(left[3][0] - (1 - left[2][0])) < 1e-12
    assert left[0][0] >= 0 and left[2][0] >= -1e-15                    # g* >= 0 and g*_LS >= 0 on [0, 1/2]


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(RADIALS), st.integers(1, 3000), st.floats(0.05, 0.99), st.floats(0.12, 0.99))
def test_constant_smoothing_scales_g_star(radial, n, d, s):
    seg = Segment(radial, constant_smoothing(s), n, d)
    t = np.linspace(0.01, 0.99, 99)
    np.testing.assert_allclose(seg.g_ls(t), (10*s - 1)/9*seg.g_star(t), atol=1e-14)


@settings(max_examples=40, deadline=None)
@given(_segments())
def test_lemma2_exact_condition(seg):
    "g*_LS > g* on (0, 1/2) exactly where h(1-t) > h(t), h(t) = p_eta(t)(1 - s(dt))."
    a = np.linspace(0.02, 0.48, 47)
    gs, _, gl, _ = seg.margins(a)
    lv = lemma2_log10_violation(seg, a)
    visible = np.abs(gl - gs) > 1e-9
    assert ((lv > -np.inf) == (gl > gs))[visible].all()
    np.testing.assert_allclose(10.0**lv[visible & (gl > gs)], (gl - gs)[visible & (gl > gs)], rtol=1e-5)


@settings(max_examples=25, deadline=None)
@given(_segments())
def test_theorem1_fails_only_where_lemma2_fails(seg):
    star, ls = optimal_thickness(seg, T.THICKNESS_PAIRS)
    if (lemma2_log10_violation(seg, T.half_grid()) == -np.inf).all():
        assert (ls - star >= -1e-12).all()


def test_level_set_measure_closed_form_and_brute_force():
    seg = Segment(uniform_radius(1.0), step_smoothing(0.5, 0.3), n=1, d=1.0)   # g* = 0, g*_LS = +-0.389
    star, ls = optimal_thickness(seg, [(-0.5, 0.5), (-0.25, 0.25), (0, 1)])
    np.testing.assert_allclose(star, [1, 1, 0], atol=1e-12)
    np.testing.assert_allclose(ls, [1, 0, 0.5], atol=1e-12)
    seg = Segment(half_normal_radius(0.5), linear_smoothing(), n=4, d=0.8)
    t = (np.arange(400_000) + 0.5)/400_000
    g = seg.g_ls(t)
    for a, b in [(-0.3, 0.6), (0.0, 0.75), (-1.0, 1.0)]:
        assert abs(optimal_thickness(seg, [(a, b)])[1][0] - 0.8*((g > a) & (g < b)).mean()) < 1e-5
    # a single function given as a pair works too
    m = level_set_measure(lambda a: (1 - 2*a, 2*a), [(0.0, 0.5)])        # g = 1 - 2t: 0 < g < 0.5 on (1/4, 1/2)
    np.testing.assert_allclose(m, [0.25], atol=1e-12)
    with pytest.raises(ValueError, match='alpha must be < beta'):
        optimal_thickness(seg, [(0.5, 0.2)])


def test_hypothesis_flags():
    assert Segment(uniform_radius(1.0), constant_smoothing(), 3, 1.0).in_hypothesis
    assert not Segment(uniform_radius(1.0), constant_smoothing(), 3, 1.5).in_hypothesis    # p_eta = 0 near t = 1
    assert not Segment(gaussian_radius(), constant_smoothing(), 3, 1.0).in_hypothesis      # p_gamma not decreasing
    with pytest.raises(ValueError, match='d must be in'):
        Segment(uniform_radius(1.0), constant_smoothing(), 3, 0.0)
    with pytest.raises(TypeError, match='n must be an integer'):
        Segment(uniform_radius(1.0), constant_smoothing(), 3.0, 1.0)


def test_lemma1_holds(hyp_segments):
    v = check_lemma1(hyp_segments)
    assert v.holds and v.margin >= -1e-12


def test_lemma2_fails_but_bound_holds(hyp_segments):
    v = check_lemma2(hyp_segments)
    assert not v.holds and v.margin < -0.1
    assert check_lemma2([s for s in hyp_segments if s.s_name == 'constant']).holds
    assert check_lemma2_bound(hyp_segments).holds
    assert not check_lemma2_bound([Segment(gaussian_radius(0.5), T.smoothing_families()['spider'], 100, 1.0)]).holds


def test_lemma2_breakdown_small_n_and_near_half():
    bd = T.lemma2_breakdown(ns=(2, 10, 3072))
    b1, b2 = bd[bd.d == 1.0].set_index('n'), bd[bd.d == 0.5].set_index('n')
    assert b1.loc[2, 'log10_max_violation'] > -2 and b1.loc[3072, 'log10_max_violation'] < -1000
    assert b2.loc[3072, 'log10_max_violation'] > -6 and b2.loc[3072, 'exceeds_threshold_from_t'] > 0.4995


def test_lemma2_example_is_a_rounding():
    v = check_lemma2_example()
    assert not v.holds and -1e-7 < v.margin < 0
    assert math.isclose(v.instance['value_n3072'], 4.625e-6, rel_tol=1e-3)


def test_theorem1_verdicts():
    v = check_theorem1()
    assert not v.holds and v.margin < -0.5
    cifar, cifar_spider = check_theorem1_cifar_dimension(), check_theorem1_cifar_dimension(s='spider')
    assert not cifar.holds and -1e-3 < cifar.margin < -1e-5
    assert not cifar_spider.holds and -1e-8 < cifar_spider.margin < 0
    assert check_theorem1_standard_ls().holds
    assert check_theorem1_vanishing().holds
    g = check_theorem1_gaussian()
    assert not g.holds and math.isclose(g.instance['deficit_n1'], g.instance['deficit_n3072'], rel_tol=1e-9)
    table = T._default_theorem1_table()
    failing = table[table.deficit < -1e-12]
    assert len(failing) and not failing.lemma2_holds.any()


def test_theorem1_known_failure_by_hand():
    "n = 3072, uniform radius, step s (1 up to 1/2, 0.3 beyond), d = 1, (alpha, beta) = (-1/2, 1/2): closed form."
    seg = Segment(uniform_radius(1.0), step_smoothing(0.5, 0.3), 3072, 1.0)
    star, ls = optimal_thickness(seg, [(-0.5, 0.5)])
    # g* = tanh((n-1)/2 log((1-t)/t)); g*_LS = w - (1-w) 2/9 near t = 1/2 with w = expit((n-1) log((1-t)/t))
    t_star = 1/(1 + math.exp(2*math.atanh(0.5)/3071))
    w = (0.5 + 2/9)/(1 + 2/9)
    t_ls = 1/(1 + math.exp(math.log(w/(1 - w))/3071))
    assert math.isclose(star[0], 2*(0.5 - t_star), rel_tol=1e-9)
    assert math.isclose(ls[0], 2*(0.5 - t_ls), rel_tol=1e-9)


# --- SPIDER, Appendices C and D ----------------------------------------------------------------------------------

def test_linear_model_verdicts():
    assert not check_softmax_injective().holds
    t2 = check_theorem2()
    assert t2.holds and abs(t2.margin) < 1e-9 and t2.instance['boundary_reached']
    ax = check_appendix_c_axes()
    assert not ax.holds
    np.testing.assert_allclose(ax.instance['measured'], ax.instance['gamma_x_over_sigma'], atol=1e-4)
    assert check_appendix_c_axes(gamma=0.5, x_norm=2.0).holds               # gamma ||x|| = 1: the formulas coincide
    assert check_appendix_d_image().holds
    assert not check_lemma3().holds and check_lemma3_reverse().holds
    assert check_lemma3((2.0, 2.0, 2.0)).holds and not check_lemma3((4.0, 1.0, 0.5)).holds


def test_theorems_3_and_4():
    t3, t3c = check_theorem3(True), check_theorem3(False)
    assert not t3.holds and t3.instance['instance'] == 'B' and t3.instance['all']['A'] > 0
    assert t3c.holds and abs(t3c.margin) < 1e-9
    t4, t4sq = check_theorem4(), check_theorem4(squared=True)
    assert t4.holds and t4.instance['rho'] < 1 and not t4sq.holds


def test_region_radius_formula():
    W, X, gamma = T._theorem3_instance('A')
    D = T._probe_directions(W, X, 200, 0)
    rho = T.parameter_region_radius(W, X, gamma, D)
    # a point just inside along each direction is an input perturbation of norm <= gamma at every x_i, just outside it is not
    for k in range(0, 201, 50):
        inside = np.linalg.pinv(W) @ (D[k]*rho[k]*(1 - 1e-9)) @ X.T           # delta for every x_i, as columns
        outside = np.linalg.pinv(W) @ (D[k]*rho[k]*(1 + 1e-6)) @ X.T
        assert np.linalg.norm(inside, axis=0).max() <= gamma and np.linalg.norm(outside, axis=0).max() > gamma
    assert math.isclose(rho.min(), T.inner_radius(W, X, gamma), rel_tol=1e-9)


def test_proposition1_and_corollary1():
    p, ps = check_proposition1(), check_proposition1(modulo_shift=True)
    assert not p.holds and p.instance['zero_hessian_eigenvalues'] == 5 and ps.holds
    assert not check_corollary1(True).holds and check_corollary1(False).holds
    ct, cs = check_corollary1_trained(), check_corollary1_trained(shift_aware=True)
    assert not ct.holds and ct.instance['rank'] == 2
    assert cs.holds and cs.instance['radius'] > 0


def test_softmax_regression_fit_is_stationary():
    x, y = T.softmax_regression_data(seed=3)
    W, b = T.fit_softmax_regression(x, y, 3)
    p = softmax_np(x @ W.T + b) - np.eye(3)[y]
    assert np.abs(p.T @ x).max() < 1e-9 and np.abs(p.sum(0)).max() < 1e-9
    np.testing.assert_allclose(W.sum(0), 0, atol=1e-12)


# --- the toy SPIDER companion -----------------------------------------------------------------------------------

def test_toy_thickness_verdicts():
    v = check_toy_thickness(0, 0.75)
    assert v.holds and v.instance['theta_spider'] > 2*v.instance['theta_perturb']
    v1 = check_toy_thickness(0, 1)
    assert abs(v1.margin) < 0.05*v1.instance['theta_spider']


def test_toy_training_is_seeded_and_leaves_global_rng():
    torch.manual_seed(123); before = torch.rand(1)
    x, y = T.two_moons(64, 0.1, torch.Generator().manual_seed(0))
    fn = T.toy_batch_fn(y, 'spider')
    torch.manual_seed(123)
    a = T.train_soft_label_mlp(x, fn, 2, steps=5, seed=1)
    b = T.train_soft_label_mlp(x, fn, 2, steps=5, seed=1)
    for pa, pb in zip(a.parameters(), b.parameters()): assert torch.equal(pa, pb)
    assert torch.equal(torch.rand(1), before)                                     # the global generator was not consumed
    with pytest.raises(ValueError, match="kind must be one of"):
        T.toy_batch_fn(y, 'mixup')


def test_sphere_perturbation_radius():
    x = torch.zeros(1000, 3, 4, 4)
    delta, r = T.sphere_perturbation(x, 0.5, torch.Generator().manual_seed(0))
    torch.testing.assert_close(delta.flatten(1).norm(dim=1), r)
    assert 0 <= r.min() and r.max() <= 0.5 and abs(r.mean().item() - 0.25) < 0.02
