"Tests of robust_labels.evals: shared attack runs, streamed evaluation of file-backed splits, the official AA protocol."
import pytest
import torch

from robust_labels.config import RunConfig


@pytest.mark.parametrize('labels, num_virtual, runs', [('onehot', 0, 1), ('vs', 10, 2)])
def test_autoattack_plus_shares_the_run_of_an_identical_attack(monkeypatch, labels, num_virtual, runs):
    "AutoAttack and AutoAttack+ are the same attack on a model without virtual classes: it runs once; on VS, twice."
    import robust_labels.evals as E
    from robust_labels.models import create_model
    calls = []
    monkeypatch.setattr(E, 'robust_accuracy', lambda model, x, y, a, **kw: calls.append(a.n_target_classes) or 0.25)
    monkeypatch.setitem(E.EVAL_LIMITS, 'digits', dict(E.EVAL_LIMITS['digits'], autoattack=4))
    cfg = RunConfig(labels=labels, alpha=0.5 if labels == 'vs' else 0.0)
    model = create_model('cnn', 10, num_virtual=num_virtual, in_channels=1).eval()
    aa, aa_plus = (E.EVALUATIONS[e](model, cfg, 'cpu') for e in ('autoattack', 'autoattack_plus'))
    assert aa['aa_accuracy'] == aa_plus['aa_plus_accuracy'] == 25.0 and aa['aa_samples'] == 4
    assert len(calls) == runs and calls[0] == 9


def test_check_evals():
    from robust_labels.evals import check_evals
    assert check_evals('accuracy') == ['accuracy']
    with pytest.raises(ValueError, match='evals must be one of'):
        check_evals(['accuracy', 'nope'])


# --- Evaluations of a split read from files: batch by batch, the same numbers where batching cannot change them ---

class _FileLike(torch.utils.data.Dataset):
    "The digits test split behind a plain Dataset, as an ImageFolder is: no tensors to take whole."
    def __init__(self, ds): self.ds = ds
    def __len__(self): return len(self.ds)
    def __getitem__(self, i): return self.ds[i]


@pytest.fixture(scope='module')
def trained():
    from robust_labels.setup import fit_config
    cfg = RunConfig(labels='vs', alpha=0.3, epochs=2)
    return fit_config(cfg, device='cpu')[0].eval(), cfg


def _streaming(monkeypatch):
    "Serve the digits test split as a file-like Dataset, and fail if anything takes the whole split as tensors."
    import robust_labels.evals as E
    from robust_labels.data import get_dataset
    split = get_dataset('digits', 'test')
    monkeypatch.setattr(E, '_test_split', lambda cfg: _FileLike(split))
    real = E.as_tensors
    def whole(ds, *a, **kw):
        if isinstance(ds, _FileLike): raise AssertionError("the whole test split was loaded as tensors")
        return real(ds, *a, **kw)
    monkeypatch.setattr(E, 'as_tensors', whole)
    E._ROBUST.clear()


def test_in_memory_evaluations_give_the_results_computed_on_whole_tensors(trained, monkeypatch):
    "Digits (in memory): each evaluation equals its computation on the whole test tensors (the code before streaming)."
    import robust_labels.evals as E
    from robust_labels.attacks import robust_accuracy
    from robust_labels.data import as_tensors, get_dataset
    from robust_labels.metrics import auroc, expected_calibration_error, msp_score, real_probs
    from robust_labels.models import predict_logits
    from robust_labels.train import evaluate
    model, cfg = trained
    x, y = as_tensors(get_dataset('digits', 'test'))
    assert not E.streams(cfg)
    assert E.eval_accuracy(model, cfg, 'cpu')['accuracy'] == evaluate(model, (x, y), 10, device='cpu')
    probs = real_probs(predict_logits(model, x), 10)
    assert E.eval_ece(model, cfg, 'cpu')['ece'] == expected_calibration_error(probs, y, n_bins=15)
    s_in, s_out = msp_score(predict_logits(model, x), 10), msp_score(predict_logits(model, E.ood_test_set(cfg)), 10)
    assert E.eval_ood(model, cfg, 'cpu')['auroc'] == 100 * auroc(s_in, s_out)
    E._ROBUST.clear()
    expected = 100 * robust_accuracy(model, x, y, E.attack_for(cfg, 'vs-pgd20'), num_classes=10, seed=cfg.seed)
    assert E.EVALUATIONS['pgd20'](model, cfg, 'cpu')['pgd20_accuracy'] == expected


