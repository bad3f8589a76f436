"Tests of robust_labels.corruptions: the 15 corruptions, their constants, agreement with the reference's libraries."
import io

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

import robust_labels.corruptions as rc
from robust_labels.core import make_generator
from images import digits, smooth_images
from robust_labels.corruptions import CORRUPTIONS, corrupt, corruption_profile

torch.set_num_threads(1)
SEVERITIES = range(1, 6)
# Corruptions whose reference constants do not order the pixel change by severity (see the notebook).
UNORDERED = {'elastic_transform', 'frost', 'glass_blur'}


# ---------------------------------------------------------------- the 15 corruptions

@pytest.mark.parametrize('name', CORRUPTIONS)
def test_every_severity_keeps_shape_dtype_range_and_changes_the_image(name):
    x = smooth_images(2)
    for s in SEVERITIES:
        y = corrupt(x, name, s, make_generator(s))
        assert y.shape == x.shape and y.dtype == x.dtype and y.device == x.device
        assert 0 <= y.min() and y.max() <= 1
        assert (y - x).abs().mean() > 1e-3, (name, s)


@pytest.mark.parametrize('name', CORRUPTIONS)
def test_digits_every_severity(name):
    x = digits()
    outs = [corrupt(x, name, s, make_generator(0)) for s in SEVERITIES]
    for y in outs:
        assert y.shape == (6, 1, 8, 8) and 0 <= y.min() and y.max() <= 1 and not torch.equal(y, x)
    if name != 'elastic_transform':
        assert (outs[4] - x).abs().mean() > (outs[0] - x).abs().mean()


@pytest.mark.parametrize('name', sorted(set(CORRUPTIONS) - UNORDERED))
def test_higher_severity_changes_more_on_average(name):
    x = smooth_images(6, seed=1)
    change = [np.mean([(corrupt(x, name, s, make_generator(k)) - x).abs().mean().item() for k in range(2)])
              for s in SEVERITIES]
    assert all(b > a - 1e-3 for a, b in zip(change, change[1:])), change
    assert change[4] > change[0]


@pytest.mark.parametrize('name', CORRUPTIONS)
def test_seeded_determinism(name):
    x = smooth_images(2)
    a, b = corrupt(x, name, 3, make_generator(7)), corrupt(x, name, 3, make_generator(7))
    assert torch.equal(a, b)
    random_ones = {'gaussian_noise', 'shot_noise', 'impulse_noise', 'glass_blur', 'motion_blur', 'snow', 'frost', 'fog',
                   'elastic_transform'}
    if name in random_ones:
        assert not torch.equal(a, corrupt(x, name, 3, make_generator(8)))
        # every image of a batch gets its own draws
        same = corrupt(torch.cat([x[:1], x[:1]]), name, 3, make_generator(7))
        assert not torch.equal(same[0], same[1])


@pytest.mark.parametrize('dtype', [torch.float64, torch.float16])
def test_dtype_is_kept(dtype):
    x = smooth_images(2).to(dtype)
    for name in ['fog', 'motion_blur', 'jpeg_compression', 'elastic_transform']:
        y = corrupt(x, name, 2, make_generator(0))
        assert y.dtype == dtype and 0 <= y.min() and y.max() <= 1


@settings(max_examples=25, deadline=None)
@given(name=st.sampled_from(CORRUPTIONS), severity=st.integers(1, 5), size=st.integers(5, 40),
       channels=st.sampled_from([1, 3]), n=st.integers(1, 3), seed=st.integers(0, 2**31))
def test_any_size_stays_in_range(name, severity, size, channels, n, seed):
    x = torch.rand(n, channels, size, size + 3, generator=make_generator(seed))
    y = corrupt(x, name, severity, make_generator(seed))
    assert y.shape == x.shape and torch.isfinite(y).all() and 0 <= y.min() and y.max() <= 1


@settings(max_examples=30, deadline=None)
@given(c=st.floats(0.05, 1.0), seed=st.integers(0, 1000))
def test_contrast_keeps_channel_means_and_brightness_never_darkens(c, seed):
    x = torch.rand(2, 3, 6, 6, generator=make_generator(seed), dtype=torch.float64)
    torch.testing.assert_close(rc._contrast(x, c, None).mean((2, 3)), x.mean((2, 3)))
    assert (rc._brightness(x, c, None) >= x - 1e-12).all()


