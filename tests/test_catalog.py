"Tests of robust_labels.catalog: what a selection needs, where it is, downloads from file:// sources, layout checks."
import dataclasses, hashlib, io, json, tarfile, zipfile
from pathlib import Path

import numpy as np
import pytest

import robust_labels.catalog as cat
from robust_labels.catalog import CATALOG, check, download, needed, status
from robust_labels.corruptions import CORRUPTIONS


def _md5(p): return hashlib.md5(Path(p).read_bytes()).hexdigest()


def _serve(monkeypatch, name, archive:Path, file_name=None):
    "Point the catalogue entry `name` at a local archive (file:// URL) and its MD5."
    e = CATALOG[name]
    monkeypatch.setitem(CATALOG, name, dataclasses.replace(e, files=((archive.as_uri(), file_name or e.files[0][1],
                                                                      _md5(archive)),)))


def fake_c_tar(base:Path, folder='CIFAR-10-C', n=4, shape=(32, 32, 3)):
    src = base/'src'/folder
    src.mkdir(parents=True)
    np.save(src/'labels.npy', np.tile(np.arange(n), 5))
    for c in CORRUPTIONS: np.save(src/f'{c}.npy', np.zeros((5 * n,) + shape, np.uint8))
    tar = base/f'{folder}.tar'
    with tarfile.open(tar, 'w') as t: t.add(src, arcname=folder)
    return tar


def fake_cifar10_tgz(base:Path):
    src = base/'src'/'cifar-10-batches-py'
    src.mkdir(parents=True)
    for f in ['data_batch_1', 'data_batch_2', 'data_batch_3', 'data_batch_4', 'data_batch_5', 'test_batch', 'batches.meta']:
        (src/f).write_bytes(b'x')
    tgz = base/'cifar-10-python.tar.gz'
    with tarfile.open(tgz, 'w:gz') as t: t.add(src, arcname='cifar-10-batches-py')
    return tgz


def image_tree(base:Path, wnids, n=1):
    from PIL import Image
    for w in wnids:
        (base/w).mkdir(parents=True, exist_ok=True)
        for i in range(n): Image.new('RGB', (4, 4)).save(base/w/f'{w}_{i}.JPEG')


WNIDS = ['n01440764', 'n01443537', 'n01484850']


# ---------------------------------------------------------------- the catalogue and what a selection needs

def test_catalogue_names_and_checksums():
    assert list(CATALOG) == ['digits', 'cifar10', 'cifar100', 'svhn', 'tinyimagenet', 'imagenet', 'cifar10-c',
                             'cifar100-c', 'tinyimagenet-c', 'imagenet-c', 'unlabeled', 'outliers', 'ood-test']
    from robust_labels.corruption_sets import PUBLISHED_C
    from robust_labels.data import TINY_IMAGENET_MD5
    assert CATALOG['cifar100-c'].files[0][2] == PUBLISHED_C['cifar100']['md5']
    assert CATALOG['tinyimagenet'].files[0][2] == TINY_IMAGENET_MD5
    assert CATALOG['cifar10'].files[0][2] == 'c58f30108f718f92721af3b95e74349a'
    assert not CATALOG['imagenet'].files and not CATALOG['outliers'].files


def test_unknown_names_list_the_known_ones():
    for f in (lambda: status(['cifar11']), lambda: download('cifar11'), lambda: check('cifar11')):
        with pytest.raises(ValueError, match="name must be one of 'digits', 'cifar10', .*'ood-test'"): f()


def test_needed_from_parameter_dicts():
    assert needed([{'setups': [['digits', 'cnn']], 'evals': ['mce', 'ood'], 'regime': 'rst'}]) == ['digits']
    assert needed([{'setups': [['cifar10', 'wrn-40-2'], ['cifar100', 'wrn-40-2']], 'evals': ['mce']}]) == \
        ['cifar10', 'cifar100', 'cifar10-c', 'cifar100-c']
    assert needed([{'rows': [['cifar10', 'wrn-28-10', 'rst', 'vs', 0.7, 10.0]], 'evals': ['accuracy']}]) == \
        ['cifar10', 'unlabeled']
    assert needed([{'setups': [['svhn', 'resnet18']], 'rows': [['ssl', 'vs', 0.05, 1]], 'evals': ['ood']}]) == \
        ['svhn', 'outliers', 'ood-test']
    assert needed([{'dataset': 'imagenet', 'evals': ['mce']}]) == ['imagenet', 'imagenet-c']
    assert needed([]) == []
    with pytest.raises(TypeError, match='params_list must be a list'): needed({'dataset': 'cifar10'})
    with pytest.raises(TypeError, match='params_list must hold'): needed(['cifar10'])


