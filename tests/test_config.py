"Tests of robust_labels.config: run ids, checks, field help."
import dataclasses, hashlib, subprocess, sys

import pytest

from robust_labels.config import RunConfig


def test_run_ids_are_stable():
    "run_id names result files: a hash of the non-default fields, as it always was."
    assert RunConfig().run_id == hashlib.sha1(b'{}').hexdigest()[:16]
    c = RunConfig(labels='vs', alpha=0.5, epochs=3)
    assert c.run_id == hashlib.sha1(b'{"alpha": 0.5, "epochs": 3, "labels": "vs"}').hexdigest()[:16]
    assert RunConfig(regime='kd', teacher='t').run_id != RunConfig(regime='ard', teacher='t').run_id


def test_checks_and_help():
    with pytest.raises(ValueError, match="regime 'kd' needs teacher"): RunConfig(regime='kd')
    with pytest.raises(ValueError, match='val must be one of'): RunConfig(val='test')
    assert all(f.metadata['help'] for f in dataclasses.fields(RunConfig))
    assert RunConfig(epochs=4, weight_decay=0.0).recipe_().weight_decay == 0.0


SMOKE_IDS = {   # configurations the smoke preset builds, and the result file names they have always had
    '034de25bb81363dd': dict(epochs=8, model='wrn-10-1', regime='kd', seed=1, teacher='7ff3ee7b213861eb',
                             temperature=30.0),
    '04755ecd5b4cd042': dict(alpha=0.1, augment='pixmix', labels='ls', val='augmented'),
    '15c1515f0f9f48a4': dict(alpha=0.5, epochs=8, labels='vs', num_virtual=20, seed=1),
    '119410d78e7fbd5f': dict(augment='deepaugment', labels='spider-nols', seed=2, tau=0.5, val='augmented', xi=0.6),
    '16dd9a05e6694c3d': dict(labels='spider', seed=2, tau=1.0, val='augmented', xi=0.4),
    '22db8c84c77163d5': dict(alpha=0.1, epochs=16, labels='vs', lr=0.05, regime='at'),
    '52a03f1884938126': dict(epochs=16, lr=0.05, regime='at'),
    'd0dadc985e0f2aad': dict(beta=6.0, epochs=16, lr=0.05, regime='trades'),
    '138ff3d113610084': dict(l1=5e-06, val='augmented'),
    'a6d6dbe8aceaf774': dict(val='augmented', weight_decay=0.0),
    'bf21a9e8fbc5a384': dict()}


def test_valid_configurations_keep_their_run_ids():
    for rid, kw in SMOKE_IDS.items(): assert RunConfig(**kw).run_id == rid, kw
    from robust_labels.runs import label_grid
    assert [c.run_id for c in label_grid(RunConfig(epochs=1), alphas=(0.1, 0.5), seeds=(0, 1))] == [
        '81473cf0b7ee8ed5', '39ebb18cc8880e39', '861c599772bd9d22', '1e63ac05ae11bac4', '279c73a60c3c7c19',
        '9667344587619d54', 'bb2106f1e089f813', '5088e1ad9b9ea159', '5859e8c15433e01a', 'f1073663d64033f6']


@pytest.mark.parametrize('kw, same', [
    (dict(alpha=0.3), dict()),
    (dict(labels='spider', tau=1.0, xi=0.2, alpha=0.1, num_virtual=5), dict(labels='spider', tau=1.0, xi=0.2)),
    (dict(labels='ls', alpha=0.2, tau=1.0, xi=0.3, num_virtual=4), dict(labels='ls', alpha=0.2)),
    (dict(labels='vs', alpha=0.2, tau=1.0), dict(labels='vs', alpha=0.2)),
    (dict(beta=3.0, temperature=4.0, ood_variant=2), dict()),
    (dict(regime='at', beta=3.0, teacher='t'), dict(regime='at')),
    (dict(regime='trades', temperature=2.0), dict(regime='trades')),
    (dict(regime='oe', ood_variant=2), dict(regime='oe')),
    (dict(regime='kd', teacher='t', beta=3.0), dict(regime='kd', teacher='t'))])
def test_parameters_that_do_not_apply_are_normalised_away(kw, same):
    "Identical models get one run_id: a parameter that the labels or regime do not use does not count."
    assert RunConfig(**kw) == RunConfig(**same) and RunConfig(**kw).run_id == RunConfig(**same).run_id
    assert RunConfig().replace(**kw) == RunConfig(**same)


def test_parameters_that_apply_are_kept():
    c = RunConfig(labels='vs', alpha=0.2, num_virtual=5, regime='oe', ood_variant=2)
    assert (c.alpha, c.num_virtual, c.ood_variant) == (0.2, 5, 2)
    c = RunConfig(regime='rst', teacher='t', beta=3.0)
    assert (c.teacher, c.beta) == ('t', 3.0)
    assert RunConfig(regime='ard', teacher='t', temperature=2.0).temperature == 2.0
    assert RunConfig(labels='spider-nols', tau=0.5, xi=0.6).xi == 0.6   # kept: the smoke preset's No LS runs carry it
    assert RunConfig(labels='spider', tau=0.5, xi=0.6).replace(labels='onehot') == RunConfig()


@pytest.mark.parametrize('kw, field', [(dict(labels='spider'), 'tau'), (dict(labels='spider-nols', xi=0.2), 'tau'),
                                       (dict(labels='ls'), 'alpha'), (dict(labels='vs', num_virtual=3), 'alpha')])
def test_a_label_method_without_its_hyperparameter_cannot_be_trained(kw, field):
    "`train --labels spider` without --tau would train one-hot under SPIDER's name: an error naming the field."
    cfg = RunConfig(**kw)              # a tuning template may leave it open; training it is the error
    with pytest.raises(ValueError, match=f"labels '{kw['labels']}' needs {field} > 0"): cfg.check_trainable()
    RunConfig(labels='spider', tau=0.5).check_trainable()
    RunConfig().check_trainable()


def test_config_imports_without_torch():
    "The command line builds `train --help` from RunConfig's fields: importing config must not import torch."
    code = ("import sys, dataclasses, robust_labels.config as c\n"
            "assert [f.name for f in dataclasses.fields(c.RunConfig)][:3] == ['dataset', 'model', 'labels']\n"
            "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')))")
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == '[]', out


def test_choice_tuples_repeat_the_modules_that_implement_them():
    "config repeats the names of the label schemes and the baselines as plain data; they must stay equal."
    from robust_labels import augment, config, labels
    assert config.LABELS == labels.LABELS
    assert config.BASELINES == augment.BASELINES
    fields = {f.name: f.metadata['choices'] for f in dataclasses.fields(RunConfig)}
    assert fields['labels'] == labels.LABELS and fields['augment'] == augment.BASELINES
    with pytest.raises(ValueError, match="augment must be one of 'standard'"): RunConfig(augment='autoaugment')


def test_tuning_names_repeat_the_modules_that_implement_them():
    "config repeats the samplers, pruners and search-space names for `tune --help` without torch; they must stay equal."
    from robust_labels import config, study, tune
    assert config.SAMPLERS == study.SAMPLERS
    assert config.PRUNERS == study.PRUNERS
    assert config.SPACE_NAMES == tuple(tune.SPACES)
