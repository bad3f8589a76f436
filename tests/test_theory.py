"Tests for robust_labels.theory (verdicts, tables, shared helpers) and robust_labels.theory_checks (all verdicts)."
import numpy as np
import pytest
import torch

from robust_labels.theory import (Verdict, soft_ce_np, softmax_np, train_soft_label_mlp, verdict_table,
                                  verdict_tally)
from robust_labels.theory_checks import theory_table


# --- the table --------------------------------------------------------------------------------------------------

def test_verdict_and_table():
    v = Verdict('c', 'r', 'm', np.bool_(True), np.float64(0.5), dict(x=np.float64(1.5), k=np.int64(2)))
    assert type(v.holds) is bool and type(v.instance['x']) is float and type(v.instance['k']) is int
    df = verdict_table([v])
    assert df.loc[0, 'result'] == 'holds' and 'x=1.5' in df.loc[0, 'instance']


def test_theory_table_verdicts():
    table = theory_table()
    assert len(table) == 35
    expected_fail = {'SPIDER Lemma 2, App. B.3', 'SPIDER App. C', 'SPIDER App. C (end)', 'SPIDER Lemma 3 (statement)',
                     'SPIDER Theorem 1, App. B.1', 'SPIDER Theorem 4, Fig. 4', 'SPIDER Prop. 1, Def. 3'}
    failed = set(table[table.result == 'fails'].reference)
    assert expected_fail <= failed
    assert (table[table.reference.str.startswith('VS')].result == 'holds').all()


def test_verdict_tally():
    table = verdict_table([Verdict('1 + 1 = 2', 'SPIDER arithmetic', 'evaluate', True, 0.0),
                           Verdict('2 > 3', 'VS Sec. 3', 'evaluate', False, -1.0),
                           Verdict('3 > 2', 'VS Sec. 3', 'evaluate', True, 1.0)])
    counts = verdict_tally(table.rename(columns={'result': 'verdict'}), result='verdict')
    assert counts.values.tolist() == [['SPIDER', 'holds', 1], ['VS', 'fails', 1], ['VS', 'holds', 1]]
    with pytest.raises(ValueError, match=r"missing \['verdict'\]"):
        verdict_tally(table, result='verdict')


def test_softmax_and_soft_ce():
    np.testing.assert_allclose(softmax_np(np.array([[0.0, np.log(3.0)], [1e3, 1e3]])), [[0.25, 0.75], [0.5, 0.5]])
    np.testing.assert_allclose(soft_ce_np(np.zeros(4), np.array([0.7, 0.1, 0.1, 0.1])), np.log(4))


def test_train_soft_label_mlp_fits_soft_labels_and_keeps_global_rng():
    xs, soft = torch.tensor([[-1.0, 0.0], [1.0, 0.0]]), torch.tensor([[0.9, 0.1], [0.1, 0.9]])
    torch.manual_seed(5)
    before = torch.rand(1)
    torch.manual_seed(5)
    net = train_soft_label_mlp(xs, lambda x, g: (x, soft), 2, steps=300)
    assert torch.equal(torch.rand(1), before)
    torch.testing.assert_close(torch.softmax(net(xs), 1), soft, atol=1e-3, rtol=0)
    with pytest.raises(ValueError, match='steps'):
        train_soft_label_mlp(xs, lambda x, g: (x, soft), 2, steps=0)


def test_theory_stands_alone():
    "The theory modules import neither the training stack nor the result layers."
    import subprocess, sys
    code = ("import sys, robust_labels.theory_checks; "
            "print(sorted(m for m in sys.modules if m.startswith('robust_labels.')))")
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True).stdout
    loaded = set(eval(out))
    assert loaded <= {'robust_labels.core', 'robust_labels.theory', 'robust_labels.theory_spider',
                      'robust_labels.theory_vs', 'robust_labels.theory_checks', 'robust_labels._modidx'}, loaded
