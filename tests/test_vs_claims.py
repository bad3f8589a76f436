"Tests of robust_labels.vs_claims: α chosen on validation, the sweep's claims, projections and gradient maps."
import math

import pandas as pd
import pytest
import torch

from robust_labels.metrics import Projection
from robust_labels.vs_claims import (compare_ink_shares, geometry_claims, ink_share, map_cosine, projection_geometry,
                                     selection_claims, selection_table)


def test_selection_picks_alpha_on_validation():
    sweep = pd.DataFrame(dict(dataset='d', model='m', labels=['onehot', 'ls', 'ls', 'vs', 'vs'], alpha=[0.0, 0.1, 0.5, 0.1, 0.5],
                              accuracy_mean=[90.0, 91.0, 90.5, 93.0, 92.0], accuracy_std=0.5,
                              val_accuracy_mean=[80.0, 79.0, 81.0, 79.0, 82.0]))
    st = selection_table(sweep).set_index('labels')
    assert st.loc['vs', ['alpha', 'test_alpha', 'improvement', 'test_improvement']].tolist() == [0.5, 0.1, 2.0, 3.0]
    sc = selection_claims(selection_table(sweep))
    assert sc[['vs_over_onehot', 'ls_over_onehot', 'vs_over_ls']].values.tolist() == [[2.0, 0.5, 1.5]]


def test_projection_geometry_of_an_equilateral_triangle():
    centres = torch.tensor([[0., 0], [1, 0], [0.5, math.sqrt(3) / 2]])
    coords = torch.cat([centres + torch.tensor([0.1, 0]), centres - torch.tensor([0.1, 0])])
    g = projection_geometry(Projection(coords, torch.tensor([5, 6, 7] * 2), centres, (5, 6, 7), torch.zeros(2), torch.eye(2)))
    assert abs(g['similar_ratio'] - 1) < 1e-6 and abs(g['irregularity']) < 1e-6
    made_up = pd.DataFrame(dict(split='test', labels=['onehot', 'ls', 'vs'], separation=[2.0, 4.0, 3.0],
                                similar_ratio=[0.5, 1.0, 0.6], irregularity=[0.3, 0.0, 0.25]))
    assert geometry_claims(made_up).drop(columns='split').all(axis=None)


def test_ink_share_and_cosine_by_hand():
    x, g = torch.tensor([[[[1.0, 0.0]]]]), torch.tensor([[[[3.0, -1.0]]]])
    assert torch.allclose(ink_share(g, x), torch.tensor([0.75])) and torch.allclose(map_cosine(g, -g), torch.tensor([-1.0]))
    ci = compare_ink_shares({'a': g, 'b': -g}, x, {'same': ('a', 'b')})
    assert not ci['holds'].item()


def test_bracket_fit_finds_the_model_whose_best_alphas_are_the_brackets():
    "On the paper's own numbers: Table 4's CIFAR brackets are ResNeXt-29's best alphas of Table 2, not ResNet-18's."
    from robust_labels.tables import paper_table
    from robust_labels.vs_claims import bracket_fit
    best = paper_table('vs_table2').query("labels != 'onehot'").assign(source='paper')
    fit = bracket_fit(best, paper_table('vs_table4').query('best == 1'), by=('source', 'model'))
    verdict = fit.drop_duplicates(['dataset', 'model']).set_index(['dataset', 'model'])['all_fit']
    assert verdict['cifar10', 'resnext29_2x64d'] and verdict['cifar100', 'resnext29_2x64d']
    assert not verdict['cifar10', 'resnet18'] and not verdict['cifar100', 'resnet18']
    with pytest.raises(ValueError, match='brackets must have the columns'):
        bracket_fit(best, best.drop(columns='labels'))


def test_aa_protocols_side_by_side_with_the_papers_gap():
    from robust_labels.vs_claims import aa_protocols
    s = pd.DataFrame(dict(labels=['onehot', 'vs'], aa_accuracy_mean=[50.0, 57.0], aa_plus_accuracy_mean=[50.0, 53.0],
                          aa_vs_official_accuracy_mean=[49.0, 55.0], aa_plus_vs_official_accuracy_mean=[49.0, 52.5]))
    paper = pd.DataFrame(dict(labels=['vs'], aa_accuracy=[54.72], aa_plus_accuracy=[53.16]))
    t = aa_protocols(s, ['labels'], paper).set_index('labels')
    assert t.loc['vs', 'AA-AA+ (ours)'] == 4.0 and t.loc['vs', 'AA-AA+ (vs-official)'] == 2.5
    assert t.loc['vs', 'AA+ (vs-official) - AA+ (ours)'] == -0.5
    assert t.loc['vs', 'AA-AA+ (paper)'] == pytest.approx(1.56) and pd.isna(t.loc['onehot', 'AA (paper)'])
    assert aa_protocols(s.drop(columns=[c for c in s.columns if c.startswith('aa')]), ['labels']).empty


def test_result_columns_and_attack_notes_name_protocol_and_random_start():
    from robust_labels.tables import metric_columns
    from robust_labels.vs_claims import attack_notes
    assert metric_columns(['accuracy', 'pgd20', 'autoattack_vs_official']) == ['accuracy', 'pgd20_accuracy',
                                                                              'aa_vs_official_accuracy']
    notes = attack_notes(['pgd20', 'pgd_l2', 'autoattack', 'autoattack_plus_vs_official'], 'cifar10')
    assert "pgd20: linf PGD-20 (ce loss) eps 0.03137 step 0.007843, random start 'ball'" in notes
    assert "pgd_l2: l2 PGD-20" in notes and "autoattack: AutoAttack linf eps 0.03137, 9 targets, protocol 'ours'" in notes
    assert "K+V-1 targets, protocol 'vs-official'" in notes
    assert 'eps 0.15' in attack_notes(['pgd20'], 'digits')                  # the smoke budget
