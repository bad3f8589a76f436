"Tests of robust_labels.spider_claims: SPIDER's twin runs, the ablation, thickness beside the paper, Table 7."
import json

import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState

from robust_labels.config import RunConfig
from robust_labels.core import atomic_write_json
from robust_labels.study import open_study
from robust_labels.tune import (best_config, best_record, provenance, read_tuned, tune, tuned_config, tuned_name,
                                tuned_path, tuning_space)
from robust_labels.spider_claims import (ABLATION, PAPER_TRIALS, export_best, pruning_summary, spider_ablation, spider_twins,
                                         stage_configs, study_storage, thickness_table, tune_stage, tuned_frame,
                                         with_spider)
from robust_labels.tables import with_paper


def export_of(out_dir, config, **params):
    "The export the tuning stage writes for a study of `config` whose only trial found `params` (no training)."
    space = tuning_space(config)
    study = open_study(config, space, storage=optuna.storages.InMemoryStorage(), study_name=tuned_name(config))
    study.enqueue_trial(params)
    trial = study.ask({k: optuna.distributions.FloatDistribution(*space[k]) for k in params})
    trial.set_user_attr('epoch_seconds', [1.0])
    study.tell(trial, 80.0)
    return atomic_write_json(tuned_path(out_dir, config), best_record(study))


def test_twins_are_the_runs_the_notebooks_built_by_hand(tmp_path):
    spider = {'standard': [0.5, 0.6], 'augmix': [3, 0.4]}
    for b, (tau, xi) in spider.items():
        export_of(tmp_path, RunConfig(labels='spider', augment=b, val='augmented'), tau=tau, xi=xi)
    bases = [RunConfig(augment=a, seed=s, epochs=2, val='augmented') for a in ('standard', 'augmix') for s in (0, 1)]
    by_hand = [c for b in bases for c in (b, RunConfig(augment=b.augment, seed=b.seed, epochs=2, val='augmented',
                                                       labels='spider', tau=float(spider[b.augment][0]),
                                                       xi=float(spider[b.augment][1])))]
    twins = spider_twins(bases, tmp_path)
    assert twins == by_hand and [c.run_id for c in twins] == [c.run_id for c in by_hand]
    assert with_spider(bases[2], tmp_path) == twins[5]
    with pytest.raises(FileNotFoundError, match=r"no export under .*'spider_digits_cnn_pixmix'.*spider_tuning"):
        with_spider(RunConfig(augment='pixmix', val='augmented'), tmp_path)
    with pytest.raises(ValueError, match="validation 'augmented' \\(wanted 'clean'\\)"):
        spider_twins([RunConfig(val='clean')], tmp_path)      # tuned on another validation set than the runs select on


def test_ablation_groups_match_the_loop_they_replace(tmp_path):
    base, seeds = RunConfig(epochs=2, val='augmented'), [0, 3]
    spider, nols, alpha, mixup = {'standard': [0.5, 0.6], 'pixmix': [2, 0.1]}, {'standard': 0.5, 'pixmix': 1}, \
        {'standard': 0.1, 'pixmix': 0.3}, {'pixmix': 'mixup'}
    for b in ['standard', 'pixmix']:
        export_of(tmp_path, base.replace(labels='spider', augment=b), tau=spider[b][0], xi=spider[b][1])
        export_of(tmp_path, base.replace(labels='spider-nols', augment=b), tau=nols[b])
        export_of(tmp_path, base.replace(labels='ls', augment=b), alpha=alpha[b])
    expected = {}
    for b in ['standard', 'pixmix']:
        tau, xi = map(float, spider[b])
        expected['Baseline', b] = [base.replace(augment=b, seed=s) for s in seeds]
        expected['SPIDER', b] = [c.replace(labels='spider', tau=tau, xi=xi) for c in expected['Baseline', b]]
        expected['No LS', b] = [c.replace(labels='spider-nols', tau=float(nols[b])) for c in expected['SPIDER', b]]
        expected['STD LS', b] = [c.replace(labels='ls', alpha=float(alpha[b])) for c in expected['Baseline', b]]
        if mixup.get(b): expected['Mixup', b] = [c.replace(augment=mixup[b]) for c in expected['Baseline', b]]
    got = spider_ablation(base, ['standard', 'pixmix'], seeds, tmp_path, mixup)
    assert list(got) == list(expected) and got == expected
    assert {m for m, _ in got} == set(ABLATION)
    tuned_path(tmp_path, base.replace(labels='ls', augment='pixmix')).unlink()
    tuned_path(tmp_path, base.replace(labels='spider-nols', augment='standard')).unlink()
    with pytest.raises(FileNotFoundError, match=r"2 studies .*\['spider-nols_digits_cnn_standard', 'ls_digits_cnn_pixmix'\]"):
        spider_ablation(base, ['standard', 'pixmix'], seeds, tmp_path)


