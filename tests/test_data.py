"Tests of robust_labels.data: splits, datasets on fake files, safe downloads and archives, loaders, augmentation."
import hashlib, io, pickle, tarfile, zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st
from torch.utils.data import Dataset, Subset, TensorDataset

from robust_labels.data import (
    DATASETS, SPLITS, ByteImageDataset, TensorLoader, as_tensors, data_root, dataset_info, download_file, file_md5,
    get_dataset, make_loader, prepare_tinyimagenet, random_crop_flip, safe_extract_tar, safe_extract_zip,
    split_indices, standard_augment, TINY_IMAGENET_MD5)


# ---------------------------------------------------------------- dataset info and splits

def test_dataset_info():
    assert set(DATASETS) == {'digits', 'cifar10', 'cifar100', 'svhn', 'tinyimagenet', 'imagenet'}
    assert dataset_info('imagenet').num_classes == 1000 and dataset_info('imagenet').shape == (3, 224, 224)
    assert dataset_info('cifar100').num_classes == 100 and dataset_info('svhn').shape == (3, 32, 32)
    assert dataset_info('tinyimagenet').shape == (3, 64, 64)
    for info in DATASETS.values():
        assert len(info.mean) == len(info.std) == info.shape[0]
    with pytest.raises(ValueError, match="name must be one of 'digits', 'cifar10', 'cifar100', 'svhn', 'tinyimagenet', 'imagenet'"):
        dataset_info('mnist')


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 4), min_size=0, max_size=60), st.floats(0, 1), st.text(max_size=8))
def test_split_indices_is_a_stratified_partition(labels, fraction, seed):
    y = torch.tensor(labels, dtype=torch.int64)
    kept, held = split_indices(y, fraction, seed)
    assert sorted(torch.cat([kept, held]).tolist()) == list(range(len(labels)))
    assert torch.equal(kept, kept.sort().values) and torch.equal(held, held.sort().values)
    for c in set(labels):
        n_c = labels.count(c)
        assert int((y[held] == c).sum()) == int(np.floor(fraction * n_c + 0.5))
    k2, h2 = split_indices(y, fraction, seed)
    assert torch.equal(k2, kept) and torch.equal(h2, held)


def test_split_indices_is_pinned():
    "The split is defined by BLAKE2b keys, not a PRNG stream: these values must never change."
    _, held = split_indices(torch.arange(20) % 4, 0.25, 'pin')
    assert held.tolist() == [4, 5, 7, 10]
    from sklearn.datasets import load_digits
    _, test = split_indices(torch.tensor(load_digits().target), 0.2, 'digits/test')
    assert test[:12].tolist() == [7, 10, 14, 26, 27, 30, 31, 32, 41, 42, 45, 56] and int(test.sum()) == 306098


def test_split_seed_changes_the_split():
    y = torch.arange(200) % 2
    assert not torch.equal(split_indices(y, 0.2, 'a')[1], split_indices(y, 0.2, 'b')[1])


def test_split_indices_bad_fraction():
    with pytest.raises(ValueError, match='fraction must be in'): split_indices([0, 1], 1.5, 's')


# ---------------------------------------------------------------- digits

def _rows(ds): return {tuple(r.tolist()) for r in ds.tensors[0].flatten(1)}

def test_digits_splits():
    ds = {s: get_dataset('digits', s) for s in SPLITS}
    assert {s: len(d) for s, d in ds.items()} == {'train': 1151, 'val': 287, 'test': 359, 'train_full': 1438}
    for d in ds.values():
        assert isinstance(d, TensorDataset)
        x, y = d.tensors
        assert x.dtype == torch.float32 and y.dtype == torch.int64 and x.shape[1:] == (1, 8, 8)
        assert float(x.min()) >= 0 and float(x.max()) <= 1 and set(y.unique().tolist()) == set(range(10))
    tr, va, te, full = (_rows(ds[s]) for s in ('train', 'val', 'test', 'train_full'))
    assert not tr & va and not tr & te and not va & te           # images are pairwise distinct in digits
    assert tr | va == full and len(tr | va | te) == 1797
    assert torch.bincount(ds['test'].tensors[1]).tolist() == [36, 36, 35, 37, 36, 36, 36, 36, 35, 36]
    assert torch.bincount(ds['val'].tensors[1]).tolist() == [28, 29, 28, 29, 29, 29, 29, 29, 28, 29]
    # deterministic
    assert torch.equal(get_dataset('digits', 'val').tensors[0], ds['val'].tensors[0])