def test_streamed_evaluations_match_the_in_memory_ones(trained, monkeypatch):
    "A split that is not in memory streams through make_loader; accuracy, ECE, OOD and attacks give the same numbers."
    import robust_labels.evals as E
    model, cfg = trained
    monkeypatch.setitem(E.EVAL_LIMITS, 'digits', dict(E.EVAL_LIMITS['digits'], thickness=64))
    E._ROBUST.clear()
    names = ['accuracy', 'ece', 'ood', 'pgd20']
    before = {n: E.EVALUATIONS[n](model, cfg, 'cpu') for n in names}
    _streaming(monkeypatch)
    assert E.streams(cfg)
    after = {n: E.EVALUATIONS[n](model, cfg, 'cpu') for n in names}
    for n in names:
        assert after[n].keys() == before[n].keys()
        for k in before[n]: assert after[n][k] == pytest.approx(before[n][k], abs=1e-9), (n, k)
    aug = E.eval_augmented_accuracy(model, cfg, 'cpu')['augmented_accuracy']
    assert 0 < aug <= 100
    th = E.eval_thickness(model, cfg, 'cpu')
    assert th['thickness_1'] >= th['thickness_0.75'] > 0 and th['thickness_1_std'] >= 0


def test_official_autoattack_evaluations_name_their_protocol(monkeypatch):
    "autoattack(_plus)_vs_official run the VS repository's protocol, under metric keys that name it."
    import robust_labels.evals as E
    from robust_labels.models import create_model
    seen = []
    monkeypatch.setattr(E, 'robust_accuracy', lambda model, x, y, a, **kw: seen.append(a) or 0.5)
    monkeypatch.setitem(E.EVAL_LIMITS, 'digits', dict(E.EVAL_LIMITS['digits'], autoattack=4))
    E._ROBUST.clear()
    cfg = RunConfig(labels='vs', alpha=0.5)
    model = create_model('cnn', 10, num_virtual=10, in_channels=1).eval()
    out = {e: E.EVALUATIONS[e](model, cfg, 'cpu') for e in
           ('autoattack', 'autoattack_plus', 'autoattack_vs_official', 'autoattack_plus_vs_official')}
    assert out['autoattack_vs_official'] == {'aa_vs_official_accuracy': 50.0, 'aa_vs_official_samples': 4}
    assert set(out['autoattack_plus_vs_official']) == {'aa_plus_vs_official_accuracy', 'aa_plus_vs_official_samples'}
    assert [a.protocol for a in seen] == ['ours', 'ours', 'vs-official', 'vs-official']
    assert [a.n_target_classes for a in seen] == [9, None, 9, None]


def test_ood_test_set_from_a_uint8_file_is_float(tmp_path, monkeypatch):
    "A uint8 .npy of OOD images (0..255, NHWC as published arrays) comes back as floats in [0, 1] that a model takes."
    import numpy as np
    import torch
    from robust_labels.config import RunConfig
    from robust_labels.evals import ood_test_set
    a = np.zeros((4, 32, 32, 3), dtype=np.uint8)
    a[0] = 255
    np.save(tmp_path / 'ood.npy', a)
    monkeypatch.setenv('ROBUST_LABELS_OOD_TEST', str(tmp_path / 'ood.npy'))
    x = ood_test_set(RunConfig(dataset='cifar10', model='wrn-16-2'))
    assert x.dtype == torch.float32 and x.shape == (4, 3, 32, 32)
    assert x.max().item() == 1.0 and x.min().item() == 0.0
