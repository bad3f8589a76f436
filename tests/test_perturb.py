"Tests of robust_labels.perturb: isotropic noise and clipping-aware rescaling."
import math

import pytest
import torch
from hypothesis import given, settings, strategies as st

from robust_labels.perturb import ball_noise, clip_rescale, flat_norm, gaussian_noise, sphere_noise


def test_sphere_radii_uniform_on_0_tau():
    "Kolmogorov-Smirnov test of the radii against U(0, tau) with a fixed seed (1% critical value)."
    x = torch.zeros(4000, 3, 4, 4)
    r = flat_norm(sphere_noise(x, 3.0, torch.Generator().manual_seed(0))) / 3.0
    s, _ = torch.sort(r)
    n = len(s)
    i = torch.arange(1, n + 1, dtype=s.dtype)
    ks = max((i / n - s).max().item(), (s - (i - 1) / n).max().item())
    assert ks < 1.63 / math.sqrt(n)
    assert 0 <= s.min() and s.max() <= 1 + 1e-6


def test_sphere_directions_isotropic():
    x = torch.zeros(20000, 2, 2, 2)
    d = sphere_noise(x, 1.0, torch.Generator().manual_seed(1))
    u = d.flatten(1) / flat_norm(d).unsqueeze(1)
    assert u.mean(0).abs().max() < 0.02                      # no preferred direction
    cov = u.T @ u / len(u)
    assert (cov - torch.eye(8) / 8).abs().max() < 0.01       # covariance I/n


def test_noise_reproducible_with_generator():
    x = torch.zeros(5, 10)
    for f in (sphere_noise, ball_noise, gaussian_noise):
        a = f(x, 1.0, torch.Generator().manual_seed(3))
        b = f(x, 1.0, torch.Generator().manual_seed(3))
        assert torch.equal(a, b)


def test_ball_radius_distribution():
    "P(r <= t*tau) = t^n for a uniform ball sample in n dimensions."
    x = torch.zeros(20000, 3)
    r = flat_norm(ball_noise(x, 2.0, torch.Generator().manual_seed(2))) / 2.0
    for t in (0.5, 0.8, 0.95):
        assert abs((r <= t).float().mean().item() - t ** 3) < 0.015


def test_noise_rejects_negative_scale():
    with pytest.raises(ValueError, match="tau must be in"):
        sphere_noise(torch.zeros(2, 3), -0.1)
    with pytest.raises(ValueError, match="sigma must be in"):
        gaussian_noise(torch.zeros(2, 3), -1)
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        sphere_noise([[0.0]], 1.0)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 40), frac=st.floats(0.0, 1.0))
def test_clip_rescale_exact_norm(seed, n, frac):
    "The applied norm equals the requested one whenever it is reachable; the result stays in [0, 1]."
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(4, n, generator=g, dtype=torch.float64)
    x[:, 0] = 1.0                                             # some pixels start on a bound
    d = torch.randn(4, n, generator=g, dtype=torch.float64)
    reach = flat_norm(torch.where(d > 0, 1 - x, x) * (d != 0))
    eps = reach * frac
    xt = clip_rescale(x, d, eps)
    assert xt.min() >= 0 and xt.max() <= 1
    assert torch.allclose(flat_norm(xt - x), eps, atol=1e-9, rtol=1e-9)
    # the perturbation keeps the direction of delta on every coordinate it moves
    moved = (xt - x).abs() > 0
    assert (torch.sign(xt - x)[moved] == torch.sign(d)[moved]).all()


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_clip_rescale_unreachable_saturates(seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(3, 6, generator=g, dtype=torch.float64)
    d = torch.randn(3, 6, generator=g, dtype=torch.float64)
    xt = clip_rescale(x, d, 100.0)
    assert torch.equal(xt, torch.where(d > 0, torch.ones_like(x), torch.zeros_like(x)))


def test_clip_rescale_matches_bisection():
    "Against a brute-force bisection on eta for a float32 batch of image shape."
    g = torch.Generator().manual_seed(0)
    x = torch.rand(8, 3, 8, 8, generator=g)
    d = sphere_noise(x, 5.0, g)
    want = flat_norm(d)
    xt = clip_rescale(x, d, want)
    lo, hi = torch.zeros(8), torch.full((8,), 1e3)
    for _ in range(100):
        mid = (lo + hi) / 2
        f = flat_norm((x + mid.view(-1, 1, 1, 1) * d).clamp(0, 1) - x)
        lo, hi = torch.where(f < want, mid, lo), torch.where(f < want, hi, mid)
    ref = (x + hi.view(-1, 1, 1, 1) * d).clamp(0, 1)
    assert torch.allclose(xt, ref, atol=1e-4)


def test_clip_rescale_zero_delta_and_bad_input():
    x = torch.full((2, 3), 0.5)
    assert torch.equal(clip_rescale(x, torch.zeros(2, 3), 1.0), x)
    with pytest.raises(ValueError, match="x must lie in"):
        clip_rescale(x + 1, torch.ones(2, 3), 1.0)
    with pytest.raises(ValueError, match="eps must be finite and >= 0"):
        clip_rescale(x, torch.ones(2, 3), -1.0)
    with pytest.raises(ValueError, match="delta must be a tensor of the same shape"):
        clip_rescale(x, torch.ones(2, 4), 1.0)
