"Tests of robust_labels.corruption_sets: -C sets on disk, published loaders and archives, corruption errors and mCE."
import io, json, tarfile

import numpy as np
import pandas as pd
import pytest
import torch

import robust_labels.corruption_sets as rcs
import robust_labels.corruptions as rc
from robust_labels.core import make_generator
from images import digits, smooth_images
from robust_labels.corruption_sets import (ALEXNET_ERRORS, CorruptionSet, ImageFolderCorruptionSet, corruption_errors,
                                           download_corrupted, load_corrupted, make_corrupted, mce)
from robust_labels.corruptions import CORRUPTIONS, corrupt
from robust_labels.data import file_md5

torch.set_num_threads(1)
SEVERITIES = range(1, 6)


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
        ref = corrupt(x, 'fog', s, make_generator(rcs._derived_seed(0, 'fog', s, 0)))
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
    monkeypatch.setattr(rcs, 'corrupt', lambda *a, **k: pytest.fail('the cached set was recomputed'))
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
    monkeypatch.setattr(rcs, 'CORRUPTIONS_VERSION', rcs.CORRUPTIONS_VERSION + 1)
    assert make_corrupted((x, y), ['fog'], cache_dir=tmp_path, progress=False).root not in (base, new)


def test_make_corrupted_resumes_and_subsets_agree(tmp_path):
    x, y = _xy()
    full = make_corrupted((x, y), ['fog', 'snow', 'zoom_blur'], cache_dir=tmp_path / 'a', progress=False)
    alone = make_corrupted((x, y), ['snow'], cache_dir=tmp_path / 'b', progress=False)
    np.testing.assert_array_equal(np.load(full.root / 'snow.npy'), np.load(alone.root / 'snow.npy'))
    # an interrupted build: one array lost -> only that one is made again, identically
    snow = np.load(full.root / 'snow.npy')
    (full.root / 'snow.npy').unlink()
    again = make_corrupted((x, y), ['fog', 'snow', 'zoom_blur'], cache_dir=tmp_path / 'a', progress=False)
    np.testing.assert_array_equal(np.load(again.root / 'snow.npy'), snow)


def test_make_corrupted_bad_arguments(tmp_path):
    x, y = _xy()
    kw = dict(cache_dir=tmp_path, progress=False)
    with pytest.raises(ValueError, match='corruptions must be one of'): make_corrupted((x, y), ['rain'], **kw)
    with pytest.raises(ValueError, match='severities must be an integer in'):
        make_corrupted((x, y), ['fog'], severities=(0, 1), **kw)
    with pytest.raises(ValueError, match='severities must be distinct'):
        make_corrupted((x, y), ['fog'], severities=(1, 1), **kw)
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
    b = io.BytesIO()
    np.save(b, arr)
    return b.getvalue()


def _tar(path, members):
    "A tar with {name: bytes} members, or (name, TarInfo-edit) tuples for crafted ones."
    with tarfile.open(path, 'w') as t:
        for name, data in members.items():
            if callable(data):
                info = tarfile.TarInfo(name)
                data(info)
                t.addfile(info)
            else:
                info = tarfile.TarInfo(name)
                info.size = len(data)
                t.addfile(info, io.BytesIO(data))
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
    root.mkdir(exist_ok=True)
    (root / 'CIFAR-10-C.tar').write_bytes(b'garbage')
    with pytest.raises(ValueError, match='expected 56bf5dcef84df0e2308c6dcbcbbd8499'):
        download_corrupted('cifar10', root, progress=False)


@pytest.mark.parametrize('evil', ['../escaped.npy', 'CIFAR-10-C/../../escaped.npy', 'link', 'hardlink'])
def test_malicious_tar_is_refused_before_writing(tmp_path, evil):
    members = _fake_cifar_c()
    if evil == 'link':
        def symlink(info):
            info.type = tarfile.SYMTYPE
            info.linkname = '/etc/passwd'
        members['CIFAR-10-C/evil_link'] = symlink
    elif evil == 'hardlink':
        def hardlink(info):
            info.type = tarfile.LNKTYPE
            info.linkname = '../../outside'
        members['CIFAR-10-C/evil_hard'] = hardlink
    else: members[evil] = b'boo'
    src = _tar(tmp_path / 'evil.tar', members)
    root = tmp_path / 'deep' / 'data'
    with pytest.raises(ValueError, match='refusing to extract'):
        download_corrupted('cifar10', root, url=src.as_uri(), md5=file_md5(src), progress=False)
    assert not (root / 'CIFAR-10-C').exists()
    assert not (tmp_path / 'deep' / 'escaped.npy').exists() and not (tmp_path / 'escaped.npy').exists()


def test_absolute_member_stays_inside(tmp_path):
    members = _fake_cifar_c()
    target = tmp_path / 'abs_escape.npy'
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
                d = root / (family or '') / c / str(s) / w
                d.mkdir(parents=True)
                for i in range(per_class):
                    img = Image.fromarray(np.full((size, size, 3), 40 * k + 10 * s, dtype=np.uint8))
                    img.save(d / f'val_{i}.JPEG', quality=95)


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
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.n, self.winner = n_outputs, winner
    def forward(self, x):
        out = torch.zeros(len(x), self.n) + self.w
        out[:, self.winner] = 5
        out[:, 0] += 1
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
    with pytest.raises(ValueError, match='num_classes must be at most'):
        corruption_errors(model, cs, num_classes=5, progress=False)
    with pytest.raises(TypeError, match='data_c must be'): corruption_errors(model, (x, y), progress=False)


def test_mce_on_a_hand_made_table():
    t = pd.DataFrame({1: [10.0, 20.0], 2: [30.0, 40.0]}, index=['fog', 'snow'])
    assert mce(t) == 25.0
    alex = pd.DataFrame({s: [100 * ALEXNET_ERRORS[c] for c in CORRUPTIONS] for s in SEVERITIES}, index=CORRUPTIONS)
    assert mce(alex, 'alexnet') == pytest.approx(100.0)
    half = alex.copy()
    half.loc['fog'] = half.loc['fog'] / 2
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