def test_digits_values_are_sixteenths():
    x = get_dataset('digits', 'train').tensors[0]
    assert torch.allclose(x * 16, (x * 16).round(), atol=1e-5) and float(x.max()) == 1.0


def test_get_dataset_bad_args():
    with pytest.raises(ValueError, match="split must be one of 'train', 'val', 'test', 'train_full'"):
        get_dataset('digits', 'validation')
    with pytest.raises(ValueError, match='name must be one of'): get_dataset('imagenet21k', 'train')


# ---------------------------------------------------------------- data root and missing files

def test_data_root(monkeypatch, tmp_path):
    monkeypatch.setenv('ROBUST_LABELS_DATA', str(tmp_path/'env'))
    assert data_root() == tmp_path/'env' and data_root(tmp_path/'x') == tmp_path/'x'
    monkeypatch.delenv('ROBUST_LABELS_DATA')
    assert data_root() == Path.home()/'.cache'/'robust_labels'/'data'


@pytest.mark.parametrize('name,expected', [('cifar10', 'cifar-10-batches-py'), ('cifar100', 'cifar-100-python'),
                                           ('svhn', 'train_32x32.mat'), ('tinyimagenet', 'tiny-imagenet-200')])
def test_missing_files_say_where_and_how(tmp_path, name, expected):
    with pytest.raises(FileNotFoundError) as e: get_dataset(name, 'train', root=tmp_path)
    msg = str(e.value)
    assert str(tmp_path/expected) in msg and 'download=True' in msg
    assert list(tmp_path.iterdir()) == []                         # nothing was written


# ---------------------------------------------------------------- CIFAR and SVHN on fake files

def _fake_cifar(root, hundred=False, per_batch=10, n_test=20):
    rng = np.random.default_rng(0)
    folder = root/('cifar-100-python' if hundred else 'cifar-10-batches-py')
    folder.mkdir(parents=True)
    key = 'fine_labels' if hundred else 'labels'
    k = 100 if hundred else 10
    names = ['train'] if hundred else [f'data_batch_{i}' for i in range(1, 6)]
    sizes = [5 * per_batch] if hundred else [per_batch] * 5
    start, all_data = 0, []
    for name, n in zip(names, sizes):
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = [(start + i) % k for i in range(n)]; start += n
        all_data.append(data)
        (folder/name).write_bytes(pickle.dumps({'data': data, key: labels}))
    test = rng.integers(0, 256, (n_test, 3072), dtype=np.uint8)
    (folder/('test' if hundred else 'test_batch')).write_bytes(pickle.dumps({'data': test, key: [i % k for i in range(n_test)]}))
    meta_key = 'fine_label_names' if hundred else 'label_names'
    (folder/('meta' if hundred else 'batches.meta')).write_bytes(pickle.dumps({meta_key: [f'c{i}' for i in range(k)]}))
    return np.concatenate(all_data), test


@pytest.fixture
def no_torchvision_md5(monkeypatch):
    "Fake files cannot match torchvision's per-file MD5 list; its check is torchvision's to test, not ours."
    import torchvision.datasets.cifar as c, torchvision.datasets.svhn as s
    monkeypatch.setattr(c, 'check_integrity', lambda *a, **k: True)
    monkeypatch.setattr(s, 'check_integrity', lambda *a, **k: True)


def test_cifar10_on_fake_files(tmp_path, no_torchvision_md5):
    train, test = _fake_cifar(tmp_path)
    ds = {s: get_dataset('cifar10', s, root=tmp_path) for s in SPLITS}
    assert {s: len(d) for s, d in ds.items()} == {'train': 40, 'val': 10, 'test': 20, 'train_full': 50}
    assert isinstance(ds['train'], ByteImageDataset)
    x, y = ds['test'][3]
    assert x.dtype == torch.float32 and x.shape == (3, 32, 32) and y.dtype == torch.int64 and int(y) == 3
    assert torch.equal(x, torch.from_numpy(test[3].reshape(3, 32, 32)).float() / 255)   # channel-first, not garbled
    assert torch.equal(ds['train_full'].images, torch.from_numpy(train.reshape(-1, 3, 32, 32)))
    assert torch.bincount(ds['val'].targets).tolist() == [1] * 10                    # stratified 20%
    assert set(split_indices(ds['train_full'].targets, 0.2, 'cifar10/val')[1].tolist()).isdisjoint(
        split_indices(ds['train_full'].targets, 0.2, 'cifar10/val')[0].tolist())


