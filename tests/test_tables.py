"Tests of robust_labels.tables: summaries, the paper's numbers beside ours, and verdicts read off both."
import itertools

import pandas as pd
import pytest

from robust_labels.tables import (agreement, compare_best, load_results, ours_vs_paper, paper_table, read_claims,
                                  records_frame, summarize, tally, to_markdown, with_paper)
from robust_labels.core import atomic_write_json

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


def test_compare_best_directions():
    s = pd.DataFrame(dict(labels=['onehot', 'vs', 'ls'], alpha=[0.0, 0.4, 0.4], accuracy_mean=[90.0, 92.0, 89.0],
                          accuracy_std=[0.5, 0.5, 0.5]))
    c = compare_best(s, 'accuracy').set_index('labels')
    assert c.loc['vs', 'better'] and c.loc['vs', 'beyond_std'] and not c.loc['ls', 'better']
    with pytest.raises(ValueError, match="baseline 'oh' has no rows"):
        compare_best(s, 'accuracy', baseline='oh')


def test_records_summary_and_markdown(tmp_path):
    "Copied from test_runs' table part, on fake result files instead of trained runs."
    for i, (lab, a, s, acc) in enumerate([('onehot', 0.0, 0, 90.0), ('onehot', 0.0, 1, 91.0), ('vs', 0.5, 0, 93.0),
                                         ('vs', 0.5, 1, 92.0)]):
        atomic_write_json(tmp_path / 'runs' / f'{i}.json', dict(config=dict(labels=lab, alpha=a, seed=s),
                                                                  metrics=dict(accuracy=acc)))
    df = load_results(tmp_path)
    assert len(df) == 4
    s = summarize(df, ['labels', 'alpha'], ['accuracy'])
    assert list(s['runs']) == [2, 2]
    md = to_markdown(s)
    assert md.count('\n') == 4 and md.startswith('| labels | alpha |')


def test_paper_numbers():
    t13 = paper_table('vs_table13')
    assert t13.query("dataset == 'cifar10' and model == 'resnet18' and alpha == 0.5").accuracy.item() == 95.3
    with pytest.raises(ValueError, match='name must be a table with reference numbers'):
        paper_table('nope')


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


def test_every_evaluation_has_its_result_columns():
    "Each evaluation of `evals.EVALUATIONS` names its result columns in `tables.EVAL_METRICS`."
    from robust_labels.evals import EVALUATIONS
    from robust_labels.tables import EVAL_METRICS, metric_columns
    assert set(EVALUATIONS) <= set(EVAL_METRICS), set(EVALUATIONS) - set(EVAL_METRICS)
    assert metric_columns(['thickness_yang', 'autoattack_vs_official']) == [
        'thickness_yang_0.75', 'thickness_yang_1', 'aa_vs_official_accuracy']
