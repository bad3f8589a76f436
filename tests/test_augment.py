"Tests of robust_labels.augment: the SPIDER paper's baseline augmentations as batch transforms."
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import arrays

from robust_labels.core import CheckpointError
from robust_labels.augmix import (AUGMIX_ALL_OPS, AUGMIX_DEFAULT_OPS, AUGMIX_OPS, AugMix, augment_and_mix, augmix_loss,
                                  autocontrast_images, equalize_images, jsd_loss, posterize_images, rotate_images,
                                  shear_images, solarize_images, translate_images)
from robust_labels.pixmix import PixMix, fractal_mixing_set, ifs_fractals, load_image_folder, pixmix
from robust_labels.deepaugment import (CAE, CAE_LAYERS, EDSR, DeepAugment, cae_code_distortion, deepaugment_dataset,
                                       load_deepaugment_weights, perturb_cae_weights, perturb_edsr_weights)
from robust_labels.augment import CutMix, Mixup


def gen(seed=0): return torch.Generator().manual_seed(seed)


def images(c, size, n=6, seed=0):
    "A batch in [0, 1] with structure (a gradient plus noise), so that every operation changes something."
    g = gen(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing='ij')
    base = (0.5 * xx + 0.3 * yy)[None, None].repeat(n, c, 1, 1)
    return (0.7 * base + 0.3 * torch.rand(n, c, size, size, generator=g)).clamp(0, 1)


@pytest.fixture
def quiet():
    "Silence the stand-in warning of DeepAugment."
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        yield


def make_transforms(tmp_path, num_classes=10):
    "Every baseline, seeded; the DeepAugment one is the random stand-in."
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        return {'augmix': AugMix(jsd=False, generator=gen(1)),
                'pixmix': PixMix(num_fractals=16, cache_dir=tmp_path, generator=gen(2)),
                'deepaugment': DeepAugment(p=1.0, chunk_size=4, generator=gen(3)),
                'mixup': Mixup(num_classes, generator=gen(4)),
                'cutmix': CutMix(num_classes, alpha=0.5, generator=gen(5))}


# --- every baseline: shape, range, change, reproducibility -------------------------------------------------------------

@pytest.mark.parametrize('shape', [(1, 8), (3, 32)], ids=['digit-1x8x8', 'colour-3x32x32'])
@pytest.mark.parametrize('name', ['augmix', 'pixmix', 'deepaugment', 'mixup', 'cutmix'])
def test_baseline_keeps_shape_and_range_and_changes_images(name, shape, tmp_path):
    c, size = shape
    x, y = images(c, size), torch.arange(6) % 10
    t = make_transforms(tmp_path)[name]
    xo, yo = t(x, y)
    assert xo.shape == x.shape and xo.dtype == x.dtype
    assert xo.min() >= 0 and xo.max() <= 1 and torch.isfinite(xo).all()
    assert (xo != x).any()
    if name in ('mixup', 'cutmix'):
        assert yo.shape == (6, 10) and torch.allclose(yo.sum(1), torch.ones(6))
    else:
        assert torch.equal(yo, y)


@pytest.mark.parametrize('name', ['augmix', 'pixmix', 'deepaugment', 'mixup', 'cutmix'])
def test_same_seed_same_batch(name, tmp_path):
    x, y = images(3, 32), torch.arange(6)
    a = make_transforms(tmp_path)[name](x, y)
    b = make_transforms(tmp_path)[name](x, y)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_augmix_draws_per_image():
    "Unlike torchvision's AugMix on a batch, each image gets its own chains."
    x = images(3, 32, n=1).repeat(16, 1, 1, 1)
    out = augment_and_mix(x, generator=gen(0))
    assert len({tuple(o.flatten()[:50].tolist()) for o in out}) > 8


# --- AugMix and the JSD loss ---------------------------------------------------------------------------------------------

def test_augmix_jsd_returns_clean_and_two_views():
    x, y = images(1, 8, n=5), torch.tensor([0, 1, 2, 3, 4])
    t = AugMix(generator=gen(0))
    xo, yo = t(x, y)
    assert xo.shape == (15, 1, 8, 8) and t.num_views == 3
    assert torch.equal(xo[:5], x) and torch.equal(yo, y.repeat(3))
    assert not torch.equal(xo[5:10], xo[10:])           # two independent views
    soft = F.one_hot(y, 10).float()
    assert t(x, soft)[1].shape == (15, 10)