def test_constants_and_profiles():
    assert rc.corruption_constant('gaussian_noise', 1) == 0.04          # CIFAR-10-C
    assert rc.corruption_constant('gaussian_noise', 1, 64) == 0.04      # Tiny-ImageNet-C
    assert rc.corruption_constant('gaussian_noise', 5, 224) == 0.38     # ImageNet-C
    # lengths scaled
    assert rc.corruption_constant('defocus_blur', 5, 28) == pytest.approx((1.5 * 28 / 32, 0.1 * 28 / 32))
    # 16 px is corrupted at 32 px, constants as they are
    assert rc.corruption_constant('defocus_blur', 5, 16) == (1.5, 0.1)
    assert rc.corruption_constant('glass_blur', 5, 28) == pytest.approx((0.35, 1, 2))     # shifts stay >= 1
    assert corruption_profile(16, 16) == ('cifar', 2, 1.0)
    assert corruption_profile(8, 8) == ('cifar', 4, 1.0)
    # nearest table in ratio: boundaries at sqrt(32*64) ~ 45 and sqrt(64*224) ~ 120
    assert [corruption_profile(n, n)[0] for n in (44, 46, 118, 122)] == ['cifar', 'tiny', 'tiny', 'imagenet']


def test_constants_are_the_reference_tables():
    c = rc.CORRUPTION_CONSTANTS
    assert c['cifar']['jpeg_compression'] == [80, 65, 58, 50, 40]
    assert c['cifar']['snow'][4] == (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8)
    assert c['tiny']['pixelate'] == [0.9, 0.8, 0.7, 0.6, 0.5]
    assert c['imagenet']['shot_noise'] == [60, 25, 12, 5, 3]
    assert c['cifar']['elastic_transform'][3] == pytest.approx((3.2, 1.28, 1.6))


def test_bad_arguments():
    x = smooth_images(1)
    with pytest.raises(ValueError, match="name must be one of"): corrupt(x, 'rain', 1)
    for s in (0, 6):
        with pytest.raises(ValueError, match=r"severity must be an integer in \[1, 5\]"): corrupt(x, 'fog', s)
    for s in (2.0, True):
        with pytest.raises(TypeError, match='severity must be an integer'): corrupt(x, 'fog', s)
    with pytest.raises(ValueError, match=r'x must lie in \[0, 1\]'): corrupt(x * 3, 'fog', 1)
    with pytest.raises(ValueError, match=r'x must lie in \[0, 1\]'): corrupt(x - 1, 'fog', 1)
    with pytest.raises(ValueError, match='x must have at least 4 dims'): corrupt(x[0], 'fog', 1)
    with pytest.raises(ValueError, match='1 or 3 channels'): corrupt(x[:, :2], 'fog', 1)
    with pytest.raises(TypeError, match='x must be a torch.Tensor'): corrupt(x.numpy(), 'fog', 1)
    with pytest.raises(TypeError, match='x must be a floating tensor'): corrupt((x * 255).byte(), 'fog', 1)
    with pytest.raises(ValueError, match="profile must be one of"): corrupt(x, 'fog', 1, profile='mnist')


# ---------------------------------------------------------------- agreement with the reference's libraries