def test_cifar100_on_fake_files(tmp_path, no_torchvision_md5):
    _fake_cifar(tmp_path, hundred=True, per_batch=40)
    tr, te = get_dataset('cifar100', 'train_full', root=tmp_path), get_dataset('cifar100', 'test', root=tmp_path)
    assert len(tr) == 200 and len(te) == 20 and int(tr.targets.max()) == 99


def test_corrupted_cifar_files_are_reported(tmp_path):
    _fake_cifar(tmp_path)   # real torchvision MD5 check: the fake files fail it
    with pytest.raises(RuntimeError, match='incomplete or corrupted'): get_dataset('cifar10', 'test', root=tmp_path)


def test_cifar_download_through_checked_archive(tmp_path, monkeypatch, no_torchvision_md5):
    import torchvision.datasets as tvd
    src = tmp_path/'src'; _fake_cifar(src)
    archive = tmp_path/'cifar-10-python.tar.gz'
    with tarfile.open(archive, 'w:gz') as t: t.add(src/'cifar-10-batches-py', 'cifar-10-batches-py')
    monkeypatch.setattr(tvd.CIFAR10, 'url', archive.as_uri())
    monkeypatch.setattr(tvd.CIFAR10, 'tgz_md5', file_md5(archive))
    root = tmp_path/'root'
    assert len(get_dataset('cifar10', 'test', root=root, download=True)) == 20
    assert (root/'cifar-10-batches-py'/'test_batch').is_file()


def test_svhn_on_fake_files(tmp_path, no_torchvision_md5):
    from scipy.io import savemat
    rng = np.random.default_rng(0)
    for split, n in (('train', 50), ('test', 12)):
        X = rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)
        y = (np.arange(n) % 10 + 1).reshape(-1, 1)                  # SVHN labels 1..10, 10 meaning digit 0
        savemat(tmp_path/f'{split}_32x32.mat', {'X': X, 'y': y})
        if split == 'test': X_test = X
    te = get_dataset('svhn', 'test', root=tmp_path)
    assert len(te) == 12 and te.targets.tolist()[:10] == [1, 2, 3, 4, 5, 6, 7, 8, 9, 0]
    assert torch.equal(te.images[5], torch.from_numpy(X_test[:, :, :, 5]).permute(2, 0, 1))
    assert len(get_dataset('svhn', 'train', root=tmp_path)) == 40 and len(get_dataset('svhn', 'val', root=tmp_path)) == 10


# ---------------------------------------------------------------- downloads and archives

def test_download_file(tmp_path):
    src = tmp_path/'a.bin'; src.write_bytes(b'x' * 5000)
    md5 = hashlib.md5(b'x' * 5000).hexdigest()
    out = download_file(src.as_uri(), tmp_path/'d'/'b.bin', md5.upper(), progress=False)
    assert out.read_bytes() == b'x' * 5000
    with pytest.raises(ValueError) as e: download_file(src.as_uri(), tmp_path/'d'/'c.bin', '1' * 32, progress=False)
    assert '1' * 32 in str(e.value) and md5 in str(e.value)
    with pytest.raises(OSError, match='could not download'):
        download_file((tmp_path/'missing.bin').as_uri(), tmp_path/'d'/'e.bin', md5, progress=False)
    assert sorted(p.name for p in (tmp_path/'d').iterdir()) == ['b.bin']


def _zip(path, members):
    with zipfile.ZipFile(path, 'w') as z:
        for name, data in members:
            if isinstance(name, zipfile.ZipInfo): z.writestr(name, data)
            else: z.writestr(name, data)
    return path


def _symlink_info(name):
    info = zipfile.ZipInfo(name); info.external_attr = (0o120777 << 16); return info


@pytest.mark.parametrize('bad', ['../evil.txt', 'a/../../evil.txt', '/abs.txt', 'C:/evil.txt', '..\\evil.txt', 'link'])
def test_safe_extract_zip_refuses(tmp_path, bad):
    name = _symlink_info('link') if bad == 'link' else bad
    archive = _zip(tmp_path/'bad.zip', [('ok.txt', 'ok'), (name, '/etc/passwd')])
    with pytest.raises(ValueError, match='refusing to extract'): safe_extract_zip(archive, tmp_path/'out')
    assert not (tmp_path/'out').exists() and not (tmp_path/'evil.txt').exists()