def test_augmix_loss_is_clean_ce_plus_weighted_jsd():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    x, y = images(1, 8, n=4), torch.tensor([1, 2, 3, 4])
    t = AugMix(generator=gen(1))
    xo, yo = t(x, y)
    parts = model(xo).split(4)
    expected = F.cross_entropy(parts[0], y) + 12 * jsd_loss(*parts)
    assert torch.allclose(t.loss_fn()(model, xo, yo), expected, atol=1e-5)
    assert torch.allclose(augmix_loss(model, xo, y, weight=3.0), F.cross_entropy(parts[0], y) + 3 * jsd_loss(*parts), atol=1e-5)
    soft = F.one_hot(yo, 10).float() * 0.9 + 0.01          # soft rows (e.g. from SPIDER) use the clean third
    assert torch.allclose(augmix_loss(model, xo, soft), -(soft[:4] * parts[0].log_softmax(1)).sum(1).mean() + 12 * jsd_loss(*parts), atol=1e-5)
    plain = AugMix(jsd=False).loss_fn()
    assert torch.allclose(plain(model, x, y), F.cross_entropy(model(x), y), atol=1e-6)
    loss = t.loss_fn()(model, xo, yo)
    loss.backward()                                         # the loss trains the model
    assert model[1].weight.grad is not None


logit_batches = st.integers(1, 6).flatmap(lambda n: st.integers(2, 8).flatmap(
    lambda c: st.tuples(*[arrays(np.float32, (n, c), elements=st.floats(-15, 15, width=32)) for _ in range(2)])))


@settings(max_examples=60, deadline=None)
@given(logit_batches)
def test_jsd_zero_for_identical_views_positive_otherwise(pair):
    a, b = (torch.from_numpy(v.copy()) for v in pair)
    assert abs(float(jsd_loss(a, a, a))) < 1e-6
    assert abs(float(jsd_loss(a, a + 3.0))) < 1e-6           # logits shifted by a constant give the same softmax
    d = float(jsd_loss(a, a, b))
    assert d > -1e-6
    if (a.softmax(1) - b.softmax(1)).abs().max() > 0.05:
        assert d > 1e-5
        assert float(jsd_loss(a, b)) > 1e-5


# --- AugMix operations against PIL, the reference's backend --------------------------------------------------------------

def test_operations_match_pil():
    from PIL import Image, ImageOps
    x = images(3, 32, n=1, seed=3)
    pil = Image.fromarray((x[0] * 255).round().byte().permute(1, 2, 0).numpy())
    x8 = torch.from_numpy(np.array(pil)).permute(2, 0, 1)[None].float() / 255
    as_t = lambda im: torch.from_numpy(np.array(im)).permute(2, 0, 1)[None].float() / 255
    one = lambda v: torch.tensor([float(v)])
    aff = lambda m: pil.transform((32, 32), Image.AFFINE, m, resample=Image.BILINEAR)
    cases = [(rotate_images(x8, one(-8)), pil.rotate(-8, resample=Image.BILINEAR)),
             (rotate_images(x8, one(30)), pil.rotate(30, resample=Image.BILINEAR)),
             (shear_images(x8, one(0.3), 'x'), aff((1, 0.3, 0, 0, 1, 0))),
             (shear_images(x8, one(-0.2), 'y'), aff((1, 0, 0, -0.2, 1, 0))),
             (translate_images(x8, one(-3), 'x'), aff((1, 0, -3, 0, 1, 0))),
             (translate_images(x8, one(2), 'y'), aff((1, 0, 0, 0, 1, 2))),
             (posterize_images(x8, one(2)), ImageOps.posterize(pil, 2)),
             (solarize_images(x8, one(180)), ImageOps.solarize(pil, 180)),
             (autocontrast_images(x8), ImageOps.autocontrast(pil)),
             (equalize_images(x8), ImageOps.equalize(pil))]
    for ours, ref in cases:
        assert (ours - as_t(ref)).abs().max() <= 1.01 / 255