def test_needed_reads_the_notebook_for_its_evaluations(tmp_path):
    nb = tmp_path/'x.ipynb'
    nb.write_text(json.dumps({'cells': [{'cell_type': 'code', 'source': ["run_grid(c, evals=['accuracy', 'mce'])"]}]}))
    assert needed([{'dataset': 'cifar10'}]) == ['cifar10']
    assert needed([{'dataset': 'cifar10', 'notebook': str(nb)}]) == ['cifar10', 'cifar10-c']
    with pytest.raises(FileNotFoundError, match='no_such.ipynb'): needed([{'dataset': 'cifar10', 'notebook': 'no_such.ipynb'}])


def test_needed_for_the_registry_presets():
    import tomllib
    from robust_labels.core import repo_root
    exps = {f.stem: tomllib.loads(f.read_text()) for f in (repo_root()/'data'/'experiments').glob('*.toml')}
    need = lambda preset, names: needed([dict(exps[n]['presets'][preset], notebook=exps[n]['notebook']) for n in names])
    assert need('smoke', exps) == ['digits']
    assert need('paper', ['spider_table1']) == ['cifar10', 'cifar100']
    assert need('paper', ['spider_table3']) >= ['cifar10', 'cifar100']
    assert {'cifar10-c', 'cifar100-c'} <= set(need('paper', ['spider_table3']))
    assert 'unlabeled' in need('paper', ['vs_table6'])
    assert {'outliers', 'ood-test'} <= set(need('paper', ['vs_table11']))


# ---------------------------------------------------------------- status

def test_status_where_present_size(tmp_path, monkeypatch):
    monkeypatch.delenv('ROBUST_LABELS_OUTLIERS', raising=False)
    monkeypatch.delenv('ROBUST_LABELS_IMAGENET', raising=False)
    (tmp_path/'CIFAR-10-C').mkdir()
    (tmp_path/'CIFAR-10-C'/'labels.npy').write_bytes(b'\0' * 2**20)
    arr = tmp_path/'out.npy'
    np.save(arr, np.zeros((2, 8, 8, 3), np.uint8))
    st = status(['digits', 'cifar10', 'cifar10-c', 'outliers', 'imagenet'], root=tmp_path).set_index('name')
    assert list(st.columns) == ['kind', 'path', 'present', 'size_mb', 'how']
    assert st.present.to_dict() == {'digits': True, 'cifar10': False, 'cifar10-c': True, 'outliers': False,
                                    'imagenet': False}
    assert st.loc['cifar10-c', 'size_mb'] == 1.0 and st.loc['cifar10-c', 'path'] == str(tmp_path/'CIFAR-10-C')
    assert st.loc['cifar10', 'path'] == str(tmp_path/'cifar-10-batches-py')
    assert st.loc['outliers', 'path'] == '$ROBUST_LABELS_OUTLIERS (not set)'
    assert 'robust-labels data download cifar10' in st.loc['cifar10', 'how']
    assert 'image-net.org' in st.loc['imagenet', 'how'] and str(tmp_path/'imagenet') in st.loc['imagenet', 'how']
    monkeypatch.setenv('ROBUST_LABELS_OUTLIERS', str(arr))
    assert bool(status('outliers').present[0]) and status('outliers').path[0] == str(arr)


# ---------------------------------------------------------------- downloads

def test_download_c_set_from_file_url(tmp_path, monkeypatch):
    _serve(monkeypatch, 'cifar10-c', fake_c_tar(tmp_path/'srv'))
    out = download(['cifar10-c'], root=tmp_path/'data', progress=False)
    assert out == {'cifar10-c': tmp_path/'data'/'CIFAR-10-C'}
    assert len(list(out['cifar10-c'].glob('*.npy'))) == 16 and not (tmp_path/'data'/'CIFAR-10-C.tar').exists()
    check('cifar10-c', tmp_path/'data')
    from robust_labels.corruption_sets import load_corrupted
    assert load_corrupted('cifar10', root=tmp_path/'data').images('fog', 3).shape == (4, 32, 32, 3)
    assert download('cifar10-c', root=tmp_path/'data', progress=False) == out       # present: nothing to do


