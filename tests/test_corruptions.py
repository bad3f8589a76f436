"Tests of robust_labels.corruptions: the 15 corruptions, -C sets on disk, published loaders, errors/mCE, CIFAR-10-C-bar."
import io, json, os, tarfile

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st

import robust_labels.corruptions as rc
from robust_labels.core import make_generator
from robust_labels.corruptions import (ALEXNET_ERRORS, CBAR_CORRUPTIONS, CORRUPTIONS, CorruptionSet, ImageFolderCorruptionSet,
                                       augmented_validation, cbar_corrupt, corrupt, corruption_errors, corruption_profile,
                                       download_corrupted, load_corrupted, make_corrupted, mce)
from robust_labels.data import file_md5

torch.set_num_threads(1)
SEVERITIES = range(1, 6)
# Corruptions whose reference constants do not order the pixel change by severity (see the notebook).
UNORDERED = {'elastic_transform', 'frost', 'glass_blur'}


def smooth_images(n=4, size=32, channels=3, seed=0):
    "Smooth random images (bicubic up-sampled noise): closer to natural images than white noise."
    z = torch.rand(n, channels, max(2, size // 4), max(2, size // 4), generator=make_generator(seed))
    return F.interpolate(z, size=size, mode='bicubic', align_corners=False).clamp(0, 1)


def digits(n=6):
    from sklearn.datasets import load_digits
    return torch.tensor(load_digits().images[:n] / 16, dtype=torch.float32)[:, None]


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
    assert rc.corruption_constant('defocus_blur', 5, 28) == pytest.approx((1.5 * 28 / 32, 0.1 * 28 / 32))  # lengths scaled
    assert rc.corruption_constant('defocus_blur', 5, 16) == (1.5, 0.1)  # 16 px is corrupted at 32 px, constants as they are
    assert rc.corruption_constant('glass_blur', 5, 28) == pytest.approx((0.35, 1, 2))                    # shifts stay >= 1
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
    assert rc.CBAR_SEVERITIES['sparkles'] == (0.7, 3.5, 5.6, 6.3, 7.0)


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
    b = io.BytesIO(); Image.fromarray(u8).save(b, 'JPEG', quality=quality)
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
        ch = int(np.ceil(16 / z)); top = (16 - ch) // 2
        big = ndi.zoom(a[top:top + ch, top:top + ch], z, order=1)
        trim = (big.shape[0] - 16) // 2
        np.testing.assert_allclose(rc._clipped_zoom(x, z)[0, 0].numpy(), big[trim:trim + 16, trim:trim + 16], atol=1e-10)
    # bilinear sampling with scipy's 'reflect' border (map_coordinates, order 1)
    g = make_generator(1)
    rows, cols = torch.rand(1, 16, 16, generator=g, dtype=torch.float64) * 20 - 2, torch.rand(1, 16, 16, generator=g, dtype=torch.float64) * 20 - 2
    ref = ndi.map_coordinates(a, [rows[0].numpy(), cols[0].numpy()], order=1, mode='reflect')
    np.testing.assert_allclose(rc._sample(x, rows, cols, 'symmetric')[0, 0].numpy(), ref, atol=1e-10)


def test_motion_blur_is_imagemagick_line_kernel():
    x = torch.zeros(1, 1, 15, 15, dtype=torch.float64); x[0, 0, 7, 7] = 1
    y = rc._motion_blur_line(x, 3, 1.5, torch.tensor([0.0]))[0, 0]
    w = np.exp(-np.arange(7) ** 2 / (2 * 1.5 ** 2)); w /= w.sum()
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
            dx, dy = d[k, b].tolist(); t = out[b, :, h, w].clone()
            out[b, :, h, w] = out[b, :, h + dy, w + dx]; out[b, :, h + dy, w + dx] = t
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


# ---------------------------------------------------------------- make_corrupted and the cache

def _xy(n=5, size=8, channels=1, seed=0):
    return smooth_images(n, size, channels, seed), torch.arange(n) % 3


def test_make_corrupted_layout(tmp_path):
    x, y = _xy()
    cs = make_corrupted((x, y), ['fog', 'gaussian_noise'], cache_dir=tmp_path, name='toy', progress=False)
    assert cs.root.parent == tmp_path and cs.root.name.startswith('toy-C-')
    a = np.load(cs.root / 'fog.npy')
    assert a.shape == (5 * 5, 8, 8, 1) and a.dtype == np.uint8
    np.testing.assert_array_equal(np.load(cs.root / 'labels.npy'), np.tile(y.numpy(), 5))
    # block s holds severity s in test-set order
    for s in SEVERITIES:
        ref = corrupt(x, 'fog', s, make_generator(rc._derived_seed(0, 'fog', s, 0)))
        np.testing.assert_array_equal(a[(s - 1) * 5:s * 5], (ref * 255).round().byte().permute(0, 2, 3, 1).numpy())
        xs, ys = cs.load('fog', s)
        assert xs.shape == (5, 1, 8, 8) and torch.equal(ys, y)
    manifest = json.loads((cs.root / 'manifest.json').read_text())
    assert manifest['corruptions'] == ['fog', 'gaussian_noise'] and manifest['seed'] == 0
    assert not [p for p in cs.root.iterdir() if p.name.startswith('.')]      # no temporary files left


def test_make_corrupted_accepts_a_dataset_and_rgb(tmp_path):
    from torch.utils.data import TensorDataset
    x, y = _xy(4, 32, 3)
    cs = make_corrupted(TensorDataset(x, y), ['contrast'], severities=(2, 5), cache_dir=tmp_path, progress=False)
    assert np.load(cs.root / 'contrast.npy').shape == (8, 32, 32, 3)
    assert cs.severities == [2, 5]
    torch.testing.assert_close(cs.load('contrast', 5)[0], corrupt(x, 'contrast', 5), atol=0.5 / 255, rtol=0)


def test_make_corrupted_reuses_the_cache(tmp_path, monkeypatch):
    x, y = _xy()
    first = make_corrupted((x, y), ['snow'], cache_dir=tmp_path, progress=False)
    before = np.load(first.root / 'snow.npy')
    monkeypatch.setattr(rc, 'corrupt', lambda *a, **k: pytest.fail('the cached set was recomputed'))
    again = make_corrupted((x, y), ['snow'], cache_dir=tmp_path, progress=False)
    assert again.root == first.root
    np.testing.assert_array_equal(np.load(again.root / 'snow.npy'), before)


def test_make_corrupted_invalidates_on_changed_constants_seed_or_data(tmp_path, monkeypatch):
    x, y = _xy()
    base = make_corrupted((x, y), ['fog'], cache_dir=tmp_path, progress=False).root
    assert make_corrupted((x, y), ['fog'], seed=1, cache_dir=tmp_path, progress=False).root != base
    assert make_corrupted((x.flip(-1), y), ['fog'], cache_dir=tmp_path, progress=False).root != base
    changed = dict(rc.CORRUPTION_CONSTANTS['cifar'], fog=[(0.3, 3)] * 5)
    monkeypatch.setitem(rc.CORRUPTION_CONSTANTS, 'cifar', changed)
    new = make_corrupted((x, y), ['fog'], cache_dir=tmp_path, progress=False).root
    assert new != base
    assert not np.array_equal(np.load(new / 'fog.npy'), np.load(base / 'fog.npy'))
    monkeypatch.setattr(rc, 'CORRUPTIONS_VERSION', rc.CORRUPTIONS_VERSION + 1)
    assert make_corrupted((x, y), ['fog'], cache_dir=tmp_path, progress=False).root not in (base, new)


def test_make_corrupted_resumes_and_subsets_agree(tmp_path):
    x, y = _xy()
    full = make_corrupted((x, y), ['fog', 'snow', 'zoom_blur'], cache_dir=tmp_path / 'a', progress=False)
    alone = make_corrupted((x, y), ['snow'], cache_dir=tmp_path / 'b', progress=False)
    np.testing.assert_array_equal(np.load(full.root / 'snow.npy'), np.load(alone.root / 'snow.npy'))
    # an interrupted build: one array lost -> only that one is made again, identically
    snow = np.load(full.root / 'snow.npy'); (full.root / 'snow.npy').unlink()
    again = make_corrupted((x, y), ['fog', 'snow', 'zoom_blur'], cache_dir=tmp_path / 'a', progress=False)
    np.testing.assert_array_equal(np.load(again.root / 'snow.npy'), snow)


def test_make_corrupted_bad_arguments(tmp_path):
    x, y = _xy()
    kw = dict(cache_dir=tmp_path, progress=False)
    with pytest.raises(ValueError, match='corruptions must be one of'): make_corrupted((x, y), ['rain'], **kw)
    with pytest.raises(ValueError, match='severities must be an integer in'): make_corrupted((x, y), ['fog'], severities=(0, 1), **kw)
    with pytest.raises(ValueError, match='severities must be distinct'): make_corrupted((x, y), ['fog'], severities=(1, 1), **kw)
    with pytest.raises(ValueError, match='seed must be an integer'): make_corrupted((x, y), ['fog'], seed=-1, **kw)
    with pytest.raises(ValueError, match=r'x must lie in \[0, 1\]'): make_corrupted((x * 2, y), ['fog'], **kw)
    with pytest.raises(ValueError, match='y must be 5 integer labels'): make_corrupted((x, y[:3]), ['fog'], **kw)
    with pytest.raises(ValueError, match='pair'): make_corrupted((x, y, y), ['fog'], **kw)


def test_load_corrupted_digits(tmp_path):
    cs = load_corrupted('digits', root=tmp_path, corruptions=['contrast'], progress=False)
    x, y = cs.load('contrast', 1)
    assert x.shape == (359, 1, 8, 8) and y.dtype == torch.int64
    assert cs.root.parent == tmp_path / 'corruptions'


# ---------------------------------------------------------------- published layouts, downloads, archives

def _npy_bytes(arr):
    b = io.BytesIO(); np.save(b, arr); return b.getvalue()


def _tar(path, members):
    "A tar with {name: bytes} members, or (name, TarInfo-edit) tuples for crafted ones."
    with tarfile.open(path, 'w') as t:
        for name, data in members.items():
            if callable(data):
                info = tarfile.TarInfo(name); data(info); t.addfile(info)
            else:
                info = tarfile.TarInfo(name); info.size = len(data); t.addfile(info, io.BytesIO(data))
    return path


def _fake_cifar_c(folder='CIFAR-10-C', n=3, extras=('speckle_noise',)):
    rng = np.random.default_rng(0)
    members = {f'{folder}/{c}.npy': _npy_bytes(rng.integers(0, 256, (5 * n, 32, 32, 3), dtype=np.uint8))
               for c in CORRUPTIONS + list(extras)}
    members[f'{folder}/labels.npy'] = _npy_bytes(np.tile(np.arange(n, dtype=np.uint8), 5))   # published: uint8, S*N
    return members


def test_download_verify_extract_and_load_cifar_c(tmp_path):
    src = _tar(tmp_path / 'CIFAR-100-C.tar', _fake_cifar_c('CIFAR-100-C'))
    root = tmp_path / 'data'
    folder = download_corrupted('cifar100', root, url=src.as_uri(), md5=file_md5(src), progress=False)
    assert folder == root / 'CIFAR-100-C' and (folder / '.verified.json').is_file()
    assert not (root / 'CIFAR-100-C.tar').exists()
    cs = load_corrupted('cifar100', root=root)
    assert isinstance(cs, CorruptionSet) and cs.corruptions == CORRUPTIONS       # the extra corruption is left out
    x, y = cs.load('glass_blur', 4)
    assert x.shape == (3, 3, 32, 32) and x.dtype == torch.float32 and y.tolist() == [0, 1, 2]
    raw = np.load(folder / 'glass_blur.npy')[9:12]
    torch.testing.assert_close(x, torch.tensor(raw).permute(0, 3, 1, 2).float() / 255)
    assert [len(b[0]) for b in cs.batches('fog', 1, batch_size=2)] == [2, 1]
    assert CorruptionSet(folder, ['speckle_noise']).corruptions == ['speckle_noise']
    # a second call finds the verified folder and downloads nothing
    assert download_corrupted('cifar100', root, url='file:///nonexistent', progress=False) == folder


def test_checksum_mismatch_deletes_the_partial_file(tmp_path):
    src = _tar(tmp_path / 'x.tar', _fake_cifar_c())
    root = tmp_path / 'data'
    with pytest.raises(ValueError) as e:
        download_corrupted('cifar10', root, url=src.as_uri(), progress=False)
    assert '56bf5dcef84df0e2308c6dcbcbbd8499' in str(e.value) and file_md5(src) in str(e.value)
    assert not list(root.glob('*')) or not [p for p in root.iterdir() if p.name.endswith('.part') or p.suffix == '.tar']
    assert not (root / 'CIFAR-10-C').exists()
    # an archive already on disk with the wrong MD5 is refused, not trusted
    root.mkdir(exist_ok=True); (root / 'CIFAR-10-C.tar').write_bytes(b'garbage')
    with pytest.raises(ValueError, match='expected 56bf5dcef84df0e2308c6dcbcbbd8499'):
        download_corrupted('cifar10', root, progress=False)


@pytest.mark.parametrize('evil', ['../escaped.npy', 'CIFAR-10-C/../../escaped.npy', 'link', 'hardlink'])
def test_malicious_tar_is_refused_before_writing(tmp_path, evil):
    members = _fake_cifar_c()
    if evil == 'link':
        def symlink(info): info.type = tarfile.SYMTYPE; info.linkname = '/etc/passwd'
        members['CIFAR-10-C/evil_link'] = symlink
    elif evil == 'hardlink':
        def hardlink(info): info.type = tarfile.LNKTYPE; info.linkname = '../../outside'
        members['CIFAR-10-C/evil_hard'] = hardlink
    else: members[evil] = b'boo'
    src = _tar(tmp_path / 'evil.tar', members)
    root = tmp_path / 'deep' / 'data'
    with pytest.raises(ValueError, match='refusing to extract'):
        download_corrupted('cifar10', root, url=src.as_uri(), md5=file_md5(src), progress=False)
    assert not (root / 'CIFAR-10-C').exists()
    assert not (tmp_path / 'deep' / 'escaped.npy').exists() and not (tmp_path / 'escaped.npy').exists()


def test_absolute_member_stays_inside(tmp_path):
    members = _fake_cifar_c(); target = tmp_path / 'abs_escape.npy'
    members[str(target)] = b'boo'                       # an absolute path: filter='data' strips the leading '/'
    src = _tar(tmp_path / 'abs.tar', members)
    root = tmp_path / 'data'
    download_corrupted('cifar10', root, url=src.as_uri(), md5=file_md5(src), progress=False)
    assert not target.exists() and (root / str(target).lstrip('/')).is_file()


def test_missing_published_set_explains_how_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError, match='download=True'):
        load_corrupted('cifar10', root=tmp_path)
    with pytest.raises(ValueError, match="dataset must be one of"):
        load_corrupted('mnist')


def _jpeg_tree(root, corruptions=('fog', 'snow'), wnids=('n02', 'n01'), per_class=2, family=None, size=16):
    from PIL import Image
    for c in corruptions:
        for s in SEVERITIES:
            for k, w in enumerate(wnids):
                d = root / (family or '') / c / str(s) / w; d.mkdir(parents=True)
                for i in range(per_class):
                    Image.fromarray(np.full((size, size, 3), 40 * k + 10 * s, dtype=np.uint8)).save(d / f'val_{i}.JPEG', quality=95)


def test_tiny_imagenet_c_folder_layout(tmp_path):
    root = tmp_path / 'data' / 'Tiny-ImageNet-C'
    _jpeg_tree(root)
    cs = load_corrupted('tinyimagenet', root=tmp_path / 'data')
    assert isinstance(cs, ImageFolderCorruptionSet)
    assert cs.corruptions == ['snow', 'fog'] and cs.wnids == ['n01', 'n02']   # benchmark order; sorted wnids
    x, y = cs.load('fog', 3)
    assert x.shape == (4, 3, 16, 16) and y.tolist() == [0, 0, 1, 1]
    # _jpeg_tree wrote n02 with value 30 and n01 with value 70 at severity 3; class 0 is the first sorted wnid, n01
    assert abs(x[0].mean().item() * 255 - 70) < 3 and abs(x[2].mean().item() * 255 - 30) < 3
    cs2 = ImageFolderCorruptionSet(root, wnids=['n02', 'n01'])
    assert abs(cs2.load('fog', 3)[0][0].mean().item() * 255 - 30) < 3


def test_imagenet_c_with_family_folders(tmp_path):
    _jpeg_tree(tmp_path / 'inc', corruptions=('gaussian_noise',), family='noise')
    _jpeg_tree(tmp_path / 'inc', corruptions=('contrast',), family='digital')
    cs = load_corrupted('imagenet', root=tmp_path / 'inc')
    assert cs.corruptions == ['gaussian_noise', 'contrast']
    assert cs.load('contrast', 5)[0].shape == (4, 3, 16, 16)
    with pytest.raises(FileNotFoundError): ImageFolderCorruptionSet(tmp_path / 'inc', corruptions=['fog'])


# ---------------------------------------------------------------- errors and mCE

class ConstantModel(torch.nn.Module):
    "Logits that always favour `winner`; a parameter so the device is known."
    def __init__(self, n_outputs, winner):
        super().__init__(); self.w = torch.nn.Parameter(torch.zeros(1)); self.n, self.winner = n_outputs, winner
    def forward(self, x):
        out = torch.zeros(len(x), self.n) + self.w
        out[:, self.winner] = 5; out[:, 0] += 1
        return out


def test_corruption_errors_table(tmp_path):
    x, y = _xy(6)                                # labels 0, 1, 2, 0, 1, 2
    cs = make_corrupted((x, y), ['fog', 'contrast'], cache_dir=tmp_path, progress=False)
    model = ConstantModel(3, 0).train()
    table = corruption_errors(model, cs, progress=False)
    assert list(table.index) == ['fog', 'contrast'] and list(table.columns) == [1, 2, 3, 4, 5]
    assert np.allclose(table.to_numpy(), 100 * 4 / 6)            # predicts 0; four of six labels are not 0
    assert model.training                                        # mode restored
    # a VS model: the virtual logit (index 3) wins overall, but prediction uses the first K = 3 logits
    vs = ConstantModel(4, 3)
    assert np.allclose(corruption_errors(vs, cs, num_classes=3, progress=False).to_numpy(), 100 * 4 / 6)
    assert np.allclose(corruption_errors(vs, cs, progress=False).to_numpy(), 100.0)
    one = corruption_errors(model, cs, corruptions=['fog'], severities=[2], batch_size=4, progress=False)
    assert one.shape == (1, 1)
    with pytest.raises(ValueError, match='num_classes must be at most'): corruption_errors(model, cs, num_classes=5, progress=False)
    with pytest.raises(TypeError, match='data_c must be'): corruption_errors(model, (x, y), progress=False)


def test_mce_on_a_hand_made_table():
    t = pd.DataFrame({1: [10.0, 20.0], 2: [30.0, 40.0]}, index=['fog', 'snow'])
    assert mce(t) == 25.0
    alex = pd.DataFrame({s: [100 * ALEXNET_ERRORS[c] for c in CORRUPTIONS] for s in SEVERITIES}, index=CORRUPTIONS)
    assert mce(alex, 'alexnet') == pytest.approx(100.0)
    half = alex.copy(); half.loc['fog'] = half.loc['fog'] / 2
    assert mce(half, 'alexnet') == pytest.approx(100 - 50 / 15)
    flat = pd.DataFrame(20.0, index=CORRUPTIONS[::-1], columns=list(SEVERITIES))      # row order does not matter
    assert mce(flat, 'alexnet') == pytest.approx(np.mean([20 / ALEXNET_ERRORS[c] for c in CORRUPTIONS]))
    assert mce(flat) == 20.0


def test_mce_bad_arguments():
    t = pd.DataFrame({1: [10.0]}, index=['fog'])
    with pytest.raises(ValueError, match="normalize must be one of"): mce(t, 'imagenet')
    with pytest.raises(ValueError, match='missing'): mce(t, 'alexnet')
    with pytest.raises(ValueError, match='in percent'): mce(t * 20)
    with pytest.raises(ValueError, match='in percent'): mce(pd.DataFrame())
    with pytest.raises(TypeError, match='DataFrame'): mce({'fog': [10.0]})
    four = pd.DataFrame(20.0, index=CORRUPTIONS, columns=[1, 2, 3, 4])
    with pytest.raises(ValueError, match='5 severities'): mce(four, 'alexnet')


# ---------------------------------------------------------------- CIFAR-10-C-bar and the augmented validation set

@pytest.mark.parametrize('name', CBAR_CORRUPTIONS)
def test_cbar_corruptions(name):
    x = smooth_images(2)
    for s in SEVERITIES:
        y = cbar_corrupt(x, name, s, make_generator(s))
        assert y.shape == x.shape and y.dtype == x.dtype and 0 <= y.min() and y.max() <= 1
        assert not torch.equal(y, x), (name, s)
    assert torch.equal(cbar_corrupt(x, name, 3, make_generator(1)), cbar_corrupt(x, name, 3, make_generator(1)))
    g = cbar_corrupt(digits(2), name, 4, make_generator(0))
    assert g.shape == (2, 1, 8, 8) and 0 <= g.min() and g.max() <= 1


def test_cbar_specifics():
    x = smooth_images(3)
    # blue-noise sample only blacks out pixels (all channels together)
    y = cbar_corrupt(x, 'blue_noise_sample', 5, make_generator(0))
    dark = (y == 0).all(1)
    assert dark.any() and torch.equal(y[~dark.unsqueeze(1).expand_as(y)], x[~dark.unsqueeze(1).expand_as(x)])
    # checkerboard cutout paints cells mid-gray and leaves the rest
    y = cbar_corrupt(x, 'checkerboard_cutout', 5, make_generator(0))
    changed = (y != x).any(1)
    assert torch.allclose(y.permute(0, 2, 3, 1)[changed], torch.tensor(128 / 255))
    # circular motion blur is deterministic (no random parameter)
    assert torch.equal(cbar_corrupt(x, 'circular_motion_blur', 2, make_generator(0)), cbar_corrupt(x, 'circular_motion_blur', 2, make_generator(9)))
    with pytest.raises(ValueError, match="name must be one of 'blue_noise_sample'"): cbar_corrupt(x, 'fog', 1)


def test_augmented_validation():
    x, y = smooth_images(20, seed=3), torch.arange(20) % 10
    xa, ya = augmented_validation(x, y, make_generator(0))
    assert xa.shape == x.shape and torch.equal(ya, y)
    assert (xa - x).flatten(1).abs().amax(1).gt(0).float().mean() >= 0.9
    assert torch.equal(xa, augmented_validation(x, y, make_generator(0))[0])
    assert not torch.equal(xa, augmented_validation(x, y, make_generator(1))[0])
    xall, yall = augmented_validation(x[:2], y[:2], make_generator(0), corruptions=['lines', 'ripple'], severities=(1, 5), mode='all')
    assert xall.shape == (8, 3, 32, 32) and yall.tolist() == [0, 1] * 4
    with pytest.raises(ValueError, match="mode must be one of 'sample', 'all'"): augmented_validation(x, y, mode='both')
    with pytest.raises(ValueError, match='corruptions must be one of'): augmented_validation(x, y, corruptions=['fog'])
    with pytest.raises(ValueError, match='y must hold 20 labels'): augmented_validation(x, y[:3])