def test_operation_set_is_the_reference_one():
    assert AUGMIX_DEFAULT_OPS == ('autocontrast', 'equalize', 'posterize', 'rotate', 'solarize',
                                  'shear_x', 'shear_y', 'translate_x', 'translate_y')
    assert set(AUGMIX_ALL_OPS) - set(AUGMIX_DEFAULT_OPS) == {'color', 'contrast', 'brightness', 'sharpness'}
    assert AugMix().ops == AUGMIX_DEFAULT_OPS and AugMix(all_ops=True).ops == AUGMIX_ALL_OPS
    x, lv, sg = images(3, 32, n=2), torch.full((2,), 3.0), torch.ones(2)
    for name, op in AUGMIX_OPS.items():
        out = op(x, lv, sg)
        assert out.shape == x.shape and 0 <= out.min() and out.max() <= 1, name


# --- PixMix and the mixing set -------------------------------------------------------------------------------------------

def test_fractals_deterministic_per_seed():
    a, b = ifs_fractals(10, 24, 3, seed=7), ifs_fractals(10, 24, 3, seed=7)
    assert torch.equal(a, b)
    assert not torch.equal(a, ifs_fractals(10, 24, 3, seed=8))
    assert a.shape == (10, 3, 24, 24) and a.min() >= 0 and a.max() <= 1
    assert (a.flatten(1).amax(1) > 0.5).all()                 # every picture shows something
    assert ifs_fractals(2, (12, 20), 5).shape == (2, 5, 12, 20)


def test_mixing_set_cached_and_deterministic(tmp_path):
    m = fractal_mixing_set(6, 20, 3, seed=1, cache_dir=tmp_path)
    files = list((tmp_path / 'fractals').iterdir())
    assert len(files) == 1
    assert torch.equal(fractal_mixing_set(6, 20, 3, seed=1, cache_dir=tmp_path), m)
    assert torch.equal(fractal_mixing_set(6, 20, 3, seed=1, cache=False), m)
    files[0].write_bytes(b'garbage')                          # a broken cache file is rendered again
    assert torch.equal(fractal_mixing_set(6, 20, 3, seed=1, cache_dir=tmp_path), m)
    assert not torch.equal(fractal_mixing_set(6, 20, 3, seed=2, cache_dir=tmp_path), m)


def test_mixing_set_cache_dir_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv('ROBUST_LABELS_CACHE', str(tmp_path))
    fractal_mixing_set(2, 10, 1, seed=0)
    assert (tmp_path / 'fractals' / 'ifs_v1_n2_10x10_c1_seed0.pt').is_file()


def test_pixmix_with_a_folder_and_a_tensor(tmp_path):
    from PIL import Image
    pics = ifs_fractals(4, 40, 3, seed=0)
    for i, p in enumerate(pics):
        (tmp_path / f'c{i % 2}').mkdir(exist_ok=True)
        Image.fromarray((p * 255).round().byte().permute(1, 2, 0).numpy()).save(tmp_path / f'c{i % 2}' / f'{i}.png')
    ds = load_image_folder(tmp_path, size=32)
    assert ds.tensors[0].shape == (4, 3, 32, 32) and ds.tensors[0].dtype == torch.uint8
    assert ds.tensors[1].tolist() == [0, 0, 1, 1]
    x, y = images(1, 8), torch.zeros(6, dtype=torch.long)
    for ms in (str(tmp_path), pics, (pics * 255).to(torch.uint8)):
        xo, _ = PixMix(mixing_set=ms, generator=gen(0))(x, y)
        assert xo.shape == x.shape and 0 <= xo.min() and xo.max() <= 1 and (xo != x).any()


def test_pixmix_uses_the_pictures_only_in_mixing_rounds():
    x = images(3, 16)
    p1, p2 = torch.rand(x.shape, generator=gen(1)), torch.rand(x.shape, generator=gen(2))
    assert torch.equal(pixmix(x, p1, k=0, generator=gen(0)), pixmix(x, p2, k=0, generator=gen(0)))
    assert not torch.equal(pixmix(x, p1, k=4, generator=gen(0)), pixmix(x, p2, k=4, generator=gen(0)))


# --- DeepAugment --------------------------------------------------------------------------------------------------------