def test_safe_extract_zip_extracts(tmp_path):
    archive = _zip(tmp_path/'ok.zip', [('a/b.txt', 'hello')])
    safe_extract_zip(archive, tmp_path/'out')
    assert (tmp_path/'out'/'a'/'b.txt').read_text() == 'hello'


def test_safe_extract_tar_refuses(tmp_path):
    for i, (name, kind) in enumerate([('../evil.txt', 'file'), ('link', 'symlink')]):
        archive = tmp_path/f'bad{i}.tar'
        with tarfile.open(archive, 'w') as t:
            info = tarfile.TarInfo(name)
            if kind == 'symlink': info.type, info.linkname = tarfile.SYMTYPE, '/etc/passwd'
            else: info.size = 4
            t.addfile(info, io.BytesIO(b'evil') if kind == 'file' else None)
        with pytest.raises(ValueError, match='refusing to extract'): safe_extract_tar(archive, tmp_path/'out')
    assert not (tmp_path/'out').exists() and not (tmp_path/'evil.txt').exists()


# ---------------------------------------------------------------- Tiny-ImageNet on a fake archive

def _fake_tiny(base, classes=('n03', 'n01', 'n02'), per_class=5, val_per_class=2):
    from PIL import Image
    src = base/'src'/'tiny-imagenet-200'
    (src/'val'/'images').mkdir(parents=True); (src/'test'/'images').mkdir(parents=True)
    (src/'wnids.txt').write_text('\n'.join(classes) + '\n')
    ann = []
    for w in classes:
        k = sorted(classes).index(w)
        (src/'train'/w/'images').mkdir(parents=True)
        (src/'train'/w/f'{w}_boxes.txt').write_text('')
        for i in range(per_class):
            img = Image.fromarray(np.full((64, 64, 3), 60 * k + 10 * i, np.uint8))
            (img.convert('L') if i == 0 else img).save(src/'train'/w/'images'/f'{w}_{i}.JPEG', quality=95)
        for i in range(val_per_class):
            name = f'val_{k * val_per_class + i}.JPEG'
            Image.fromarray(np.full((64, 64, 3), 60 * k, np.uint8)).save(src/'val'/'images'/name, quality=95)
            ann.append(f'{name}\t{w}\t0\t0\t63\t63')
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(src/'test'/'images'/'test_0.JPEG')
    (src/'val'/'val_annotations.txt').write_text('\n'.join(ann) + '\n')
    archive = base/'tiny-imagenet-200.zip'
    with zipfile.ZipFile(archive, 'w') as z:
        for p in sorted(src.rglob('*')): z.write(p, p.relative_to(src.parent).as_posix())
    return archive


@pytest.fixture(scope='module')
def tiny_zip(tmp_path_factory): return _fake_tiny(tmp_path_factory.mktemp('tiny'))


def test_tinyimagenet_from_fake_archive(tmp_path, tiny_zip):
    folder = prepare_tinyimagenet(tmp_path, download=True, url=tiny_zip.as_uri(), md5=file_md5(tiny_zip), progress=False)
    assert (folder/'wnids.txt').is_file() and (tmp_path/'tiny-imagenet-200.zip').is_file()
    ds = {s: get_dataset('tinyimagenet', s, root=tmp_path) for s in SPLITS}
    assert {s: len(d) for s, d in ds.items()} == {'train': 12, 'val': 3, 'test': 6, 'train_full': 15}
    assert ds['test'].targets.tolist() == [0, 0, 1, 1, 2, 2]                # classes = sorted wnids
    assert ds['train_full'].targets.tolist() == [0] * 5 + [1] * 5 + [2] * 5
    assert torch.bincount(ds['val'].targets).tolist() == [1, 1, 1]
    x, y = ds['train_full'][6]                                             # class 1 = 'n02', image 1
    assert x.shape == (3, 64, 64) and x.dtype == torch.float32 and int(y) == 1
    assert abs(float(x.mean()) * 255 - 70) < 3                              # JPEG of the constant 60 * 1 + 10
    assert ds['train_full'].images.shape[1] == 3                            # greyscale images became RGB
    cache = folder/'robust_labels_cache'/'train.pt'
    assert cache.is_file()
    assert torch.equal(get_dataset('tinyimagenet', 'train_full', root=tmp_path).images, ds['train_full'].images)
    uncached = get_dataset('tinyimagenet', 'test', root=tmp_path, cache=False)
    assert torch.equal(uncached.images, ds['test'].images)