def test_download_cifar10_from_file_url(tmp_path, monkeypatch):
    _serve(monkeypatch, 'cifar10', fake_cifar10_tgz(tmp_path/'srv'))
    out = download('cifar10', root=tmp_path/'data', progress=False)
    assert out['cifar10'] == tmp_path/'data'/'cifar-10-batches-py' and (out['cifar10']/'test_batch').is_file()
    check('cifar10', tmp_path/'data')
    assert bool(status('cifar10', tmp_path/'data').present[0])


def test_download_resumes_from_a_partial_file(tmp_path, monkeypatch):
    tar = fake_c_tar(tmp_path/'srv')
    _serve(monkeypatch, 'cifar10-c', tar)
    data = tar.read_bytes()
    root = tmp_path/'data'
    root.mkdir()
    (root/'CIFAR-10-C.tar.part').write_bytes(data[:len(data) // 2])       # an interrupted earlier download
    tar.write_bytes(b'\0' * (len(data) // 2) + data[len(data) // 2:])   # only the rest may be read again
    download('cifar10-c', root=root, progress=False)
    check('cifar10-c', root)


def test_download_mismatch_removes_the_file_and_shows_both_checksums(tmp_path, monkeypatch):
    tar = fake_c_tar(tmp_path/'srv')
    e = CATALOG['cifar10-c']
    monkeypatch.setitem(CATALOG, 'cifar10-c', dataclasses.replace(e, files=((tar.as_uri(), e.files[0][1], '0' * 32),)))
    with pytest.raises(ValueError) as err: download('cifar10-c', root=tmp_path/'data', progress=False)
    assert '0' * 32 in str(err.value) and _md5(tar) in str(err.value)
    assert list((tmp_path/'data').iterdir()) == []
    # an archive already on disk with a wrong checksum is removed too
    (tmp_path/'data'/'CIFAR-10-C.tar').write_bytes(b'not the archive')
    with pytest.raises(ValueError, match=hashlib.md5(b'not the archive').hexdigest()):
        download('cifar10-c', root=tmp_path/'data', progress=False)
    assert list((tmp_path/'data').iterdir()) == []


def test_download_refuses_local_only_sets_before_fetching_anything(tmp_path, monkeypatch):
    _serve(monkeypatch, 'cifar10-c', fake_c_tar(tmp_path/'srv'))
    with pytest.raises(ValueError, match='no public download for imagenet, unlabeled.*image-net.org.*ROBUST_LABELS_UNLABELED'):
        download(['cifar10-c', 'imagenet', 'unlabeled'], root=tmp_path/'data', progress=False)
    assert not (tmp_path/'data').exists()


def test_download_refuses_an_unsafe_archive(tmp_path, monkeypatch):
    evil = tmp_path/'evil.tar'
    with tarfile.open(evil, 'w') as t:
        info = tarfile.TarInfo('../escape.txt')
        info.size = 2
        t.addfile(info, io.BytesIO(b'hi'))
    _serve(monkeypatch, 'cifar10-c', evil)
    with pytest.raises(ValueError, match='refusing to extract'):
        download('cifar10-c', root=tmp_path/'data', progress=False)
    assert not (tmp_path/'escape.txt').exists()


# ---------------------------------------------------------------- layout checks

@pytest.fixture
def small_imagenet(monkeypatch):
    monkeypatch.setitem(CATALOG, 'imagenet', dataclasses.replace(CATALOG['imagenet'], classes=3))
    monkeypatch.setitem(CATALOG, 'imagenet-c', dataclasses.replace(CATALOG['imagenet-c'], classes=3))


def test_check_imagenet_good_and_bad(tmp_path, small_imagenet):
    inet = tmp_path/'imagenet'
    image_tree(inet/'train', WNIDS, 2)
    image_tree(inet/'val', WNIDS)
    check('imagenet', tmp_path)              # the data folder
    check('imagenet', inet)                  # or the copy itself
    (inet/'val'/WNIDS[2]/f'{WNIDS[2]}_0.JPEG').unlink()
    (inet/'val'/WNIDS[1]).rename(inet/'val'/'cats')
    (inet/'train'/'stray.JPEG').write_bytes(b'')
    with pytest.raises(ValueError) as err: check('imagenet', inet)
    msg = str(err.value)
    assert 'has 4 problem(s)' in msg
    assert "are not wnids (n + 8 digits), e.g. ['cats']" in msg
    assert f"class folders in {inet/'val'} hold no images, e.g. ['{WNIDS[2]}']" in msg
    assert 'train/ and val/ hold different wnids' in msg and '1 images lie directly in' in msg


def test_check_imagenet_real_class_count(tmp_path):
    image_tree(tmp_path/'imagenet'/'train', WNIDS)
    with pytest.raises(ValueError, match=r"holds 3 class folders, expected 1000[\s\S]*the folder .*val is missing"):
        check('imagenet', tmp_path)


def test_check_missing_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.delenv('ROBUST_LABELS_UNLABELED', raising=False)
    with pytest.raises(ValueError, match='imagenet not found.*image-net.org'): check('imagenet', tmp_path)
    with pytest.raises(ValueError, match='cifar100-c not found.*robust-labels data download cifar100-c'):
        check('cifar100-c', tmp_path)
    with pytest.raises(ValueError, match=r'unlabeled not found: looked for \$ROBUST_LABELS_UNLABELED'): check('unlabeled')
    check('digits')


def test_check_imagenet_c(tmp_path, small_imagenet):
    base = tmp_path/'ImageNet-C'
    for c in CORRUPTIONS:
        for s in range(1, 6): image_tree(base/'family'/c/str(s), WNIDS)
    check('imagenet-c', tmp_path)
    import shutil
    shutil.rmtree(base/'family'/'fog')
    shutil.rmtree(base/'family'/'snow'/'4'/WNIDS[0])
    with pytest.raises(ValueError) as err: check('imagenet-c', tmp_path)
    assert 'no folder for the corruption fog' in str(err.value)
    assert 'snow/4: ' in str(err.value) and 'holds 2 class folders, expected 3' in str(err.value)


def test_check_c_arrays(tmp_path):
    fake = fake_c_tar(tmp_path/'srv')
    with tarfile.open(fake) as t: t.extractall(tmp_path/'data', filter='data')
    check('cifar10-c', tmp_path/'data')
    np.save(tmp_path/'data'/'CIFAR-10-C'/'fog.npy', np.zeros((20, 32, 32), np.float32))
    (tmp_path/'data'/'CIFAR-10-C'/'snow.npy').unlink()
    with pytest.raises(ValueError) as err: check('cifar10-c', tmp_path/'data')
    assert 'has 2 problem(s)' in str(err.value) and 'snow.npy is missing' in str(err.value)
    assert 'fog.npy is float32 (20, 32, 32)' in str(err.value)


def test_check_arrays(tmp_path, monkeypatch):
    good = tmp_path/'ok.npz'
    np.savez(good, data=np.zeros((3, 32, 32, 3), np.uint8))
    check('outliers', good)
    monkeypatch.setenv('ROBUST_LABELS_OOD_TEST', str(good))
    check('ood-test')
    bad = tmp_path/'bad.npy'
    np.save(bad, np.zeros((3, 32, 32), np.int64))
    with pytest.raises(ValueError, match=r'shape \(3, 32, 32\)[\s\S]*int64 values'): check('unlabeled', bad)
    wrong_key = tmp_path/'k.npz'
    np.savez(wrong_key, pixels=np.zeros((1, 8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="holds no 'data', 'images' or 'x' array"): check('outliers', wrong_key)
    (tmp_path/'x.pkl').write_bytes(b'')
    with pytest.raises(ValueError, match='must be a .npy or .npz file'): check('outliers', tmp_path/'x.pkl')


def test_check_downloaded_datasets(tmp_path):
    (tmp_path/'cifar-10-batches-py').mkdir()
    (tmp_path/'cifar-10-batches-py'/'data_batch_1').write_bytes(b'')
    with pytest.raises(ValueError, match='has 6 problem'): check('cifar10', tmp_path)
    (tmp_path/'train_32x32.mat').write_bytes(b'')
    (tmp_path/'test_32x32.mat').write_bytes(b'')
    check('svhn', tmp_path)


# --- synthetic copies (write_synthetic): the published layouts, checked and loaded; checksums kept for real copies

SYNTHETIC_ENVS = ('ROBUST_LABELS_DATA', 'ROBUST_LABELS_SYNTHETIC', 'ROBUST_LABELS_UNLABELED', 'ROBUST_LABELS_OUTLIERS',
                  'ROBUST_LABELS_OOD_TEST', 'ROBUST_LABELS_IMAGENET')


@pytest.fixture
def clean_env(monkeypatch):
    "No data environment variable of the machine leaks into the test."
    for k in SYNTHETIC_ENVS: monkeypatch.delenv(k, raising=False)
    return monkeypatch


@pytest.mark.slow
def test_synthetic_copies_pass_check_and_load(tmp_path, clean_env):
    "Every catalogue entry written at its full class count passes `check` and loads through the library's loaders."
    from robust_labels.corruption_sets import load_corrupted
    from robust_labels.data import get_dataset
    env = cat.write_synthetic(root=tmp_path, n=20, n_test=4)
    assert set(env) == {'ROBUST_LABELS_DATA', 'ROBUST_LABELS_SYNTHETIC', 'ROBUST_LABELS_UNLABELED',
                        'ROBUST_LABELS_OUTLIERS', 'ROBUST_LABELS_OOD_TEST'}
    for k, v in env.items(): clean_env.setenv(k, v)
    for name, e in CATALOG.items(): check(name, env[e.env] if e.kind == 'array' else None)
    assert status().present.all()
    sizes = {d: (len(get_dataset(d, 'train', progress=False)), len(get_dataset(d, 'val', progress=False)),
                 len(get_dataset(d, 'test', progress=False))) for d in ('cifar10', 'cifar100', 'svhn', 'tinyimagenet')}
    assert sizes == {d: (16, 4, 4) for d in sizes}, sizes
    x, y = get_dataset('cifar10', 'train')[0]
    assert x.shape == (3, 32, 32) and 0 <= x.min() and x.max() <= 1 and 0 <= int(y) < 10
    imagenet = get_dataset('imagenet', 'test')
    assert len(imagenet) == 1000 + 4 and imagenet[0][0].shape == (3, 224, 224)
    for d, shape in (('cifar10', (32, 32)), ('cifar100', (32, 32)), ('tinyimagenet', (64, 64))):
        xc, yc = load_corrupted(d, progress=False).load('fog', 5)
        assert xc.shape[-2:] == shape and len(xc) == len(yc), d
    inc = load_corrupted('imagenet', progress=False)
    assert len(inc.files('fog', 5)) == 1000 and next(inc.batches('fog', 5, 2))[0].shape == (2, 3, 224, 224)


def test_synthetic_fewer_classes(tmp_path, clean_env):
    "`classes` writes fewer class folders (the first wnids): loadable, and `check` names the shortfall."
    from robust_labels.corruption_sets import load_corrupted
    from robust_labels.data import get_dataset
    env = cat.write_synthetic(['imagenet', 'tinyimagenet-c'], tmp_path, n=10, n_test=2, classes=3)
    for k, v in env.items(): clean_env.setenv(k, v)
    assert sorted(p.name for p in (tmp_path/'imagenet'/'train').iterdir()) == ['n00000000', 'n00000001', 'n00000002']
    assert len(get_dataset('imagenet', 'train_full')) == 3 + 10
    assert load_corrupted('tinyimagenet').wnids == ['n00000000', 'n00000001', 'n00000002']
    with pytest.raises(ValueError, match='holds 3 class folders, expected 1000'): check('imagenet')
    with pytest.raises(ValueError, match='classes must be'): cat.write_synthetic('imagenet', tmp_path/'b', classes=0)
    with pytest.raises(ValueError, match="name must be one of"): cat.write_synthetic('mnist', tmp_path/'c')


@pytest.mark.parametrize('name', ['cifar10', 'cifar100', 'svhn'])
def test_synthetic_needs_marker_and_variable(name, tmp_path, clean_env):
    "torchvision's MD5s are skipped only with both the SYNTHETIC file and ROBUST_LABELS_SYNTHETIC=1."
    from robust_labels.data import get_dataset
    env = cat.write_synthetic(name, tmp_path, n=10)
    clean_env.setenv('ROBUST_LABELS_DATA', env['ROBUST_LABELS_DATA'])
    with pytest.raises(RuntimeError, match="MD5 check failed"): get_dataset(name, 'test')   # variable unset
    clean_env.setenv('ROBUST_LABELS_SYNTHETIC', '1')
    assert len(get_dataset(name, 'test')) == 2
    marker = (tmp_path / CATALOG[name].folder) / 'SYNTHETIC'
    marker.unlink()
    with pytest.raises(RuntimeError, match="MD5 check failed"): get_dataset(name, 'test')   # marker gone
    clean_env.setenv('ROBUST_LABELS_SYNTHETIC', 'yes')
    marker.write_text('x')
    with pytest.raises(RuntimeError, match="MD5 check failed"): get_dataset(name, 'test')   # only '1' counts