REFERENCE_CAE_KEYS = [  # `weight_keys` of hendrycks/imagenet-r DeepAugment/CAE_distort_imagenet.py
    'e_conv_1.1.weight', 'e_conv_1.1.bias', 'e_conv_2.1.weight', 'e_conv_2.1.bias', 'e_block_1.1.weight', 'e_block_1.1.bias',
    'e_block_1.4.weight', 'e_block_1.4.bias', 'e_block_2.1.weight', 'e_block_2.1.bias', 'e_block_2.4.weight', 'e_block_2.4.bias',
    'e_block_3.1.weight', 'e_block_3.1.bias', 'e_block_3.4.weight', 'e_block_3.4.bias', 'e_conv_3.0.weight', 'e_conv_3.0.bias',
    'd_up_conv_1.0.weight', 'd_up_conv_1.0.bias', 'd_up_conv_1.3.weight', 'd_up_conv_1.3.bias', 'd_block_1.1.weight',
    'd_block_1.1.bias', 'd_block_1.4.weight', 'd_block_1.4.bias', 'd_block_2.1.weight', 'd_block_2.1.bias', 'd_block_2.4.weight',
    'd_block_2.4.bias', 'd_block_3.1.weight', 'd_block_3.1.bias', 'd_block_3.4.weight', 'd_block_3.4.bias',
    'd_up_conv_2.0.weight', 'd_up_conv_2.0.bias', 'd_up_conv_2.3.weight', 'd_up_conv_2.3.bias', 'd_up_conv_3.0.weight',
    'd_up_conv_3.0.bias', 'd_up_conv_3.3.weight', 'd_up_conv_3.3.bias']


def test_network_parameter_names_match_the_weight_files():
    assert list(CAE().state_dict()) == REFERENCE_CAE_KEYS
    assert [k for k in REFERENCE_CAE_KEYS if k.endswith('weight')] == [f'{n}.weight' for n in CAE_LAYERS]
    keys = set(EDSR().state_dict())
    assert {f'body.{i}.body.{j}.weight' for i in range(16) for j in (0, 2)} <= keys
    assert {'head.0.weight', 'body.16.weight', 'tail.0.0.weight', 'tail.0.2.weight', 'tail.1.weight', 'sub_mean.bias'} <= keys


@pytest.mark.parametrize('seed', range(12))
def test_weight_distortions_keep_shapes_and_change_weights(seed):
    for net, perturb in ((CAE(), perturb_cae_weights), (EDSR(), perturb_edsr_weights)):
        st0 = net.state_dict()
        st1 = perturb(st0, gen(seed))
        assert set(st1) == set(st0) and all(st1[k].shape == st0[k].shape for k in st0)
        assert all(torch.isfinite(v).all() for v in st1.values())
        assert any(not torch.equal(st1[k], st0[k]) for k in st0)
        assert all(torch.equal(a, b) for a, b in zip(st0.values(), net.state_dict().values()))   # the input is untouched


def test_activation_distortions_run():
    z = torch.rand(2, 32, 8, 8) * 2 - 1
    for option in range(1, 9):
        assert cae_code_distortion(z, option, gen(option)).shape == z.shape
    with pytest.raises(ValueError, match='option must be an integer in'):
        cae_code_distortion(z, 9)
    edsr, x = EDSR().eval(), 255 * images(3, 8, n=2)
    with torch.no_grad():
        for pre in (1, 2, 3, 4):
            for body in (1, 2, 3, 4, 5):
                assert edsr(x, pre, body, gen(0)).shape == (2, 3, 32, 32)


