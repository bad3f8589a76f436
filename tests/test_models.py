"Tests of robust_labels.models: the uniform interface, every architecture's shapes, parameter counts, weights, prediction."
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from robust_labels.core import atomic_save, safe_load
from robust_labels.models import Classifier, count_parameters, create_model, list_models, load_weights, predict_logits

HEAVY = {'wrn-28-10', 'wrn-34-10', 't2t_vit_14', 't2t_vit_24'}   # tens of millions of parameters (and GFLOPs)


def _shapes(name):
    torch.manual_seed(0)
    for in_channels, size in ((1, 8), (3, 32)):
        for v in (0, 4):
            m = create_model(name, 10, num_virtual=v, in_channels=in_channels)
            assert isinstance(m, Classifier) and isinstance(m.head, nn.Linear)
            assert (m.num_classes, m.num_virtual, m.head.out_features) == (10, v, 10 + v)
            assert m.config['name'] == name and m.config['num_virtual'] == v and m.config['in_channels'] == in_channels
            x = torch.rand(2, in_channels, size, size)
            m.train()                                      # batch norm in training mode, even on 1×1 maps
            out = m(x)
            assert out.shape == (2, 10 + v) and torch.isfinite(out).all()
            m.eval()
            with torch.no_grad():
                f = m.features(x)
                assert f.shape == (2, m.head.in_features)
                assert torch.allclose(m(x), m.head(f))


@pytest.mark.parametrize('name', [n for n in list_models() if n not in HEAVY])
def test_every_model_shapes(name): _shapes(name)


@pytest.mark.slow
@pytest.mark.parametrize('name', sorted(HEAVY))
def test_heavy_model_shapes(name): _shapes(name)


def test_list_models():
    names = list_models()
    for n in ('cnn', 'wrn-40-2', 'wrn-40-1', 'wrn-34-10', 'wrn-28-10', 'wrn-16-2', 'wrn-10-1', 'resnet18', 'resnext29_2x64d',
              'densenet_bc', 'allconvnet', 'mobilenetv2', 'tv_resnet18', 'tv_resnext50_32x4d', 't2t_vit_14', 't2t_vit_24'):
        assert n in names


def test_patterns_build_other_sizes():
    assert create_model('wrn-22-3', 10).head.in_features == 192
    assert create_model('resnext29_1x16d', 10).head.in_features == 1024


# ---------------------------------------------------------------- parameter counts (meta device: no storage)

def _count(name, k=10, **kw):
    with torch.device('meta'): return count_parameters(create_model(name, k, **kw))


@pytest.mark.parametrize('name,k,kw,expected', [
    ('wrn-28-10', 10, {}, 36_479_194),          # osmr/imgclsmob CIFAR-10 table; WRN paper 36.5M
    ('wrn-16-10', 10, {}, 17_116_634),          # osmr/imgclsmob
    ('wrn-40-8', 10, {}, 35_748_314),           # osmr/imgclsmob; WRN paper 35.7M
    ('wrn-40-2', 10, {}, 2_243_546),            # WRN paper 2.2M
    ('resnext29_32x4d', 10, {}, 4_775_754),     # osmr/imgclsmob
    ('resnext29_16x64d', 10, {}, 68_155_210),   # osmr/imgclsmob; ResNeXt paper 68.1M
    ('densenet_bc', 10, {}, 769_162),           # osmr/imgclsmob DenseNet-BC-100 (k=12); DenseNet paper 0.8M
    ('densenet_bc', 10, {'bottleneck': False}, 4_068_490),   # osmr/imgclsmob DenseNet-100 (k=12)
    ('densenet_bc', 100, {}, 800_032),          # osmr/imgclsmob CIFAR-100 table
    ('tv_resnet18', 1000, {}, 11_689_512),      # torchvision docs
    ('tv_resnext50_32x4d', 1000, {}, 25_028_904),   # torchvision docs
    ('resnet18', 10, {}, 11_173_962),           # torchvision's minus 990 head rows, 3×3 instead of 7×7 stem
])
def test_parameter_counts(name, k, kw, expected):
    assert _count(name, k, **kw) == expected


