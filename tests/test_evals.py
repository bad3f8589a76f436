"Tests of robust_labels.evals: one attack run shared by evaluations that run the same attack."
import pytest

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
