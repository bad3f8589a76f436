"Tests of robust_labels.spider_claims: SPIDER's twin runs, the ablation, thickness beside the paper, Table 7."
import json

import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState

from robust_labels.config import RunConfig
from robust_labels.core import atomic_write_json
from robust_labels.spider_claims import (ABLATION, PAPER_TRIALS, export_best, pruning_summary, spider_ablation, spider_twins,
                                         thickness_table, with_spider)
from robust_labels.tables import with_paper


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


def test_paper_columns_sit_beside_ours_and_missing_ones_are_named():
    ours = pd.DataFrame(dict(model=['cnn', 'wrn'], labels='spider', runs=1, thickness_1_mean=[0.3, 0.4], thickness_1_std=0.0,
                             thickness_1_std_mean=[0.05, 0.06], accuracy_mean=[90.0, 91.0], accuracy_std=0.0))
    paper = pd.DataFrame(dict(model=['wrn'], labels='spider', thickness_1=[1.9], thickness_1_std=[0.04]))
    t = thickness_table(ours, paper, ['model', 'labels'], ['model', 'labels'], bands=['thickness_1'])
    assert t['paper_thickness_1'].isna().tolist() == [True, False] and t['paper_thickness_1_std'].iloc[1] == 0.04
    assert t['thickness_1 batch std'].tolist() == [0.05, 0.06] and t['accuracy'].tolist() == ['90.00 ± 0.00', '91.00 ± 0.00']
    with pytest.raises(ValueError, match=r"missing \['accuracy', 'accuracy_std'\]"):
        with_paper(ours, paper, ['model', 'labels'], ['thickness_1', 'accuracy'])



def test_paper_trials():
    assert PAPER_TRIALS['cifar10'] == 30 and PAPER_TRIALS['tinyimagenet'] == 15


def test_pruning_summary_of_an_unpruned_study():
    "As test_tune's check of pruning_summary, on an in-memory study: 3 complete trials, no pruning."
    study = optuna.create_study(direction='maximize')
    for v in (1.0, 3.0, 2.0):
        t = study.ask()
        t.set_user_attr('epoch_seconds', [1.0, 1.0])
        study.tell(t, v)
    s = pruning_summary(study, epochs=2)
    assert s['trials'] == 3 and s['pruned'] == 0 and s['best_trial'] == 1
    assert s['speed_gain'] == pytest.approx(1.0) and s['equivalent_trials'] == pytest.approx(3.0)


def test_export_best_writes_the_record_the_old_tune_export_best_wrote(tmp_path):
    "Same keys in the same order as tune.export_best had, with pruning = pruning_summary(study) (now assembled here)."
    study = optuna.create_study(direction='maximize')
    for v in (1.0, 3.0, 2.0):
        t = study.ask()
        t.suggest_float('tau', 0.1, 4.0)
        t.set_user_attr('epoch_seconds', [1.0, 1.0])
        study.tell(t, v)
    ident = dict(config=dict(space={'tau': dict(low=0.1, high=4.0), 'xi': dict(fixed=0.5)}, validation='clean'),
                 recipe=dict(epochs=2))
    study.set_user_attr('robust_labels', dict(identity=ident, sampler='tpe', pruner='median', epochs=2))
    rec = export_best(study, tmp_path / 'best.json')
    written = json.loads((tmp_path / 'best.json').read_text())
    assert list(rec) == ['study', 'best_trial', 'best_value', 'metric', 'params', 'config', 'recipe', 'sampler',
                             'pruner', 'trials', 'pruning', 'versions', 'exported']
    assert written == rec and rec['pruning'] == pruning_summary(study)
    again = atomic_write_json(tmp_path / 'again.json', rec)   # what the old export_best wrote for the same record
    assert (tmp_path / 'best.json').read_bytes() == again.read_bytes()
    assert rec['metric'] == 'clean validation accuracy (%)' and rec['best_trial'] == 1 and rec['trials'] == {'complete': 3}
    assert set(rec['params']) == {'tau', 'xi'} and rec['params']['xi'] == 0.5