def test_parameter_counts_approximate():
    import torchvision
    assert _count('mobilenetv2') == count_parameters(torchvision.models.mobilenet_v2(num_classes=10))
    assert abs(_count('wrn-40-1') / 1e6 - 0.6) < 0.05 and abs(_count('wrn-34-10') / 1e6 - 46.2) < 0.05
    assert 9.0e6 < _count('resnext29_2x64d') < 9.3e6 and 1.3e6 < _count('allconvnet') < 1.45e6


def test_count_parameters_trainable_only():
    m = create_model('cnn', 10, in_channels=1)
    total = count_parameters(m)
    m.head.weight.requires_grad_(False)
    assert count_parameters(m, trainable_only=True) == total - m.head.weight.numel()
    assert count_parameters(create_model('cnn', 10, num_virtual=5, in_channels=1)) == total + 5 * 129


# ---------------------------------------------------------------- arguments, config, normalisation

def test_bad_arguments():
    with pytest.raises(ValueError, match='name must be one of'): create_model('vgg16', 10)
    with pytest.raises(ValueError, match='d = 6n \\+ 4'): create_model('wrn-30-2', 10)
    with pytest.raises(ValueError, match='num_classes must be an integer in \\[2, inf\\)'): create_model('cnn', 1)
    with pytest.raises(TypeError, match='num_classes must be an integer'): create_model('cnn', 10.0)
    with pytest.raises(ValueError, match='num_virtual must be an integer in \\[0, inf\\)'): create_model('cnn', 10, -1)
    with pytest.raises(ValueError, match='in_channels must be an integer in \\[1, inf\\)'): create_model('cnn', 10, in_channels=0)
    with pytest.raises(TypeError, match="unexpected keyword argument 'dropout'"): create_model('resnet18', 10, dropout=0.1)
    with pytest.raises(ValueError, match='dropout must be in'): create_model('wrn-10-1', 10, dropout=1.0)
    with pytest.raises(ValueError, match='depth must satisfy'): create_model('densenet_bc', 10, depth=50)
    with pytest.raises(ValueError, match='normalize must give 3 means'): create_model('cnn', 10, normalize=([0.5] * 2, [0.2] * 2))
    with pytest.raises(ValueError, match='positive stds'): create_model('cnn', 10, normalize=([0.5] * 3, [0.2, 0.0, 0.2]))
    with pytest.raises(ValueError, match='pair'): create_model('cnn', 10, normalize=0.5)
    with pytest.raises(TypeError, match='name must be a model name'): create_model(None, 10)


def test_config_records_options():
    m = create_model('wrn-16-2', 100, num_virtual=10, dropout=0.3, normalize=((0.5, 0.4, 0.3), (0.2, 0.2, 0.2)))
    assert m.config == dict(name='wrn-16-2', num_classes=100, num_virtual=10, in_channels=3,
                            normalize=[[0.5, 0.4, 0.3], [0.2, 0.2, 0.2]], dropout=0.3)
    assert any(isinstance(mod, nn.Dropout) and mod.p == 0.3 for mod in m.modules())
    assert create_model('densenet_bc', 10).config['depth'] == 100 and create_model('densenet_bc', 10).config['growth'] == 12
    assert create_model('cnn', 10, normalize=((0.5,), (0.25,))).config['normalize'] == [[0.5] * 3, [0.25] * 3]