def test_deepaugment_weights_from_a_path(tmp_path):
    torch.manual_seed(0)
    cae, edsr = CAE().state_dict(), EDSR().state_dict()
    torch.save(cae, tmp_path / 'model_final.state')
    torch.save({k: v for k, v in edsr.items() if 'mean' not in k}, tmp_path / 'edsr.pt')   # mean shifts may be absent
    with warnings.catch_warnings():
        warnings.simplefilter('error')                        # no stand-in warning with weights
        da = DeepAugment(weights={'cae': tmp_path / 'model_final.state', 'edsr': tmp_path / 'edsr.pt'}, generator=gen(0))
    assert da.nets == ('cae', 'edsr') and da.stand_in == () and abs(da.p - 2 / 3) < 1e-9
    assert torch.equal(da._base['cae']['e_conv_1.1.weight'], cae['e_conv_1.1.weight'])
    x, y = images(3, 32, n=4), torch.arange(4)
    xo, yo = DeepAugment('cae', weights=tmp_path / 'model_final.state', p=1.0, generator=gen(0))(x, y)
    assert xo.shape == x.shape and 0 <= xo.min() and xo.max() <= 1 and torch.equal(yo, y)
    assert load_deepaugment_weights(tmp_path / 'edsr.pt', 'edsr')['sub_mean.weight'].shape == (3, 3, 1, 1)
    (tmp_path / 'bad.pt').write_bytes(b'not a checkpoint')
    with pytest.raises(CheckpointError, match='is corrupt'):
        DeepAugment('cae', weights=tmp_path / 'bad.pt')
    with pytest.raises(CheckpointError, match='not a DeepAugment CAE'):
        load_deepaugment_weights(tmp_path / 'edsr.pt', 'cae')


def test_deepaugment_stand_in_warns_and_defaults_to_edsr():
    with pytest.warns(UserWarning, match="not the paper's DeepAugment"):
        da = DeepAugment()
    assert da.nets == ('edsr',) and da.stand_in == ('edsr',) and da.p == 0.5


def test_deepaugment_replaces_a_share_p(quiet):
    x, y = images(1, 8, n=64), torch.zeros(64, dtype=torch.long)
    assert torch.equal(DeepAugment(p=0.0, generator=gen(0))(x, y)[0], x)
    xo, _ = DeepAugment(p=0.5, chunk_size=64, generator=gen(0))(x, y)
    changed = (xo != x).flatten(1).any(1).float().mean()
    assert 0.25 < changed < 0.75


def test_deepaugment_dataset_one_copy_per_net(quiet):
    x, y = images(3, 16, n=3), torch.tensor([0, 1, 2])
    ds = deepaugment_dataset(x, y, nets=('cae', 'edsr'), generator=gen(0))
    assert ds.tensors[0].shape == (6, 3, 16, 16) and ds.tensors[1].tolist() == [0, 1, 2, 0, 1, 2]


# --- Mixup and CutMix ---------------------------------------------------------------------------------------------------

def test_mixup_mixes_neighbours_with_one_lambda():
    x, y = images(3, 16, n=5), torch.tensor([0, 1, 2, 3, 4])
    xo, t = Mixup(5, alpha=0.4, generator=gen(0))(x, y)
    lam = t[0, 0]
    assert torch.allclose(xo, lam * x + (1 - lam) * x.roll(1, 0), atol=1e-6)
    assert torch.allclose(t, lam * F.one_hot(y, 5).float() + (1 - lam) * F.one_hot(y.roll(1, 0), 5).float())
    soft = torch.softmax(torch.randn(5, 5, generator=gen(1)), 1)   # soft targets in (e.g. after another mix)
    assert torch.allclose(Mixup(5, generator=gen(0))(x, soft)[1].sum(1), torch.ones(5))


def test_cutmix_targets_follow_the_pasted_area():
    x, y = torch.zeros(4, 1, 16, 16), torch.arange(4)
    x[1] = 1.0
    xo, t = CutMix(4, generator=gen(3))(x, y)
    area = xo[2].mean()                                      # image 2 got a box from image 1 (its neighbour)
    assert torch.allclose(t[2, 1], area) and torch.allclose(t[2, 2], 1 - area)


# --- composition with SPIDER --------------------------------------------------------------------------------------------

@pytest.mark.parametrize('name', ['augmix-jsd', 'pixmix', 'deepaugment', 'mixup', 'cutmix'])
def test_baseline_then_spider(name, tmp_path):
    labels = pytest.importorskip('robust_labels.labels')
    if not hasattr(labels, 'SPIDER'): pytest.skip('robust_labels.labels.SPIDER is not written yet')
    base = make_transforms(tmp_path) | {'augmix-jsd': AugMix(generator=gen(0))}
    pipe = labels.Compose(base[name], labels.SPIDER(10, tau=1.0, xi=0.4, generator=gen(9)))
    x, y = images(1, 8, n=6), torch.arange(6)
    xo, t = pipe(x, y)
    n = 18 if name == 'augmix-jsd' else 6
    assert xo.shape == (n, 1, 8, 8) and t.shape == (n, 10)
    assert 0 <= xo.min() and xo.max() <= 1 and torch.allclose(t.sum(1), torch.ones(n))
    assert (t.max(1).values < 1).any()                       # SPIDER lowered some confidences
    if name == 'augmix-jsd':
        model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
        assert torch.isfinite(base[name].loss_fn()(model, xo, t))