@pytest.mark.parametrize('size,factor', [(32, 0.95), (32, 0.85), (32, 0.65), (64, 0.7), (8, 0.65)])
def test_pixelate_matches_pillow(size, factor):
    from PIL import Image
    u8 = (smooth_images(1, size)[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    n = int(size * factor)
    ref = np.asarray(Image.fromarray(u8).resize((n, n), Image.BOX).resize((size, size), Image.BOX)) / 255
    ours = rc._pixelate(torch.tensor(u8 / 255).permute(2, 0, 1)[None], factor, None)[0].permute(1, 2, 0).numpy()
    assert np.abs(ref - ours).max() <= 1.01 / 255     # Pillow rounds to 8 bits between its two passes


@pytest.mark.parametrize('quality', [80, 40])
def test_jpeg_matches_pillow(quality):
    from PIL import Image
    u8 = (smooth_images(1)[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    b = io.BytesIO()
    Image.fromarray(u8).save(b, 'JPEG', quality=quality)
    ref = np.asarray(Image.open(b)) / 255
    ours = corrupt(torch.tensor(u8 / 255, dtype=torch.float32).permute(2, 0, 1)[None], 'jpeg_compression',
                   [80, 65, 58, 50, 40].index(quality) + 1)[0].permute(1, 2, 0).numpy()
    assert np.abs(ref - ours).max() <= 1.01 / 255


def test_blur_zoom_and_sampling_match_scipy():
    ndi = pytest.importorskip('scipy.ndimage')
    x = torch.rand(1, 1, 16, 16, dtype=torch.float64, generator=make_generator(0))
    a = x[0, 0].numpy()
    for sigma, mode, ours_mode, trunc in [(1.3, 'nearest', 'edge', 4.0), (2.0, 'reflect', 'symmetric', 3.0)]:
        ref = ndi.gaussian_filter(a, sigma, mode=mode, truncate=trunc)
        np.testing.assert_allclose(rc._gaussian_blur(x, sigma, ours_mode, trunc)[0, 0].numpy(), ref, atol=1e-10)
    # the reference's clipped_zoom (scipy zoom, order 1, central crop)
    for z in (1.06, 1.25, 1.75):
        ch = int(np.ceil(16 / z))
        top = (16 - ch) // 2
        big = ndi.zoom(a[top:top + ch, top:top + ch], z, order=1)
        trim = (big.shape[0] - 16) // 2
        np.testing.assert_allclose(rc._clipped_zoom(x, z)[0, 0].numpy(), big[trim:trim + 16, trim:trim + 16],
                                   atol=1e-10)
    # bilinear sampling with scipy's 'reflect' border (map_coordinates, order 1)
    g = make_generator(1)
    rows = torch.rand(1, 16, 16, generator=g, dtype=torch.float64) * 20 - 2
    cols = torch.rand(1, 16, 16, generator=g, dtype=torch.float64) * 20 - 2
    ref = ndi.map_coordinates(a, [rows[0].numpy(), cols[0].numpy()], order=1, mode='reflect')
    np.testing.assert_allclose(rc._sample(x, rows, cols, 'symmetric')[0, 0].numpy(), ref, atol=1e-10)


def test_motion_blur_is_imagemagick_line_kernel():
    x = torch.zeros(1, 1, 15, 15, dtype=torch.float64)
    x[0, 0, 7, 7] = 1
    y = rc._motion_blur_line(x, 3, 1.5, torch.tensor([0.0]))[0, 0]
    w = np.exp(-np.arange(7) ** 2 / (2 * 1.5 ** 2))
    w /= w.sum()
    # out(x) = sum_i w_i in(x + i): the impulse spreads to the left along the row
    np.testing.assert_allclose(y[7, 1:8].flip(0).numpy(), w, atol=1e-12)
    assert y.sum() == pytest.approx(1.0)


def test_glass_blur_shuffle_is_a_local_permutation():
    x = torch.rand(3, 3, 10, 10, generator=make_generator(0))
    y = rc._glass_blur(x, (0.0, 1, 2), make_generator(1))
    q = torch.floor(x * 255) / 255
    torch.testing.assert_close(y.flatten(2).sort(-1).values, q.flatten(2).sort(-1).values)
    # a pixel's three channels move together
    def key(t): return sorted(map(tuple, t.permute(0, 2, 3, 1).reshape(3, -1, 3)[0].tolist()))
    assert key(y) == key(q)


@pytest.mark.parametrize('m', [1, 2])
def test_glass_blur_waves_equal_the_sequential_walk(m):
    "The wavefront schedule gives exactly the reference's pixel-by-pixel walk (same random offsets)."
    x = torch.rand(2, 3, 11, 13, generator=make_generator(0))
    B, C, H, W = x.shape
    out = torch.floor(x * 255) / 255
    visits = [(h, w) for h in range(H - m, m, -1) for w in range(W - m, m, -1)]
    d = torch.randint(-m, m, (len(visits), B, 2), generator=make_generator(5))
    for k, (h, w) in enumerate(visits):
        for b in range(B):
            dx, dy = d[k, b].tolist()
            t = out[b, :, h, w].clone()
            out[b, :, h, w] = out[b, :, h + dy, w + dx]
            out[b, :, h + dy, w + dx] = t
    assert torch.equal(rc._glass_blur(x, (0.0, m, 1), make_generator(5)), out)


def test_plasma_fractal_and_frost_texture():
    p = rc.plasma_fractal(4, 64, 2.0, make_generator(0))
    assert p.shape == (4, 64, 64) and p.min() == 0 and p.max() == 1
    assert not torch.equal(p[0], p[1])
    t = rc.frost_texture(8, 20, 30, make_generator(0))
    assert t.shape == (8, 3, 20, 30) and 0 <= t.min() and t.max() <= 1
    assert torch.equal(t, rc.frost_texture(8, 20, 30, make_generator(0)))
    with pytest.raises(ValueError, match='power of two'): rc.plasma_fractal(1, 48, 2.0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_cpu_generator_gives_the_same_corruption_on_gpu():
    x = smooth_images(2)
    for name in CORRUPTIONS:
        a = corrupt(x, name, 3, make_generator(0))
        b = corrupt(x.cuda(), name, 3, make_generator(0))
        assert b.device.type == 'cuda'
        torch.testing.assert_close(b.cpu(), a, atol=2 / 255, rtol=0)
