"Tests for robust_labels.theory_vs: every Virtual Smoothing check's verdict is asserted, and its helpers are tested."
import math

import numpy as np
import torch
import pytest
from hypothesis import given, settings, strategies as st
from scipy.special import logsumexp

import robust_labels.theory_vs as T
from robust_labels.theory import soft_ce_np
from robust_labels.theory_vs import (check_calibration_bound, check_calibration_trained, check_ls_equalises,
                                     check_vs_logit_freedom, check_vs_templates, check_vs_trained_similarity)


# --- Virtual Smoothing --------------------------------------------------------------------------------------------

def test_vs_logit_verdicts():
    assert check_vs_logit_freedom().holds and check_ls_equalises().holds
    assert check_vs_templates().holds
    v = check_vs_trained_similarity()
    assert v.holds and v.margin > 5


def test_calibration_verdicts():
    v = check_calibration_bound()
    assert v.holds and abs(v.instance['ls_optimum_confidence'] - v.instance['ls_cap']) < 1e-6
    assert check_calibration_trained().holds


@settings(max_examples=30, deadline=None)
@given(st.integers(2, 20), st.integers(1, 20), st.floats(0.01, 0.99), st.integers(0, 10**6))
def test_vs_loss_ignores_incorrect_logit_shape(K, V, alpha, seed):
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 2, K + V)
    t = T.vs_target_np(0, K, V, alpha)
    z2 = z.copy()
    if K > 2:
        z2[1:K] = logsumexp(z[1:K]) + np.log(rng.dirichlet(np.ones(K - 1)))
    assert abs(soft_ce_np(z2, t) - soft_ce_np(z, t)) < 1e-10
    np.testing.assert_allclose(t.sum(), 1.0)


def test_targets():
    np.testing.assert_allclose(T.vs_target_np(2, 4, 2, 0.4), [0, 0, 0.6, 0, 0.2, 0.2])
    np.testing.assert_allclose(T.ls_target_np(1, 4, 0.4), [0.1, 0.7, 0.1, 0.1])


def test_logit_similarity_stats_by_hand():
    fixed = lambda x: torch.arange(4.0).expand(len(x), 4)
    st_ = T.logit_similarity_stats(fixed, torch.zeros(2, 2), torch.tensor([0, 3]), 4)
    assert st_['accuracy'] == 0.5 and abs(st_['near_vs_far']) < 1e-12
    assert math.isclose(st_['max_confidence'], math.exp(3)/sum(math.exp(i) for i in range(4)))
    assert math.isclose(st_['spread'], 1.0)                          # std of (1, 2, 3) and of (0, 1, 2)


def test_label_models_are_cached_and_checked():
    assert T.label_models() is T.label_models()
    with pytest.raises(ValueError, match='alpha must be in'):
        T.label_models(alpha=1.0)