def test_tinyimagenet_checksum_mismatch_deletes_download(tmp_path, tiny_zip):
    with pytest.raises(ValueError) as e:
        prepare_tinyimagenet(tmp_path, download=True, url=tiny_zip.as_uri(), md5='0' * 32, progress=False)
    assert '0' * 32 in str(e.value) and file_md5(tiny_zip) in str(e.value)
    assert list(tmp_path.iterdir()) == []


def test_tinyimagenet_existing_archive_is_verified(tmp_path, tiny_zip):
    (tmp_path/'tiny-imagenet-200.zip').write_bytes(tiny_zip.read_bytes())
    with pytest.raises(ValueError) as e: get_dataset('tinyimagenet', 'train', root=tmp_path)   # official MD5
    assert TINY_IMAGENET_MD5 in str(e.value) and file_md5(tiny_zip) in str(e.value)
    assert not (tmp_path/'tiny-imagenet-200').exists()


def test_tinyimagenet_malicious_archive(tmp_path):
    evil = _zip(tmp_path/'evil.zip', [('tiny-imagenet-200/wnids.txt', 'n01\n'), ('tiny-imagenet-200/../../escaped.txt', 'x')])
    root = tmp_path/'a'/'root'
    with pytest.raises(ValueError, match="contains '..'"):
        prepare_tinyimagenet(root, download=True, url=evil.as_uri(), md5=file_md5(evil), progress=False)
    assert not (tmp_path/'a'/'escaped.txt').exists() and not (root/'tiny-imagenet-200').exists()


# ---------------------------------------------------------------- in-memory loading

def test_as_tensors():
    ds = get_dataset('digits', 'val')
    x, y = as_tensors(ds)
    assert x.data_ptr() == ds.tensors[0].data_ptr() and y.dtype == torch.int64
    b = ByteImageDataset(torch.full((4, 3, 2, 2), 255, dtype=torch.uint8), torch.arange(4))
    xb, yb = as_tensors(b)
    assert xb.dtype == torch.float32 and float(xb.min()) == 1.0 and torch.equal(yb, torch.arange(4))
    xs, ys = as_tensors(Subset(b, [2, 0]))
    assert ys.tolist() == [2, 0]

    class Plain(Dataset):
        def __len__(self): return 7
        def __getitem__(self, i): return torch.full((1, 2, 2), i / 7), i
    xp, yp = as_tensors(Plain())
    assert xp.shape == (7, 1, 2, 2) and yp.tolist() == list(range(7)) and yp.dtype == torch.int64