def test_stage_configs_are_checked_before_anything_trains():
    rows = [['spider', 'digits', 'cnn', 'smoke', ['standard', 'pixmix']], ['ls', 'digits', 'wrn-40-1', 'smoke', ['standard']]]
    got = stage_configs(rows, epochs=3)
    assert [tuned_name(c) for c in got] == ['spider_digits_cnn_standard', 'spider_digits_cnn_pixmix',
                                           'ls_digits_wrn-40-1_standard']
    assert {(c.val, c.epochs, c.seed) for c in got} == {('augmented', 3, 0)}
    for bad, message in [([], 'non-empty list'), ([['spider', 'digits', 'cnn', 'smoke', []]], 'at least one baseline'),
                         ([['spider', 'digits', 'cnn', 'smoke', ['standard']]] * 2, 'more than once'),
                         ([['spider', 'nope', 'cnn', 'smoke', ['standard']]], 'dataset'),
                         ([['onehot', 'digits', 'cnn', 'smoke', ['standard']]], 'nothing|no hyperparameter')]:
        with pytest.raises(ValueError, match=message):
            stage_configs(bad)
    with pytest.raises(ValueError, match="n_trials must be given for dataset 'digits'"):
        tune_stage(got, 'unused')


def test_the_stage_exports_and_table7_reuses_its_study(tmp_path):
    "One study, one trial of one epoch: exported under tuned/, and Table 7's storage is the same journal (nothing reruns)."
    cfg = stage_configs([['spider', 'digits', 'cnn', 'smoke', ['standard']]], epochs=1)[0]
    studies = tune_stage([cfg], tmp_path, n_trials=1, threads=1)
    study = studies['spider_digits_cnn_standard']
    rec = read_tuned(tmp_path, cfg)
    assert rec['study'] == study.study_name and rec['params'] == best_config(study) and rec['pruning']['trials'] == 1
    assert provenance(tmp_path, tuned_config(tmp_path, cfg.replace(seed=2, epochs=0)))['trial'] == study.best_trial.number
    again = tune(cfg, 1, storage=study_storage(tmp_path, cfg), progress=False)   # what spider_table7 opens
    assert again.study_name == study.study_name and len(again.trials) == 1
    assert tuned_frame(tmp_path, [cfg]).tau.tolist() == [rec['params']['tau']]


def test_paper_columns_sit_beside_ours_and_missing_ones_are_named():
    ours = pd.DataFrame(dict(model=['cnn', 'wrn'], labels='spider', runs=1, thickness_1_mean=[0.3, 0.4], thickness_1_std=0.0,
                             thickness_1_std_mean=[0.05, 0.06], accuracy_mean=[90.0, 91.0], accuracy_std=0.0))
    paper = pd.DataFrame(dict(model=['wrn'], labels='spider', thickness_1=[1.9], thickness_1_std=[0.04]))
    t = thickness_table(ours, paper, ['model', 'labels'], ['model', 'labels'], bands=['thickness_1'])
    assert t['paper_thickness_1'].isna().tolist() == [True, False] and t['paper_thickness_1_std'].iloc[1] == 0.04
    assert t['thickness_1 batch std'].tolist() == [0.05, 0.06] and t['accuracy'].tolist() == ['90.00 ± 0.00', '91.00 ± 0.00']
    with pytest.raises(ValueError, match=r"missing \['accuracy', 'accuracy_std'\]"):
        with_paper(ours, paper, ['model', 'labels'], ['thickness_1', 'accuracy'])
    both = ours.assign(thickness_yang_1_mean=[0.5, 0.7], thickness_yang_1_std=0.0, thickness_yang_1_std_mean=0.1)
    t2 = thickness_table(both, paper, ['model', 'labels'], ['model', 'labels'], bands=['thickness_1'],
                         protocols=('ours', 'yang'))
    assert t2['thickness_1 ours (mean ± std)'].tolist() == ['0.3000 ± 0.0000', '0.4000 ± 0.0000']
    assert t2['thickness_1 yang (mean ± std)'].tolist() == ['0.5000 ± 0.0000', '0.7000 ± 0.0000']
    assert t2['paper_thickness_1'].isna().tolist() == [True, False]
    with pytest.raises(ValueError, match=r"missing \['thickness_yang_1_mean'"):
        thickness_table(ours, paper, ['model', 'labels'], ['model', 'labels'], bands=['thickness_1'], protocols=['yang'])



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


