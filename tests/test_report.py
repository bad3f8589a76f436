"Tests of robust_labels.report: SPIDER's twin runs, the paper's numbers beside ours, and verdicts read off both."
import itertools

import pandas as pd
import pytest

from robust_labels.report import (ABLATION, agreement, ours_vs_paper, read_claims, spider_ablation, spider_twins,
                                  thickness_table, with_paper, with_spider)
from robust_labels.runs import RunConfig, compare_best, summarize, tally


def _summary(seed_rows):
    "A summary of fake runs: (dataset, augment, labels, tau) x seeds, with an error and an accuracy."
    runs = pd.DataFrame(seed_rows, columns=['dataset', 'augment', 'labels', 'tau', 'seed', 'mce', 'accuracy'])
    return summarize(runs, ['dataset', 'augment', 'labels', 'tau'], ['mce', 'accuracy'])


@pytest.fixture
def summary():
    rows, k = [], 0
    for d, a, (lab, tau), s in itertools.product(['digits', 'cifar10'], ['pixmix', 'standard', 'augmix'],
                                                 [('onehot', 0.0), ('spider', 0.5), ('spider', 2.0)], [0, 1]):
        k += 1
        rows.append((d, a, lab, tau, s, 20 + (k * 7919 % 13) + 0.3 * s, 90 - (k * 104729 % 11) - 0.2 * s))
    return _summary(rows)


def test_twins_are_the_runs_the_notebooks_built_by_hand():
    spider = {'digits': {'standard': [0.5, 0.6], 'augmix': [3, 0.4]}}
    bases = [RunConfig(augment=a, seed=s, epochs=2) for a in ('standard', 'augmix') for s in (0, 1)]
    by_hand = [c for b in bases for c in (b, RunConfig(augment=b.augment, seed=b.seed, epochs=2, labels='spider',
                                                       tau=float(spider['digits'][b.augment][0]),
                                                       xi=float(spider['digits'][b.augment][1])))]
    twins = spider_twins(bases, spider)
    assert twins == by_hand and [c.run_id for c in twins] == [c.run_id for c in by_hand]
    with pytest.raises(ValueError, match=r"\['digits', 'pixmix'\]"):
        with_spider(RunConfig(augment='pixmix'), spider)
    with pytest.raises(ValueError, match='must be 2 numbers'):
        spider_twins(bases, {'digits': {'standard': 'TUNE', 'augmix': [3, 0.4]}})


def test_ablation_groups_match_the_loop_they_replace():
    base, seeds = RunConfig(epochs=2, val='augmented'), [0, 3]
    spider, nols, alpha, mixup = {'standard': [0.5, 0.6], 'pixmix': [2, 0.1]}, {'standard': 0.5, 'pixmix': 1}, \
        {'standard': 0.1, 'pixmix': 0.3}, {'pixmix': 'mixup'}
    expected = {}
    for b in ['standard', 'pixmix']:
        tau, xi = map(float, spider[b])
        expected['Baseline', b] = [base.replace(augment=b, seed=s) for s in seeds]
        expected['SPIDER', b] = [c.replace(labels='spider', tau=tau, xi=xi) for c in expected['Baseline', b]]
        expected['No LS', b] = [c.replace(labels='spider-nols', tau=float(nols[b])) for c in expected['SPIDER', b]]
        expected['STD LS', b] = [c.replace(labels='ls', alpha=float(alpha[b])) for c in expected['Baseline', b]]
        if mixup.get(b): expected['Mixup', b] = [c.replace(augment=mixup[b]) for c in expected['Baseline', b]]
    got = spider_ablation(base, ['standard', 'pixmix'], seeds, spider, nols, alpha, mixup)
    assert list(got) == list(expected) and got == expected
    assert {m for m, _ in got} == set(ABLATION)
    with pytest.raises(ValueError, match=r"\('ls_alpha', 'pixmix'\)"):
        spider_ablation(base, ['standard', 'pixmix'], seeds, spider, nols, {'standard': 0.1, 'pixmix': None})