def test_byte_image_dataset_checks():
    with pytest.raises(ValueError, match='uint8'): ByteImageDataset(torch.zeros(2, 3, 4, 4), torch.zeros(2))
    with pytest.raises(ValueError, match='same length'): ByteImageDataset(torch.zeros(2, 3, 4, 4, dtype=torch.uint8), torch.zeros(3))


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 50), st.integers(1, 20), st.booleans(), st.booleans(), st.integers(0, 1000))
def test_tensor_loader_covers_every_sample_once(n, batch_size, shuffle, drop_last, seed):
    x, y = torch.rand(n, 1, 2, 2), torch.arange(n)
    loader = TensorLoader(x, y, batch_size, shuffle=shuffle, drop_last=drop_last, generator=torch.Generator().manual_seed(seed))
    batches = list(loader)
    assert len(batches) == len(loader)
    seen = torch.cat([yb for _, yb in batches]) if batches else torch.zeros(0, dtype=torch.int64)
    expected = (n // batch_size) * batch_size if drop_last else n
    assert len(seen) == expected and len(set(seen.tolist())) == expected
    for xb, yb in batches:
        assert torch.equal(xb, x[yb]) and len(yb) <= batch_size
    if not shuffle: assert seen.tolist() == list(range(expected))


def test_tensor_loader_reproducible_per_seed():
    x, y = torch.rand(100, 1, 2, 2), torch.arange(100)
    def order(seed): return torch.cat([yb for _, yb in TensorLoader(x, y, 16, True, generator=torch.Generator().manual_seed(seed))])
    assert torch.equal(order(5), order(5)) and not torch.equal(order(5), order(6))
    loader = TensorLoader(x, y, 16, True, generator=torch.Generator().manual_seed(5))
    e1, e2 = (torch.cat([yb for _, yb in loader]) for _ in range(2))
    assert not torch.equal(e1, e2)                                  # a fresh permutation each epoch


def test_tensor_loader_uint8_and_errors():
    xb, _ = next(iter(TensorLoader(torch.full((3, 1, 2, 2), 51, dtype=torch.uint8), torch.arange(3), 2)))
    assert xb.dtype == torch.float32 and torch.allclose(xb, torch.full_like(xb, 0.2))
    with pytest.raises(ValueError, match='same length'): TensorLoader(torch.rand(3, 1), torch.arange(2), 1)
    with pytest.raises(ValueError, match='batch_size must be an integer in'): TensorLoader(torch.rand(3, 1), torch.arange(3), 0)


def test_make_loader_paths_and_reproducibility():
    ds = get_dataset('digits', 'val')
    fast = make_loader(ds, 64, shuffle=True, device='cpu', generator=torch.Generator().manual_seed(0))
    assert isinstance(fast, TensorLoader) and len(fast) == 5
    b = ByteImageDataset(torch.randint(0, 256, (10, 3, 4, 4), dtype=torch.uint8), torch.arange(10))
    xb, yb = next(iter(make_loader(b, 4, device='cpu')))
    assert xb.dtype == torch.float32 and torch.equal(xb, b.images[:4].float() / 255)
    assert isinstance(make_loader(Subset(b, [1, 2]), 4, device='cpu'), TensorLoader)

    class Plain(Dataset):
        def __len__(self): return 23
        def __getitem__(self, i): return torch.full((1, 2, 2), i / 23), torch.tensor(i)
    slow = make_loader(Plain(), 5, shuffle=True, device='cpu', generator=torch.Generator().manual_seed(1))
    assert not isinstance(slow, TensorLoader) and len(slow) == 5
    def order(): return torch.cat([y for _, y in make_loader(Plain(), 5, True, 'cpu', torch.Generator().manual_seed(1))])
    o = order()
    assert sorted(o.tolist()) == list(range(23)) and torch.equal(o, order())
    assert len(make_loader(Plain(), 5, device='cpu', drop_last=True)) == 4
    with pytest.raises(ValueError, match='num_workers'): make_loader(ds, 4, num_workers=-1)


# ---------------------------------------------------------------- augmentation

def _is_window(out, img, p, flip):
    "Is `out` some p-shifted window of the zero-padded `img` (mirrored when `flip`)?"
    pad = F.pad(img, (p, p, p, p)); h, w = img.shape[-2:]
    for dy in range(2 * p + 1):
        for dx in range(2 * p + 1):
            win = pad[..., dy:dy + h, dx:dx + w]
            if torch.equal(out, win) or (flip and torch.equal(out, win.flip(-1))): return True
    return False


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 6), st.integers(1, 3), st.integers(2, 9), st.integers(2, 9), st.integers(0, 3), st.booleans(),
       st.integers(0, 100))
def test_random_crop_flip_is_a_shifted_window(n, c, h, w, p, flip, seed):
    x = torch.rand(n, c, h, w)
    out = random_crop_flip(x, p, flip, generator=torch.Generator().manual_seed(seed))
    assert out.shape == x.shape and out.dtype == x.dtype
    assert float(out.min()) >= 0 and float(out.max()) <= 1
    for i in range(n): assert _is_window(out[i], x[i], p, flip)


def test_random_crop_flip_varies_and_is_reproducible():
    x = get_dataset('digits', 'val').tensors[0][:200]
    a = random_crop_flip(x, 1, False, generator=torch.Generator().manual_seed(0))
    b = random_crop_flip(x, 1, False, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, b)
    assert (a != x).flatten(1).any(1).float().mean() > 0.6                 # 8 of 9 offsets move the image
    f = random_crop_flip(x, 0, True, generator=torch.Generator().manual_seed(0))
    flipped = torch.tensor([torch.equal(f[i], x[i].flip(-1)) and not torch.equal(f[i], x[i]) for i in range(200)])
    assert 0.3 < flipped.float().mean() < 0.7                              # about half are mirrored
    assert random_crop_flip(x, 0, False) is x


def test_random_crop_flip_bad_args():
    with pytest.raises(ValueError, match='padding must be an integer in'): random_crop_flip(torch.rand(2, 1, 4, 4), -1)
    with pytest.raises(ValueError, match='x must be a tensor N×C×H×W'): random_crop_flip(torch.rand(1, 4, 4), 1)