def test_normalize_inside_the_model_and_gradients_reach_pixels():
    torch.manual_seed(0)
    plain = create_model('wrn-10-1', 10, in_channels=3).eval()
    normed = create_model('wrn-10-1', 10, in_channels=3, normalize=((0.1, 0.2, 0.3), (0.5, 0.4, 0.3))).eval()
    normed.body.load_state_dict(plain.body.state_dict()); normed.head.load_state_dict(plain.head.state_dict())
    x = torch.rand(3, 3, 32, 32, requires_grad=True)
    mean, std = torch.tensor([0.1, 0.2, 0.3]).view(1, 3, 1, 1), torch.tensor([0.5, 0.4, 0.3]).view(1, 3, 1, 1)
    out = normed(x)
    assert torch.allclose(out, plain((x - mean) / std), atol=1e-5)
    out.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_same_seed_same_initialisation():
    def sd():
        torch.manual_seed(3); return create_model('resnet18', 10, 2).state_dict()
    a, b = sd(), sd()
    assert all(torch.equal(a[k], b[k]) for k in a)


# ---------------------------------------------------------------- load_weights

def test_load_weights_roundtrip_through_a_checkpoint(tmp_path):
    src = create_model('wrn-10-1', 10, num_virtual=2, in_channels=1).eval()
    atomic_save({'model': src.state_dict(), 'config': src.config}, tmp_path/'ck.pt')
    ck = safe_load(tmp_path/'ck.pt')
    dst = load_weights(create_model('wrn-10-1', 10, num_virtual=2, in_channels=1), ck['model'], config=ck['config']).eval()
    x = torch.rand(3, 1, 8, 8)
    with torch.no_grad(): assert torch.equal(dst(x), src(x))


def test_load_weights_strips_ddp_and_compile_prefixes():
    src = create_model('cnn', 10, in_channels=1)
    for prefix in ('module.', '_orig_mod.', 'module._orig_mod.'):
        dst = load_weights(create_model('cnn', 10, in_channels=1), {prefix + k: v for k, v in src.state_dict().items()})
        assert torch.equal(dst.head.weight, src.head.weight)


def test_load_weights_mismatches():
    src = create_model('cnn', 10, in_channels=1)
    vs = create_model('cnn', 10, num_virtual=3, in_channels=1)
    with pytest.raises(ValueError, match=r'head.weight: checkpoint \(10, 128\), model \(13, 128\)'): load_weights(vs, src.state_dict())
    with pytest.raises(ValueError, match='num_virtual: checkpoint 0, model 3'): load_weights(vs, src.state_dict(), config=src.config)
    with pytest.raises(ValueError, match='missing keys: normalize.mean, normalize.std'):
        load_weights(create_model('cnn', 10, in_channels=1, normalize=((0.5,), (0.5,))), src.state_dict())
    with pytest.raises(ValueError, match='unexpected keys: extra'):
        load_weights(create_model('cnn', 10, in_channels=1), {**src.state_dict(), 'extra': torch.zeros(1)})
    with pytest.raises(ValueError, match='missing keys') as e:
        load_weights(create_model('resnet18', 10, in_channels=1), src.state_dict())
    assert 'more' in str(e.value)                                   # long lists are shortened
    with pytest.raises(ValueError, match='in_channels: checkpoint 1, model 3'):
        load_weights(create_model('cnn', 10), src.state_dict(), config=src.config)
    with pytest.raises(TypeError, match='state_dict must be a mapping'): load_weights(src, [1, 2])
    w = vs.head.weight.detach().clone()
    with pytest.raises(ValueError): load_weights(vs, src.state_dict())
    assert torch.equal(vs.head.weight, w)                           # a failed load changes nothing


# ---------------------------------------------------------------- predict_logits