def test_read_claims_equals_the_groupby_apply_pipeline(summary):
    "Same rows, order and values as the per-metric groupby/apply the SPIDER notebooks used (Tables 1, 3, 8)."
    shuffled = summary.sample(frac=1, random_state=0)   # group order must not depend on the summary's row order
    metrics = ['mce', 'accuracy']
    old = pd.concat([shuffled.groupby(['dataset', 'augment'], group_keys=True)
                     .apply(lambda g: compare_best(g, m, higher_is_better=m == 'accuracy', keys=('tau',)), include_groups=False)
                     .reset_index(level=[0, 1]).rename(columns={f'best_{m}': '+SPIDER', f'onehot_{m}': 'original'})
                     .assign(band=m) for m in metrics], ignore_index=True)
    new = read_claims(shuffled, metrics, groups=['dataset', 'augment'], keys=['tau'], metric='band',
                      higher_is_better={m: m == 'accuracy' for m in metrics},
                      names={'best_mean': '+SPIDER', 'baseline_mean': 'original'})
    pd.testing.assert_frame_equal(new, old)
    assert len(new) == 2 * 3 * 2 and new.better.any() and not new.better.all()


def test_verdicts_off_ours_and_the_paper_equal_the_pivot_pipeline(summary):
    "Table 6/9's stacked claims and the ours-against-paper verdict, with the paper's rows in another order than ours."
    ours = summary[summary.dataset == 'digits'].drop(columns='dataset')
    paper = (summary[summary.dataset == 'cifar10'].rename(columns={'mce_mean': 'mce', 'accuracy_mean': 'accuracy'})
             .drop(columns='dataset').iloc[::-1].reset_index(drop=True))
    paper = paper[paper.augment != 'augmix']            # a cell only we have: no verdict for it
    metrics = ['mce', 'accuracy']
    both = pd.concat([ours.assign(source='ours'), paper.rename(columns={m: f'{m}_mean' for m in metrics}).assign(source='paper')])
    old = pd.concat([both.groupby(['source', 'augment'], group_keys=True)
                     .apply(lambda g: compare_best(g, m, higher_is_better=m == 'accuracy', keys=('tau',)), include_groups=False)
                     .reset_index(level=[0, 1]).rename(columns={f'best_{m}': 'challenger', f'onehot_{m}': 'onehot',
                                                                'better': 'beats'}).assign(metric=m)
                     for m in metrics], ignore_index=True)
    old_verdict = (old.pivot_table(index=['augment', 'metric'], columns='source', values='beats', aggfunc='first')
                   .rename(columns=lambda s: f'{s}_beats').reset_index().dropna().astype({'ours_beats': bool, 'paper_beats': bool}))
    old_verdict['agrees'] = old_verdict['ours_beats'] == old_verdict['paper_beats']
    claims = ours_vs_paper(ours, paper, metrics, groups=['augment'], keys=['tau'], higher_is_better={'mce': False, 'accuracy': True},
                           names={'best_mean': 'challenger', 'baseline_mean': 'onehot', 'better': 'beats'})
    pd.testing.assert_frame_equal(claims, old)
    verdict = agreement(claims, ['augment', 'metric'], verdict='beats')
    pd.testing.assert_frame_equal(verdict, old_verdict)
    assert len(verdict) == 2 * 2 and set(verdict.augment) == {'pixmix', 'standard'}


def test_tally_counts_cases_and_each_verdict():
    claims = pd.DataFrame(dict(metric=['b', 'a', 'b', 'b'], better=[True, False, True, False], beyond_std=[True, False, False, False]))
    t = tally(claims, 'metric')
    assert t.values.tolist() == [['b', 3, 2, 1], ['a', 1, 0, 0]]
    assert tally(claims, ['metric'], ['beyond_std'], total='n').columns.tolist() == ['metric', 'n', 'beyond_std']


def test_paper_columns_sit_beside_ours_and_missing_ones_are_named():
    ours = pd.DataFrame(dict(model=['cnn', 'wrn'], labels='spider', runs=1, thickness_1_mean=[0.3, 0.4], thickness_1_std=0.0,
                             thickness_1_std_mean=[0.05, 0.06], accuracy_mean=[90.0, 91.0], accuracy_std=0.0))
    paper = pd.DataFrame(dict(model=['wrn'], labels='spider', thickness_1=[1.9], thickness_1_std=[0.04]))
    t = thickness_table(ours, paper, ['model', 'labels'], ['model', 'labels'], bands=['thickness_1'])
    assert t['paper_thickness_1'].isna().tolist() == [True, False] and t['paper_thickness_1_std'].iloc[1] == 0.04
    assert t['thickness_1 batch std'].tolist() == [0.05, 0.06] and t['accuracy'].tolist() == ['90.00 ± 0.00', '91.00 ± 0.00']
    with pytest.raises(ValueError, match=r"missing \['accuracy', 'accuracy_std'\]"):
        with_paper(ours, paper, ['model', 'labels'], ['thickness_1', 'accuracy'])