def test_standard_augment():
    assert (standard_augment('digits').padding, standard_augment('digits').flip) == (1, False)
    for name in ('cifar10', 'cifar100', 'svhn'): assert (standard_augment(name).padding, standard_augment(name).flip) == (4, True)
    assert standard_augment('tinyimagenet').padding == 8
    x, y = torch.rand(5, 1, 8, 8), torch.arange(5)
    xa, ya = standard_augment('digits', generator=torch.Generator().manual_seed(0))(x, y)
    assert ya is y and xa.shape == x.shape
    for i in range(5): assert _is_window(xa[i], x[i], 1, False)
    with pytest.raises(ValueError, match='name must be one of'): standard_augment('mnist')


# ---------------------------------------------------------------- resumable downloads (issue 10 §1)

class RangeServer:
    "A local HTTP server of one file that honours Range requests; `cut` bytes into the first answer it drops the line."
    def __init__(self, data:bytes, cut:int|None=None, ranges:bool=True):
        import http.server, threading
        self.data, self.cut, self.ranges, self.requests = data, cut, ranges, []
        srv = self
        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a): pass
            def do_GET(self):
                rng = self.headers.get('Range')
                srv.requests.append(rng)
                start = int(rng.split('=')[1].rstrip('-')) if rng and srv.ranges else 0
                body = srv.data[start:]
                self.send_response(206 if start else 200)
                self.send_header('Content-Length', str(len(body)))
                self.end_headers()
                if srv.cut is not None and len(srv.requests) == 1:
                    self.wfile.write(body[:srv.cut])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)
        self.httpd = http.server.HTTPServer(('127.0.0.1', 0), Handler)
        self.url = f'http://127.0.0.1:{self.httpd.server_port}/file.bin'
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
    def __enter__(self):
        self.thread.start()
        return self
    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_download_resumes_over_http_after_an_interruption(tmp_path):
    data = bytes(range(256)) * 4000
    md5 = hashlib.md5(data).hexdigest()
    with RangeServer(data, cut=300_000) as srv:
        with pytest.raises(OSError, match='is kept: run the same command again to resume'):
            download_file(srv.url, tmp_path/'f.bin', md5, progress=False)
        part = tmp_path/'f.bin.part'
        assert part.stat().st_size == 300_000 and not (tmp_path/'f.bin').exists()
        out = download_file(srv.url, tmp_path/'f.bin', md5, progress=False)
        assert srv.requests == [None, 'bytes=300000-']          # the second request asked only for the rest
    assert out.read_bytes() == data and not part.exists()


def test_download_restarts_when_the_server_ignores_ranges(tmp_path):
    data = b'abc' * 1000
    (tmp_path/'f.bin.part').write_bytes(b'zzz')               # a stale partial file
    with RangeServer(data, ranges=False) as srv:
        download_file(srv.url, tmp_path/'f.bin', hashlib.md5(data).hexdigest(), progress=False)
    assert (tmp_path/'f.bin').read_bytes() == data


def test_download_resumes_a_file_url_by_offset(tmp_path):
    data = b'0123456789' * 100
    src = tmp_path/'src.bin'
    (tmp_path/'out.bin.part').write_bytes(data[:400])
    src.write_bytes(b'#' * 400 + data[400:])                   # re-reading the first 400 bytes would fail the MD5
    download_file(src.as_uri(), tmp_path/'out.bin', hashlib.md5(data).hexdigest(), progress=False)
    assert (tmp_path/'out.bin').read_bytes() == data


def test_download_mismatch_after_resume_deletes_and_names_both_checksums(tmp_path):
    data = b'x' * 1000
    src = tmp_path/'src.bin'
    src.write_bytes(data)
    (tmp_path/'out.bin.part').write_bytes(b'y' * 300)         # a partial file that is not a prefix of the source
    good = hashlib.md5(data).hexdigest()
    got = hashlib.md5(b'y' * 300 + data[300:]).hexdigest()
    with pytest.raises(ValueError) as e: download_file(src.as_uri(), tmp_path/'out.bin', good, progress=False)
    assert good in str(e.value) and got in str(e.value)
    assert not (tmp_path/'out.bin.part').exists() and not (tmp_path/'out.bin').exists()


# ---------------------------------------------------------------- ImageNet (issue 10 §3)