# --- bad input ----------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('make, message', [
    (lambda: AugMix(severity=0), 'severity must be an integer in [1, 10]'),
    (lambda: AugMix(severity=11), 'severity must be an integer in [1, 10]'),
    (lambda: AugMix(width=0), 'width must be an integer in [1, inf)'),
    (lambda: AugMix(depth=0), 'depth must be -1'),
    (lambda: AugMix(depth=-3), 'depth must be an integer in [-1, inf)'),
    (lambda: AugMix(alpha=0.0), 'alpha must be in (0, inf)'),
    (lambda: augment_and_mix(images(3, 8), ops=()), 'ops must name at least one'),
    (lambda: PixMix(k=-1), 'k must be an integer in [0, inf)'),
    (lambda: PixMix(beta=0), 'beta must be in (0, inf)'),
    (lambda: PixMix(severity=20), 'severity must be an integer in [1, 10]'),
    (lambda: PixMix(mixing_set=torch.zeros(0, 3, 8, 8)), 'mixing_set must be a non-empty batch'),
    (lambda: PixMix(mixing_set=torch.rand(4, 3, 8, 8) * 3), 'mixing_set must lie in [0, 1]'),
    (lambda: Mixup(10, alpha=0.0), 'alpha must be in (0, inf)'),
    (lambda: Mixup(10, alpha=-1), 'alpha must be in (0, inf)'),
    (lambda: CutMix(10, alpha=0), 'alpha must be in (0, inf)'),
    (lambda: DeepAugment(p=2.0), 'p must be in [0, 1]'),
    (lambda: DeepAugment(nets=()), 'nets must name at least one'),
    (lambda: DeepAugment(nets=('cae', 'edsr'), weights='x.pt'), 'weights must be a dict'),
    (lambda: ifs_fractals(0), 'n must be an integer in [1, inf)'),
    (lambda: jsd_loss(torch.zeros(2, 3)), 'at least 2 logit batches'),
    (lambda: jsd_loss(torch.zeros(2, 3), torch.zeros(3, 3)), 'logits must be 2-d batches of one shape'),
])
def test_bad_hyperparameters(make, message, quiet):
    with pytest.raises(ValueError) as e:
        make()
    assert message in str(e.value)


def test_empty_mixing_folder(tmp_path):
    with pytest.raises(ValueError, match='mixing_set: path .* holds no images'):
        PixMix(mixing_set=tmp_path)


@pytest.mark.parametrize('name', ['augmix', 'pixmix', 'deepaugment', 'mixup', 'cutmix'])
def test_data_outside_unit_interval(name, tmp_path):
    t = make_transforms(tmp_path)[name]
    with pytest.raises(ValueError, match=r'x must lie in \[0, 1\]'):
        t(images(3, 16) * 2, torch.zeros(6, dtype=torch.long))
    with pytest.raises(ValueError, match=r'x must lie in \[0, 1\]'):
        t(images(3, 16) - 0.5, torch.zeros(6, dtype=torch.long))
    with pytest.raises(ValueError, match='x must have at least 4 dims'):
        t(torch.rand(6, 16, 16), torch.zeros(6, dtype=torch.long))
    with pytest.raises(ValueError, match='y must be labels'):
        t(images(3, 16), torch.zeros(5, dtype=torch.long))


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a GPU')
def test_on_the_gpu(tmp_path):
    x, y = images(3, 32).cuda(), torch.arange(6).cuda()
    for name, t in make_transforms(tmp_path).items():
        xo, yo = t(x, y)
        assert xo.device == x.device and yo.device == x.device, name
    g = torch.Generator('cuda').manual_seed(0)
    assert AugMix(generator=g)(x, y)[0].device == x.device