def test_predict_logits():
    m = create_model('wrn-10-1', 10, num_virtual=3, in_channels=1).train()
    m.body[1].eval()                                               # a mixed mode must survive
    x = torch.rand(45, 1, 8, 8)
    out = predict_logits(m, x, batch_size=16)
    assert out.shape == (45, 13) and not out.requires_grad
    assert m.training and not m.body[1].training and m.body[2].training
    m.eval()
    with torch.no_grad(): assert torch.allclose(out, m(x), atol=1e-5)
    assert torch.allclose(predict_logits(m, x, batch_size=7), out, atol=1e-5)
    assert predict_logits(m, x[:0]).shape == (0, 13)
    with pytest.raises(ValueError, match='batch_size'): predict_logits(m, x, batch_size=0)
    with pytest.raises(TypeError, match='x must be a floating tensor'): predict_logits(m, torch.zeros(2, 1, 8, 8, dtype=torch.long))


# ---------------------------------------------------------------- the digits CNN learns

def test_cnn_learns_digits():
    from robust_labels.data import TensorLoader, as_tensors, get_dataset
    torch.manual_seed(0)
    xtr, ytr = as_tensors(get_dataset('digits', 'train'))
    xte, yte = as_tensors(get_dataset('digits', 'test'))
    net = create_model('cnn', 10, in_channels=1)
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    for epoch in range(4):
        for xb, yb in TensorLoader(xtr, ytr, 64, shuffle=True, generator=torch.Generator().manual_seed(epoch)):
            opt.zero_grad(); F.cross_entropy(net(xb), yb).backward(); opt.step()
    acc = (predict_logits(net, xte).argmax(1) == yte).float().mean().item()
    assert acc > 0.8


# ---------------------------------------------------------------- ImageNet models of VS Table 3 (T2T-ViT, ResNeXt-50)

@pytest.mark.parametrize('name,tokens,paper', [('t2t_vit_14', 'performer', 21.5), ('t2t_vit_24', 'performer', 64.1)])
def test_t2t_vit_parameter_counts_match_the_paper(name, tokens, paper):
    # Yuan et al. (2021) Table 2 counts the official code's fixed sinusoid table (197 x dim) and the two Performer
    # random-feature matrices (32 x 64), which it stores as non-trainable parameters; we keep them out of the parameters
    dim = {'t2t_vit_14': 384, 't2t_vit_24': 512}[name]
    n = _count(name, 1000, tokens=tokens)
    assert n == {'t2t_vit_14': 21_465_806, 't2t_vit_24': 64_000_974}[name]
    assert round((n + 197 * dim + 2 * 32 * 64) / 1e5) / 10 == paper


def test_t2t_vit_options_and_state():
    m = create_model('t2t_vit_14', 10, num_virtual=2, tokens='transformer', drop_path=0.1)
    assert m.config['tokens'] == 'transformer' and m.config['drop_path'] == 0.1
    assert [b.drop_path for b in m.body.blocks][::13] == [0.0, pytest.approx(0.1)]
    with pytest.raises(ValueError, match='tokens must be one of'): create_model('t2t_vit_14', 10, tokens='linear')
    with pytest.raises(ValueError, match='drop_path must be in'): create_model('t2t_vit_14', 10, drop_path=1.0)
    a = create_model('t2t_vit_14', 10)
    assert 'body.t2t.attn1.w' in a.state_dict()    # the Performer's random features travel with a checkpoint
    b = load_weights(create_model('t2t_vit_14', 10), a.state_dict())
    assert torch.equal(a.body.t2t.attn1.w, b.body.t2t.attn1.w)


@pytest.mark.slow
@pytest.mark.parametrize('name,dim', [('t2t_vit_14', 384), ('tv_resnext50_32x4d', 2048)])
def test_imagenet_models_forward_at_224(name, dim):
    torch.manual_seed(0)
    m = create_model(name, 1000, num_virtual=3).eval()
    x = torch.rand(2, 3, 224, 224)
    with torch.no_grad():
        f = m.features(x)
        out = m.head(f)
    assert f.shape == (2, dim) and out.shape == (2, 1003) and torch.isfinite(out).all()
    if name.startswith('t2t'):
        assert m.body.t2t(m.normalize(x)).shape == (2, 196, 384)     # 224 px: 56² -> 28² -> 14² tokens