def fake_imagenet(base, classes=('n01440764', 'n01443537', 'n01484850'), per_class=5, val_per_class=2, seed=0):
    "A generated ILSVRC-2012 ImageFolder tree: train/<wnid>/*.JPEG and val/<wnid>/*.JPEG of random sizes."
    from PIL import Image
    rng = np.random.default_rng(seed)
    for part, n in (('train', per_class), ('val', val_per_class)):
        for w in classes:
            (base/part/w).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                h, wd = int(rng.integers(200, 300)), int(rng.integers(230, 320))
                Image.fromarray(rng.integers(0, 256, (h, wd, 3), dtype=np.uint8)).save(base/part/w/f'{w}_{i}.JPEG')
    return base


@pytest.fixture(scope='module')
def inet(tmp_path_factory):
    return fake_imagenet(tmp_path_factory.mktemp('data')/'imagenet')


def test_imagenet_splits_and_pipeline(inet):
    ds = {s: get_dataset('imagenet', s, root=inet.parent) for s in SPLITS}
    assert {s: len(d) for s, d in ds.items()} == {'train': 12, 'val': 3, 'test': 6, 'train_full': 15}
    assert sorted(ds['train'].files + ds['val'].files) == sorted(ds['train_full'].files)
    assert ds['test'].targets.tolist() == [0, 0, 1, 1, 2, 2]
    for d in ds.values():
        x, y = d[0]
        assert x.shape == (3, 224, 224) and x.dtype == torch.float32 and y.dtype == torch.int64
        assert 0 <= float(x.min()) and float(x.max()) <= 1
    assert torch.equal(ds['test'][1][0], ds['test'][1][0]) and torch.equal(ds['val'][0][0], ds['val'][0][0])
    torch.manual_seed(0)
    assert not torch.equal(ds['train'][0][0], ds['train'][0][0])      # RandomResizedCrop + flip draw anew
    names = [type(t).__name__ for t in ds['train'].transform.transforms]
    assert names == ['RandomResizedCrop', 'RandomHorizontalFlip', 'ToTensor']
    ev = ds['test'].transform.transforms
    assert [type(t).__name__ for t in ev] == ['Resize', 'CenterCrop', 'ToTensor'] and ev[0].size == 256
    # root may also be the ImageNet folder itself, or come from $ROBUST_LABELS_IMAGENET
    assert get_dataset('imagenet', 'test', root=inet).files == ds['test'].files


def test_imagenet_from_environment(inet, monkeypatch):
    monkeypatch.setenv('ROBUST_LABELS_IMAGENET', str(inet))
    assert len(get_dataset('imagenet', 'test')) == 6


def test_imagenet_loader_uses_workers(inet):
    ds = get_dataset('imagenet', 'test', root=inet)
    assert ds.num_workers >= 1
    dl = make_loader(ds, 4, device='cpu', num_workers=1)
    assert dl.loader.num_workers == 1 and dl.loader.pin_memory is False
    batches = [(x.shape, y.tolist()) for x, y in dl]
    assert batches == [((4, 3, 224, 224), [0, 0, 1, 1]), ((2, 3, 224, 224), [2, 2])]
    assert make_loader(ds, 4, device='cpu').loader.num_workers == ds.num_workers   # the dataset's own by default


def test_in_memory_datasets_keep_zero_workers():
    class Plain(Dataset):
        def __len__(self): return 3
        def __getitem__(self, i): return torch.zeros(1), i
    assert make_loader(Plain(), 2, device='cpu').loader.num_workers == 0
    assert type(make_loader(get_dataset('digits', 'test'), 64, device='cpu')).__name__ == 'TensorLoader'


def test_imagenet_missing_and_bad_layout(tmp_path, inet):
    with pytest.raises(FileNotFoundError, match='no public download.*image-net.org'):
        get_dataset('imagenet', 'train', root=tmp_path)
    with pytest.raises(ValueError, match='download=True is not possible for imagenet'):
        get_dataset('imagenet', 'train', root=inet, download=True)
    bad = fake_imagenet(tmp_path/'bad', per_class=1, val_per_class=1)
    (bad/'val'/'n01440764').rename(bad/'val'/'n99999999')
    with pytest.raises(ValueError, match='different class folders'): get_dataset('imagenet', 'test', root=bad)
    empty = tmp_path/'empty'
    (empty/'train'/'n01440764').mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match='no images'): get_dataset('imagenet', 'train', root=empty)


def test_imagenet_standard_augment_is_the_identity():
    x = torch.rand(2, 3, 8, 8)
    assert torch.equal(standard_augment('imagenet')(x, None)[0], x)