def test_thickness_yang_is_an_evaluation_of_its_own():
    "SPIDER Tables 1-2 run evals 'thickness' and 'thickness_yang': keys name the protocol, the numbers differ."
    from robust_labels.evals import EVALUATIONS, check_evals
    from robust_labels.setup import fit_config
    cfg = RunConfig(epochs=1)
    model = fit_config(cfg, device='cpu', progress=False)[0].eval()
    assert check_evals(['thickness', 'thickness_yang']) == ['thickness', 'thickness_yang']
    ours, yang = (EVALUATIONS[e](model, cfg, 'cpu') for e in ('thickness', 'thickness_yang'))
    assert sorted(yang) == ['thickness_yang_0.75', 'thickness_yang_0.75_std', 'thickness_yang_1', 'thickness_yang_1_std']
    assert yang['thickness_yang_1'] >= yang['thickness_yang_0.75'] > 0
    assert yang['thickness_yang_1'] != ours['thickness_1']
    assert yang == EVALUATIONS['thickness_yang'](model, cfg, 'cpu')          # same seed, same numbers


def needed_studies(name, p):
    "The (labels, dataset, model, baseline, recipe) studies SPIDER experiment `name` reads with parameters `p`."
    b = p.get('baselines', [])
    if name in ('spider_table1', 'spider_table2', 'spider_fig2'):
        return {('spider', d, m, a, p['recipe']) for d, m in p['setups'] for a in b}
    if name == 'spider_table3':
        return {('spider', d, m, a, r) for d, m, r, _ in p['setups'] for a in b}
    if name == 'spider_table6':
        return {(l, p['dataset'], p['model'], a, p['recipe']) for l in ('spider', 'spider-nols', 'ls') for a in b}
    if name == 'spider_table8':
        return {('spider', p['dataset'], m, a, p['recipe']) for m in p['models'] for a in b}
    if name == 'spider_table9':
        return {('spider', p['dataset'], p['model'], p['spider_augment'], p['recipe'])}
    return set()


@pytest.mark.parametrize('preset', ['smoke', 'paper'])
def test_the_tuning_stage_covers_every_spider_table(preset):
    "Every study a SPIDER notebook of the preset reads is one the preset's tuning stage runs (with the same recipe)."
    from robust_labels.registry import load_experiments, plan
    params = plan(preset)
    stage = params['spider_tuning']
    have = {(c.labels, c.dataset, c.model, c.augment, c.recipe) for c in stage_configs(stage['studies'])}
    need = {name: needed_studies(name, p) for name, p in params.items() if name.startswith('spider_')}
    assert {n for n, s in need.items() if s} == {'spider_table1', 'spider_table2', 'spider_table3', 'spider_table6',
                                                 'spider_table8', 'spider_table9', 'spider_fig2'}
    missing = {n: sorted(s - have) for n, s in need.items() if s - have}
    assert not missing, f"the {preset} tuning stage lacks studies: {missing}"
    order = {n: e.order for n, e in load_experiments().items()}
    assert order['spider_tuning'] < min(o for n, o in order.items() if n.startswith('spider_') and n != 'spider_tuning')
    if preset == 'paper':
        assert stage['n_trials'] == 0 and {c.dataset for c in stage_configs(stage['studies'])} >= {'imagenet'}
        assert ('imagenet', 'tv_resnet18', 'spider-imagenet', [0]) in [tuple(s) for s in params['spider_table3']['setups']]
