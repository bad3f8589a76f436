"Tests of robust_labels.vs_claims: α chosen on validation, the sweep's claims, projections and gradient maps."
import math

import pandas as pd
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
